-- A result mail is claimed by the node attempting it before it is sent
-- (issue 18, point 2): compare-and-swap on (mail_state, attempts, claim),
-- so no second process sends it while the first one's attempt may be in
-- flight, even when leadership moves between them. claim_until_ns bounds
-- an attempt of a node that died: after it the mail may be attempted again.
ALTER TABLE test_results ADD COLUMN claim_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE test_results ADD COLUMN claim_until_ns BIGINT NOT NULL DEFAULT 0;
