package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// This file holds the ACME dns-01 challenge records shared by the nodes
// (migration 0026; docs/cluster.md "ACME across nodes"): the node that
// orders a certificate writes them, every node's zones serve them.

// SetACMEChallenge replaces node's TXT values of the challenge name by
// values, served until until at most; values from other nodes for the same
// name stay. An empty values removes node's.
func (s *Store) SetACMEChallenge(ctx context.Context, node, name string, values []string, until time.Time) error {
	return s.inTx(ctx, "set ACME challenge "+name, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM acme_challenges WHERE name = ? AND node = ?`), name, node); err != nil {
			return fmt.Errorf("store: set ACME challenge %s: %w", name, err)
		}
		for _, v := range slices.Compact(slices.Sorted(slices.Values(values))) {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO acme_challenges (name, node, value, until_ns) VALUES (?, ?, ?, ?)`),
				name, node, v, clampToNanos(until)); err != nil {
				return fmt.Errorf("store: set ACME challenge %s: %w", name, err)
			}
		}
		return nil
	})
}

// ACMEChallenges returns the challenge records of every node still to be
// served at now: owner name → TXT values (sorted, each once). Every node
// reads them every heartbeat, so this only reads; the retention purge
// deletes the rows whose time ran out (PruneACMEChallenges).
func (s *Store) ACMEChallenges(ctx context.Context, now time.Time) (map[string][]string, error) {
	type row struct{ name, value string }
	rows, err := queryRows(ctx, s.db, "ACME challenges", func(r rowScanner) (row, error) {
		var v row
		return v, r.Scan(&v.name, &v.value)
	}, s.q(`SELECT DISTINCT name, value FROM acme_challenges WHERE until_ns > ? ORDER BY name, value LIMIT 10000`), clampToNanos(now))
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, r := range rows {
		out[r.name] = append(out[r.name], r.value)
	}
	return out, nil
}

// ACMEChallengesLoaded records that node loaded the challenge records
// with a read that began at at.
func (s *Store) ACMEChallengesLoaded(ctx context.Context, node string, at time.Time) error {
	_, err := execCount(ctx, s.db, "ACME challenges loaded", s.q(`INSERT INTO acme_challenge_loads (node, loaded_ns) VALUES (?, ?)
ON CONFLICT (node) DO UPDATE SET loaded_ns = excluded.loaded_ns WHERE acme_challenge_loads.loaded_ns < excluded.loaded_ns`),
		node, clampToNanos(at))
	return err
}

// ACMEChallengeLoads returns, by node, when each node that loaded the
// challenge records since since last did.
func (s *Store) ACMEChallengeLoads(ctx context.Context, since time.Time) (map[string]time.Time, error) {
	type row struct {
		node string
		at   int64
	}
	rows, err := queryRows(ctx, s.db, "ACME challenge loads", func(r rowScanner) (row, error) {
		var v row
		return v, r.Scan(&v.node, &v.at)
	}, s.q(`SELECT node, loaded_ns FROM acme_challenge_loads WHERE loaded_ns >= ? ORDER BY node LIMIT 1000`), clampToNanos(since))
	if err != nil {
		return nil, err
	}
	out := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		out[r.node] = nanosToTime(r.at)
	}
	return out, nil
}

// PruneACMEChallenges deletes the challenge records whose time ran out at
// now, and the load reports of nodes that have not loaded since before
// (nodes gone for good); it returns the rows deleted.
func (s *Store) PruneACMEChallenges(ctx context.Context, now, before time.Time) (int64, error) {
	n, err := execCount(ctx, s.db, "prune ACME challenges",
		s.q(`DELETE FROM acme_challenges WHERE until_ns <= ?`), clampToNanos(now))
	if err != nil {
		return n, err
	}
	m, err := execCount(ctx, s.db, "prune ACME challenge loads",
		s.q(`DELETE FROM acme_challenge_loads WHERE loaded_ns < ?`), clampToNanos(before))
	return n + m, err
}
