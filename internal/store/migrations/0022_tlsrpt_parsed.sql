-- Issue 14, point 3: TLS-RPT reports (RFC 8460) are parsed when they
-- arrive, by mail (raw is the mail) or by HTTPS POST (raw is the body as
-- posted, gzip or JSON). report holds the report's JSON uncompressed (''
-- for a mail stored before reports were parsed: it stays unparsed and is
-- shown on no test); size counts raw and report, for the quota.
-- report_key is organization-name and report-id: a reporter that sends
-- one report to both of our rua URIs (§3 allows it) is stored once.
ALTER TABLE tlsrpt_reports ADD COLUMN source TEXT NOT NULL DEFAULT 'mail';
ALTER TABLE tlsrpt_reports ADD COLUMN report BLOB NOT NULL DEFAULT '';
ALTER TABLE tlsrpt_reports ADD COLUMN report_key TEXT NOT NULL DEFAULT '';
CREATE INDEX tlsrpt_reports_key ON tlsrpt_reports (report_key);
