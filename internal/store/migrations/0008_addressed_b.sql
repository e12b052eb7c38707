-- When a test mail received for zone A named the test's B address in its
-- To or Cc header (0: never): the user wrote one mail to both addresses, as
-- the test asks. A sender that then never delivers to B refused B
-- (dane-only: B has no TLSA) — evidence the verdict may use without
-- waiting for the sender to give up.
ALTER TABLE tests ADD COLUMN addressed_b_ns BIGINT NOT NULL DEFAULT 0;
