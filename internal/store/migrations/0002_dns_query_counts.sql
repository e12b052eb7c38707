-- Aggregated query evidence: the query log folds identical queries (same
-- client address, transport, name, type, DO bit, client subnet and rcode)
-- within one flush window into one row. time_ns is the first such query,
-- last_ns the last, count how many there were. A flood of one question then
-- costs one row per window instead of one per packet, and a verdict still
-- learns who asked what, when, and how often.
ALTER TABLE dns_queries ADD COLUMN count BIGINT NOT NULL DEFAULT 1;
ALTER TABLE dns_queries ADD COLUMN last_ns BIGINT NOT NULL DEFAULT 0;
