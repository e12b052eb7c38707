-- Bulk inbound scans (docs/scan.md): one row per scan, one row per input
-- line that names a domain (or tried to). Same portability rules as 0001
-- and 0003: BIGINT unix nanoseconds UTC, INTEGER 0/1 booleans, TEXT; the
-- partial unique index below is accepted by both SQLite and PostgreSQL.

CREATE TABLE scans (
    id           TEXT    PRIMARY KEY,
    created_ns   BIGINT  NOT NULL,
    source       TEXT    NOT NULL, -- the input as named on the command line ('-' for stdin)
    input_sha256 TEXT    NOT NULL, -- hex digest of the input: a resumed scan must get the same file
    options      TEXT    NOT NULL, -- JSON of the scan's options, for the record
    loaded_ns    BIGINT  NOT NULL, -- 0 until every input line is in scan_items
    input_lines  BIGINT  NOT NULL  -- lines read, once loaded
);

-- One row per input line that is not blank or a comment. kind 'domain' is
-- a distinct domain to check; 'invalid' and 'duplicate' lines are stored
-- in state 'error' with the reason, so that nothing is dropped silently.
--
-- Work is shared through leases: a worker claims pending items (or running
-- ones whose lease expired) by setting lease_owner and lease_until_ns, and
-- finishes them only while it still owns them (docs/scan.md).
CREATE TABLE scan_items (
    scan_id        TEXT    NOT NULL,
    line           BIGINT  NOT NULL, -- 1-based input line number
    kind           TEXT    NOT NULL, -- domain, invalid, duplicate
    input          TEXT    NOT NULL, -- the domain field as given
    domain         TEXT    NOT NULL, -- A-label without trailing dot ('' when invalid)
    label          TEXT    NOT NULL,
    state          TEXT    NOT NULL, -- pending, running, done, error
    lease_owner    TEXT    NOT NULL, -- worker holding the item while running ('' otherwise)
    lease_until_ns BIGINT  NOT NULL,
    attempts       INTEGER NOT NULL, -- leases taken
    started_ns     BIGINT  NOT NULL,
    finished_ns    BIGINT  NOT NULL,
    error          TEXT    NOT NULL, -- why the line or the check failed ('' if not)
    colour         TEXT    NOT NULL, -- red, yellow, white, green, grey ('' without a result)
    qualified      INTEGER NOT NULL,
    dnssec         INTEGER NOT NULL,
    dane           INTEGER NOT NULL,
    mta_sts        INTEGER NOT NULL,
    valid_cert     INTEGER NOT NULL,
    starttls       INTEGER NOT NULL,
    result         TEXT    NOT NULL, -- JSON of the check (schema mailsec.check.v1), '' without one
    PRIMARY KEY (scan_id, line)
);
-- A domain is checked once per scan; later lines naming it become
-- 'duplicate' rows (partial index: SQLite ≥ 3.8, PostgreSQL).
CREATE UNIQUE INDEX scan_items_domain ON scan_items (scan_id, domain) WHERE kind = 'domain';
CREATE INDEX scan_items_state ON scan_items (scan_id, state, line);
