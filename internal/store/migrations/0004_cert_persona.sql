-- Which persona's certificate a TLS connection was served. It differs from
-- the persona when the persona is decided after the handshake: a mail for
-- zone B over STARTTLS without SNI is persona 7 but was shown persona 2's
-- self-signed certificate (DESIGN.md §2). 0: no certificate served.
ALTER TABLE smtp_connections ADD COLUMN cert_persona INTEGER NOT NULL DEFAULT 0;
