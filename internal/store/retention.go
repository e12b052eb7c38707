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
	query := s.q(fmt.Sprintf(`DELETE FROM %[1]s WHERE id IN
    (SELECT id FROM %[1]s WHERE %[2]s < ? ORDER BY %[2]s LIMIT ?)`, table, timeColumn))
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("store: %s: %w", what, err)
		}
		n, err := execCount(ctx, s.db, what, query, cutoff, pruneChunk)
		if err != nil {
			return total, err
		}
		total += n
		if n < pruneChunk {
			return total, nil
		}
	}
}

// PrunePolicyFetches deletes the policy fetches made before t and returns
// how many it deleted.
func (s *Store) PrunePolicyFetches(ctx context.Context, t time.Time) (int64, error) {
	return s.pruneBefore(ctx, "prune policy fetches", "policy_fetches", "time_ns", t)
}

// PruneTLSRPTReports deletes the TLS-RPT report mails received before t
// and returns how many it deleted.
func (s *Store) PruneTLSRPTReports(ctx context.Context, t time.Time) (int64, error) {
	return s.pruneBefore(ctx, "prune TLS-RPT reports", "tlsrpt_reports", "received_ns", t)
}
