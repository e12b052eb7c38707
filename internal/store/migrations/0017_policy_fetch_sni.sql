-- Issue 14: a fetch of a test slot's own MTA-STS policy (SNI
-- mta-sts.s001.A) is its test's evidence whatever address it came from
-- (store.PolicyFetchFilter.SNI): read by the name the client sent, in
-- lower case (RFC 4343), newest first.
CREATE INDEX policy_fetches_sni ON policy_fetches (lower(sni), time_ns);
