-- The downgrade window restarts for each test episode of a client
-- (docs/smtp.md "The downgrade window, and what one client is"):
-- window_start_ns is the start of the client's current window; first_seen_ns
-- stays the client's first connection ever. Existing clients are in their
-- first episode.
ALTER TABLE smtp_clients ADD COLUMN window_start_ns BIGINT NOT NULL DEFAULT 0;
UPDATE smtp_clients SET window_start_ns = first_seen_ns;
-- Whether an episode is over is decided from the client's connections since
-- its window started (store.ClientEpisode), looked up by client key.
CREATE INDEX smtp_connections_client_key ON smtp_connections (client_key, started_ns);
