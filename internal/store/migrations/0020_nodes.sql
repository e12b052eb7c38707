-- Several nodes on one database (issue 18, point 2; docs/cluster.md).
--
-- Each connection record names the node that holds the connection, so a
-- node starting after a crash ends only its own open records: another
-- node's open rows are its live sessions. Rows from before this migration
-- have node '' (a single process wrote them).
ALTER TABLE smtp_connections ADD COLUMN node TEXT NOT NULL DEFAULT '';
CREATE INDEX smtp_connections_open_by_node ON smtp_connections (node) WHERE ended_ns = 0;

-- The nodes serving from this database: each writes seen_ns at every
-- heartbeat. The leader ends the open connection records of a node not seen
-- for node.dead_after (it died; its connections died with it), and a node
-- whose published keys (keys: a digest of the DS records, the result-mail
-- DKIM record and the TLSA data) differ from those of a live node refuses
-- to start: the zones would answer differently depending on the server
-- asked.
CREATE TABLE cluster_nodes (
    name       TEXT   NOT NULL PRIMARY KEY,
    started_ns BIGINT NOT NULL, -- unix nanoseconds UTC
    seen_ns    BIGINT NOT NULL,
    keys       TEXT   NOT NULL,
    is_leader  INTEGER NOT NULL DEFAULT 0 -- 0/1: holds the leader lock (as of seen_ns)
);
