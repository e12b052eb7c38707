-- Issue 14, point 3: the tests a TLS-RPT report is tied to (the rule:
-- docs/tlsrpt.md "Tying a report to a test"), decided when it arrives.
-- A row goes with its report (retention) and with its test (DeleteTest).
CREATE TABLE tlsrpt_report_tests (
    test_id   TEXT    NOT NULL,
    report_id BIGINT  NOT NULL, -- tlsrpt_reports.id
    PRIMARY KEY (test_id, report_id)
);
CREATE INDEX tlsrpt_report_tests_report ON tlsrpt_report_tests (report_id);
