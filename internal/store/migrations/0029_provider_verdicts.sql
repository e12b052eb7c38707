-- The history of the public providers' verdicts (issue 19, point 4;
-- docs/providers.md): the verdict of the last authenticated test of a
-- domain in web.providers on each day (UTC), written with the test's result
-- (FinalizeTest; a later test of the same day replaces the row), so the
-- table holds at most one row per listed provider and day. It outlives
-- the test (web.retention, the owner's delete): it holds the provider's
-- domain, the time, the policy and the colour, nothing about the person who
-- ran the test; DeleteTest clears test_id so no row points at a deleted
-- test.
CREATE TABLE provider_verdicts (
    domain   TEXT    NOT NULL, -- A-label, lower case, no trailing dot
    day      TEXT    NOT NULL, -- final_ns's UTC date, 2006-01-02
    final_ns BIGINT  NOT NULL, -- when the verdict became final
    test_id  TEXT    NOT NULL DEFAULT '',
    policy   TEXT    NOT NULL,
    colour   TEXT    NOT NULL,
    complete INTEGER NOT NULL, -- 1: the verdict was settled
    PRIMARY KEY (domain, day)
);
CREATE INDEX provider_verdicts_domain ON provider_verdicts (domain, final_ns);
