package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// This file holds the fixed-address tests' own queries (migration 0013): a
// fixed test is keyed by envelope sender and client network, and the open
// ones are capped per client network and overall, because anyone can send
// a mail with any MAIL FROM to a fixed address (docs/smtp.md).

// Sentinel errors of CreateFixedTest: the caps of FixedTestLimits.
var (
	ErrFixedTestsPerClient = errors.New("store: too many open fixed-address tests from this client network")
	ErrFixedTestsFull      = errors.New("store: too many open fixed-address tests")
)

// FixedTestLimits caps the open (not final) fixed-address tests. Zero
// fields do not restrict.
type FixedTestLimits struct {
	PerClient int // per client network (fixed_client)
	Open      int // overall
}

// OpenFixedTest returns the newest fixed-address test of the envelope
// sender from the client network client (its text form,
// clientnet.Key) that is not final. It returns an error wrapping
// ErrNotFound if there is none. Sender and client are compared exactly;
// callers normalize them.
func (s *Store) OpenFixedTest(ctx context.Context, sender, client string) (Test, error) {
	return queryOne(ctx, s.db, fmt.Sprintf("open fixed test of %q from %s", sender, client), scanTest, s.q(openFixedTestSQL), client, sender)
}

// The queries of the open fixed tests. The literals 'fixed' and 'final' let
// SQLite use the partial index tests_fixed_open (its WHERE must be implied
// by the query's).
const (
	openFixedTestSQL = `SELECT ` + testColumns + ` FROM tests
WHERE kind = 'fixed' AND state <> 'final' AND fixed_client = ? AND sender = ?
ORDER BY created_ns DESC, id DESC
LIMIT 1`
	countFixedOfClientSQL = `SELECT COUNT(*) FROM tests WHERE kind = 'fixed' AND state <> 'final' AND fixed_client = ?`
	// fixed_client >= '' holds for every row; it makes SQLite count on
	// tests_fixed_open (the fixed tests only) instead of tests_due (every
	// open test).
	countFixedOpenSQL = `SELECT COUNT(*) FROM tests WHERE kind = 'fixed' AND state <> 'final' AND fixed_client >= ''`
)

// CreateFixedTest stores the new fixed-address test t (Kind TestFixed) of
// the client network client, unless the open fixed tests would exceed lim:
// then nothing is stored and the error wraps ErrFixedTestsPerClient or
// ErrFixedTestsFull. Count and insert run in one transaction that has the
// fixed tests to itself (SQLite: begun IMMEDIATE; PostgreSQL: the advisory
// lock lockFixedTests), so concurrent creations cannot overshoot the caps,
// from any number of processes. It returns
// an error wrapping ErrExists if a test with t's id exists.
func (s *Store) CreateFixedTest(ctx context.Context, t Test, client string, lim FixedTestLimits) error {
	if t.Kind != TestFixed {
		return fmt.Errorf("store: create fixed test %s: kind %q", t.ID, t.Kind)
	}
	if client == "" {
		return fmt.Errorf("store: create fixed test %s: empty client", t.ID)
	}
	what := "create fixed test " + t.ID
	return s.inTx(ctx, what, func(tx *sql.Tx) error {
		if err := s.serialise(ctx, tx, lockFixedTests); err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		if lim.PerClient > 0 {
			n, err := queryOne(ctx, tx, what, scanValue[int64], s.q(countFixedOfClientSQL), client)
			if err != nil {
				return err
			}
			if n >= int64(lim.PerClient) {
				return fmt.Errorf("store: %s: %w (%s has %d open, limit %d)", what, ErrFixedTestsPerClient, client, n, lim.PerClient)
			}
		}
		if lim.Open > 0 {
			n, err := queryOne(ctx, tx, what, scanValue[int64], s.q(countFixedOpenSQL))
			if err != nil {
				return err
			}
			if n >= int64(lim.Open) {
				return fmt.Errorf("store: %s: %w (%d open, limit %d)", what, ErrFixedTestsFull, n, lim.Open)
			}
		}
		return s.createTest(ctx, tx, t, client)
	})
}
