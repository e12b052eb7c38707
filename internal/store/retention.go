package store

import (
	"context"
	"fmt"
	"time"
)

// Retention: the tables that grow with what peers send are pruned by age,
// in chunks, by the service's retention purge (internal/retention) and the
// DNS query log.

// pruneBefore deletes the rows of table whose timeColumn is before t, at
// most pruneChunk per statement, and returns how many it deleted. table and
// timeColumn are constants of this package, never input.
func (s *Store) pruneBefore(ctx context.Context, what, table, timeColumn string, t time.Time) (int64, error) {
	cutoff := clampToNanos(t)
	// DELETE ... LIMIT is not portable (SQLite needs a compile option,
	// PostgreSQL has none), so the chunk is chosen by a subquery on id.
	query := fmt.Sprintf(`DELETE FROM %[1]s WHERE id IN
    (SELECT id FROM %[1]s WHERE %[2]s < ? ORDER BY %[2]s LIMIT ?)`, table, timeColumn)
	return s.pruneChunks(ctx, what, query, cutoff)
}

// PrunePolicyFetches deletes the policy fetches made before t and returns
// how many it deleted.
func (s *Store) PrunePolicyFetches(ctx context.Context, t time.Time) (int64, error) {
	return s.pruneBefore(ctx, "prune policy fetches", "policy_fetches", "time_ns", t)
}

// pruneChunked runs a DELETE of at most pruneChunk rows (its last three
// arguments are the cutoff twice and the chunk size) until it deletes fewer.
func (s *Store) pruneChunked(ctx context.Context, what, query string, cutoff int64) (int64, error) {
	return s.pruneChunks(ctx, what, query, cutoff, cutoff)
}

// pruneChunks runs query, a DELETE of at most pruneChunk rows whose
// arguments are args followed by the chunk size, until it deletes fewer.
func (s *Store) pruneChunks(ctx context.Context, what, query string, args ...any) (int64, error) {
	query = s.q(query)
	args = append(args, pruneChunk)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("store: %s: %w", what, err)
		}
		n, err := execCount(ctx, s.db, what, query, args...)
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

// PruneClients deletes the downgrade-window state of client networks first
// seen and last given a window before t that have no connection left (the
// retention purge deletes connections first): a client seen again later
// starts afresh, as a new client would. Without it, every client network
// that ever connected would keep a row for ever.
func (s *Store) PruneClients(ctx context.Context, t time.Time) (int64, error) {
	return s.pruneChunked(ctx, "prune clients", `DELETE FROM smtp_clients WHERE client IN
    (SELECT client FROM smtp_clients WHERE first_seen_ns < ? AND window_start_ns < ?
       AND NOT EXISTS (SELECT 1 FROM smtp_connections c WHERE c.client_key = smtp_clients.client)
     LIMIT ?)`, clampToNanos(t))
}

// PruneUntiedInboundChecks deletes the inbound checks tied to no test (web
// checks, the provider table's) that ran before t; a test's check goes
// with its test.
func (s *Store) PruneUntiedInboundChecks(ctx context.Context, t time.Time) (int64, error) {
	return s.pruneChunked(ctx, "prune untied inbound checks", `DELETE FROM inbound_checks WHERE id IN
    (SELECT id FROM inbound_checks WHERE test_id = '' AND checked_ns < ? AND stored_ns < ? ORDER BY checked_ns LIMIT ?)`, clampToNanos(t))
}
