-- The sending server a user may name when creating a test
-- (docs/smtp.md "Tying connections to a test"): the name or address the
-- user typed, normalised, and the network of the browser or API client
-- that created the test (its prefix only, never the full address), for the
-- live page's list of not-yet-tied connections.
ALTER TABLE tests ADD COLUMN sending_server TEXT NOT NULL DEFAULT '';
ALTER TABLE tests ADD COLUMN sending_addrs TEXT NOT NULL DEFAULT ''; -- its addresses, space-separated
ALTER TABLE tests ADD COLUMN creator_prefix TEXT NOT NULL DEFAULT '';

-- The addresses the sending server resolved to at creation, one row each
-- (tests.sending_addrs holds the same list for reading a test): the tie
-- rule looks up by address which open tests name it.
CREATE TABLE test_sending_addresses (
    test_id TEXT NOT NULL,
    addr    TEXT NOT NULL, -- unmapped IP address in text form
    PRIMARY KEY (test_id, addr)
);
CREATE INDEX test_sending_addresses_addr ON test_sending_addresses (addr);

-- How a connection came to its test: '' by its own RCPT TO (or not tied),
-- 'client' by the tie of its exact client address to a later RCPT of that
-- client, 'sending_server' by the sending server the user named.
ALTER TABLE smtp_connections ADD COLUMN tied_by TEXT NOT NULL DEFAULT '';
