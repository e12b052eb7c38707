-- TLS-RPT report mails are capped in number and in bytes (AddTLSRPTReport
-- with a TLSRPTQuota): size is the length of raw, kept in its own column so
-- that the sum the cap needs is read without the blobs.
ALTER TABLE tlsrpt_reports ADD COLUMN size BIGINT NOT NULL DEFAULT 0;
UPDATE tlsrpt_reports SET size = LENGTH(raw);
