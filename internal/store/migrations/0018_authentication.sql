-- Issue 15 (point 3): the test mail's authentication, evaluated once when
-- the mail arrived (internal/mailauth): every DKIM signature verified,
-- SPF of MAIL FROM and of HELO, DMARC with alignment, ARC. JSON of
-- store.Authentication; '' for connections that carried no mail, and for
-- those from before this migration (their DKIM results stay in
-- signatures).
ALTER TABLE smtp_connections ADD COLUMN authentication TEXT NOT NULL DEFAULT '';
