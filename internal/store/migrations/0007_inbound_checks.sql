-- Inbound checks (docs/inbound.md) of the sender domain of tests: the
-- report of `mailsec check` for the domain of the test's envelope sender,
-- stored with the test. Same portability rules as 0001 and 0003; the
-- partial unique index is accepted by SQLite and PostgreSQL.

CREATE TABLE inbound_checks (
    id         INTEGER PRIMARY KEY,
    test_id    TEXT    NOT NULL, -- the test ('' for a check tied to none)
    domain     TEXT    NOT NULL, -- A-label, lower case, no trailing dot
    checked_ns BIGINT  NOT NULL, -- when the check ran (a reused result keeps its time)
    stored_ns  BIGINT  NOT NULL, -- when this row was written
    colour     TEXT    NOT NULL, -- red, yellow, white, green, grey
    report     TEXT    NOT NULL  -- JSON, schema mailsec.check.v1
);
-- One check per test.
CREATE UNIQUE INDEX inbound_checks_test ON inbound_checks (test_id) WHERE test_id <> '';
CREATE INDEX inbound_checks_domain ON inbound_checks (domain, checked_ns);
