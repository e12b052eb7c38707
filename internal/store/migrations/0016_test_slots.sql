-- Issue 14: test slots. Each test may hold one slot of a pool
-- (zones.slots): names of its own under A and B (s001.A, mx4.s001.A,
-- mta-sts.s001.A …), so every look-up and policy fetch for them belongs to
-- that test. A slot belongs to one test at a time and rests
-- (zones.slot_rest) after its test became final or was deleted, so the
-- next test's look-ups are not hidden by resolver caches (docs/dns.md).

-- The slot a test holds (0: none, the test uses the shared names).
ALTER TABLE tests ADD COLUMN slot INTEGER NOT NULL DEFAULT 0;

-- One row per slot ever used: its test (the holder, or the last one) and
-- when the slot was handed out and given back. A row outlives its test,
-- so a deleted test's slot still rests.
CREATE TABLE test_slots (
    slot        INTEGER NOT NULL PRIMARY KEY, -- 1 .. zones.slots
    test_id     TEXT    NOT NULL DEFAULT '',  -- '' for a slot never used
    assigned_ns BIGINT  NOT NULL DEFAULT 0,   -- unix nanoseconds UTC
    released_ns BIGINT  NOT NULL DEFAULT 0    -- when its test was deleted; 0 while the test exists
);
