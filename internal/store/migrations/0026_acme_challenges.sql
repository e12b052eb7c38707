-- ACME dns-01 challenge records shared by every node (issue 18, point 2;
-- docs/cluster.md, docs/certificates.md). The node that asks a CA for a
-- certificate publishes the challenge's TXT value here; every node's DNS
-- server loads the rows into its zones (signed as they are served), so a
-- validating CA may ask any of the zones' name servers (RFC 8555 §8.4).
-- A name may carry values of several nodes at once (each node orders its
-- own certificates): the TXT RRset served is their union. A row outlives
-- its node only until until_ns, should the node die before removing it.
CREATE TABLE acme_challenges (
    name     TEXT   NOT NULL, -- canonical owner name, _acme-challenge.<host>.
    node     TEXT   NOT NULL, -- the node that published it
    value    TEXT   NOT NULL, -- the TXT value (the key authorization's digest)
    until_ns BIGINT NOT NULL, -- unix nanoseconds UTC: served until then at most
    PRIMARY KEY (name, node, value)
);

-- When each node last loaded the records into its zones (loaded_ns: the
-- time its read of acme_challenges began, by its clock). The publishing
-- node waits until every node that loads (a live one loads every
-- heartbeat) has loaded after its write, so the CA is told to validate
-- only when every name server answers.
CREATE TABLE acme_challenge_loads (
    node      TEXT   NOT NULL PRIMARY KEY,
    loaded_ns BIGINT NOT NULL
);
