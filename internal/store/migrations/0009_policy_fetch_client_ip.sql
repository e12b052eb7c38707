-- Policy fetches are evidence about the sender whose network they came from
-- (internal/evidence): they are looked up by client prefix, newest first.
-- client_ip is the client address as 16 octets, big-endian, IPv4 mapped
-- (::ffff:a.b.c.d), so that a prefix is one range (client_ip BETWEEN lo AND
-- hi) which the index below serves; client_addr stays for people reading the
-- table. NULL: no client address. Existing rows are filled in Go after this
-- script (migrate.go, backfillPolicyFetchIP): portable SQL cannot parse an
-- address's text form. PostgreSQL: BYTEA (byte-wise comparison, as SQLite's
-- BLOB).
ALTER TABLE policy_fetches ADD COLUMN client_ip BLOB;
CREATE INDEX policy_fetches_client ON policy_fetches (status, client_ip, time_ns);
