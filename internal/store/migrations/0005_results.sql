-- Results of finished tests (DESIGN.md §1.3): the verdict frozen when the
-- test became final, and the result mail's fate. Same portability rules as
-- 0001 and 0003.

-- One row per final test. The verdict is the JSON of verdict.Verdict at
-- the moment the test became final, so the mail, the web page and the
-- provider table name the same verdict even if the rules change later.
CREATE TABLE test_results (
    test_id       TEXT    PRIMARY KEY,
    final_ns      BIGINT  NOT NULL,
    verdict       TEXT    NOT NULL, -- JSON of verdict.Verdict
    sender_domain TEXT    NOT NULL, -- lower-case domain of the test's envelope sender ('' if none)
    mail_state    TEXT    NOT NULL, -- pending, sent, failed, withheld, none
    mail_reason   TEXT    NOT NULL, -- why withheld/failed, or where it was delivered
    recipient     TEXT    NOT NULL, -- the result mail's envelope recipient ('' once sent or given up)
    attempts      INTEGER NOT NULL,
    next_ns       BIGINT  NOT NULL, -- next delivery attempt (pending)
    sent_ns       BIGINT  NOT NULL, -- 0 until delivered
    delivered_to  TEXT    NOT NULL, -- MX host and address that accepted it
    message_id    TEXT    NOT NULL,
    message       BLOB    NOT NULL  -- the signed message as sent (retries send the same)
);
CREATE INDEX test_results_due ON test_results (mail_state, next_ns);
CREATE INDEX test_results_domain ON test_results (sender_domain, final_ns);

-- Every delivery attempt of a result mail: when, and what became of it.
CREATE TABLE result_mail_attempts (
    id       INTEGER PRIMARY KEY,
    test_id  TEXT    NOT NULL,
    time_ns  BIGINT  NOT NULL,
    status   TEXT    NOT NULL, -- delivered, deferred, bounced
    detail   TEXT    NOT NULL  -- the sender's summary (hosts, replies)
);
CREATE INDEX result_mail_attempts_test ON result_mail_attempts (test_id, time_ns);
