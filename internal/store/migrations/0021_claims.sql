-- A result mail is claimed by the node attempting it before it is sent
-- (issue 18, point 2): compare-and-swap on (mail_state, attempts, claim),
-- so no second process sends it while the first one's attempt may be in
-- flight, even when leadership moves between them. claim_until_ns bounds
-- an attempt of a node that died: after it the mail may be attempted again.
ALTER TABLE test_results ADD COLUMN claim_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE test_results ADD COLUMN claim_until_ns BIGINT NOT NULL DEFAULT 0;

-- The caps of a scan shared by several workers (issue 18, point 5;
-- docs/scan.md "Several workers"). A worker holds one of a destination
-- address's PerDestination slots while it has a connection open to it:
-- slot numbers 0..cap-1, taken by an upsert that succeeds only on a free or
-- expired slot, so all workers together hold at most cap; a killed
-- worker's slots expire at until_ns.
CREATE TABLE scan_slots (
    scan_id  TEXT    NOT NULL,
    dest     TEXT    NOT NULL, -- the destination address
    slot     INTEGER NOT NULL,
    owner    TEXT    NOT NULL,
    until_ns BIGINT  NOT NULL,
    PRIMARY KEY (scan_id, dest, slot)
);
-- The domains started per rate window by all workers of a scan (--rate):
-- a start increments its window's row only while it is under the cap.
CREATE TABLE scan_rate (
    scan_id   TEXT    NOT NULL,
    window_ns BIGINT  NOT NULL, -- the window's start
    started   INTEGER NOT NULL,
    PRIMARY KEY (scan_id, window_ns)
);
