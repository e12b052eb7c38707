-- Issue 16: a test's owner key. The test ID is the local part of the
-- test's addresses (it is in the sender's logs and queue and at every
-- relay), so it no longer opens the test's pages, report, events and
-- deletion: an owner key does, made from crypto/rand when the test is
-- created (web, API, CLI) and when its result mail is composed (the
-- mail's recipient is the owner of a fixed-address test). Only the
-- SHA-256 of a key is kept, so a copy of the database hands out no keys.
-- A test may have several keys (its creator's, its result mail's).
--
-- Tests from before this migration keep working as they did: their ID
-- stays their key, stored here like any other (via 'legacy_id', filled by
-- the migration's backfill, store.backfillLegacyOwnerKeys), so links
-- already sent in result mails still open them.
CREATE TABLE test_owner_keys (
    key_hash   TEXT   NOT NULL PRIMARY KEY, -- hex SHA-256 of the key
    test_id    TEXT   NOT NULL,
    via        TEXT   NOT NULL,             -- 'created', 'result_mail', 'legacy_id'
    created_ns BIGINT NOT NULL              -- unix nanoseconds UTC
);
CREATE INDEX test_owner_keys_test ON test_owner_keys (test_id);
