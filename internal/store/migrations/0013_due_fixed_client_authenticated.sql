-- Issue 16 (High 4 and 6): the finaliser reaches every test that is due,
-- fixed-address tests are keyed by sender and client network and capped,
-- and only authenticated tests feed the public provider table.

-- When the finaliser looks at a test next (store.DueTests): the creation
-- at first, then what the finaliser sets after each look (store.DeferTest).
-- The finaliser reads only the tests due now, oldest due first, on this
-- partial index, so open tests that are not due cannot hide one that is.
ALTER TABLE tests ADD COLUMN due_ns BIGINT NOT NULL DEFAULT 0;
UPDATE tests SET due_ns = created_ns;
CREATE INDEX tests_due ON tests (due_ns, id) WHERE state <> 'final';

-- The client network (smtp.client_prefix_v4/_v6, text form) of a fixed
-- test's first mail: fixed tests are keyed by envelope sender and client,
-- so a forged MAIL FROM from another network does not join someone else's
-- test, and open fixed tests are counted per client (docs/smtp.md). Fixed
-- tests from before this migration have '' and are not joined again; they
-- end at their expiry.
ALTER TABLE tests ADD COLUMN fixed_client TEXT NOT NULL DEFAULT '';
CREATE INDEX tests_fixed_open ON tests (fixed_client, sender, created_ns) WHERE kind = 'fixed' AND state <> 'final';

-- Whether the test mail authenticated its envelope sender (SPF pass or an
-- aligned DKIM signature that verified, resultmail.Authenticate) when the
-- test became final. Only such results feed the public provider table.
-- Results from before this migration had their mail decided: a pending,
-- sent or failed mail was authenticated (withheld and none say nothing).
ALTER TABLE test_results ADD COLUMN sender_authenticated INTEGER NOT NULL DEFAULT 0;
UPDATE test_results SET sender_authenticated = 1 WHERE mail_state IN ('pending', 'sent', 'failed');
CREATE INDEX test_results_provider ON test_results (sender_domain, sender_authenticated, final_ns, test_id);
