package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// This file holds how every table's code runs its statements: reading
// rows, changing them, transactions. Callers pass queries through Store.q
// first, as everywhere else. Every error is "store: <what>: ..." with what
// naming the operation, so the call sites only say what they do; the
// sentinels ErrNotFound and ErrExists are wrapped where the statement
// shows them. Optional filters and limits are in filter.go.

// querier is what both *sql.DB and *sql.Tx offer, so one statement serves
// plain calls and transactions.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// rowScanner is one row of a result: *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// scanValue reads a row of one column.
func scanValue[T any](row rowScanner) (T, error) {
	var v T
	err := row.Scan(&v)
	return v, err
}

// queryRows runs query and converts each row with scan. The rows are closed
// when it returns, so the caller may run the next statement on the same
// connection (a transaction's) or write to the store.
func queryRows[T any](ctx context.Context, db querier, what string, scan func(rowScanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// eachInPages calls fn for every row of a walk read page by page, so
// that a table of any size is streamed with bounded memory: page(after)
// reads the rows whose key is past after (the first call: -1), in key
// order, at most size; key is a row's key. A page's rows are closed
// before fn runs, so fn may write to the store. An error from fn stops
// the walk and is returned.
func eachInPages[T any](size int, page func(after int64) ([]T, error), key func(T) int64, fn func(T) error) error {
	after := int64(-1)
	for {
		rows, err := page(after)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := fn(r); err != nil {
				return err
			}
		}
		if len(rows) < size {
			return nil
		}
		after = key(rows[len(rows)-1])
	}
}

// queryOne reads the first row query selects with scan; an error wrapping
// ErrNotFound if it selects none.
func queryOne[T any](ctx context.Context, db querier, what string, scan func(rowScanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(db.QueryRowContext(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		err = ErrNotFound
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("store: %s: %w", what, err)
	}
	return v, nil
}

// execCount runs a statement and returns how many rows it changed.
func execCount(ctx context.Context, db querier, what, query string, args ...any) (int64, error) {
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("store: %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("store: %s: %w", what, err)
	}
	return n, nil
}

// execOne runs a statement that must change a row: an UPDATE or DELETE of
// one key. No row changed is an error wrapping ErrNotFound.
func execOne(ctx context.Context, db querier, what, query string, args ...any) error {
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return expectOneRow(res, what)
}

// expectOneRow turns "no row matched" into ErrNotFound.
func expectOneRow(res sql.Result, what string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	return nil
}

// insertNew runs an INSERT ... ON CONFLICT DO NOTHING; a row that was there
// already (no row inserted) is an error wrapping ErrExists. The row count
// tells a duplicate apart without parsing driver-specific constraint
// errors (SQLite and PostgreSQL).
func insertNew(ctx context.Context, db querier, what, query string, args ...any) error {
	n, err := execCount(ctx, db, what, query, args...)
	if err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("store: %s: %w", what, ErrExists)
	}
	return nil
}

// inTx runs fn in a transaction and commits it if fn returns nil; on an
// error (returned as it is) or a panic in fn, nothing fn did is kept.
// On SQLite transactions begin IMMEDIATE (see dsn), so they are for writes
// only, and one runs at a time; on PostgreSQL they run side by side (READ
// COMMITTED), and one that counts before it writes takes the lock of what it
// counts first (Store.serialise).
func (s *Store) inTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	defer s.timeWrite(time.Now())
	return runTx(ctx, s.db, what, fn)
}

// txBeginner is a *sql.DB or a *sql.Conn.
type txBeginner interface {
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// runTx runs fn in a transaction begun on db: committed when fn returns
// nil, rolled back on an error or a panic.
func runTx(ctx context.Context, db txBeginner, what string, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: %s: begin: %w", what, err)
	}
	// After a Commit, Rollback does nothing (sql.ErrTxDone).
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: %s: commit: %w", what, err)
	}
	return nil
}

// inDurableTx is inTx for a transaction whose commit must be on disk when
// it returns: what a 250 already given rests on (the acknowledgement of a
// test mail, a TLS-RPT report taken). The pool's connections use
// synchronous=NORMAL, under which a WAL commit reaches the disk only at the
// next checkpoint or fsync; this transaction runs on a connection switched
// to FULL for it, whose commit fsyncs the WAL file — and with it every frame
// committed before, by any connection (the evidence the 250 follows from).
// One fsync per accepted mail instead of one per history write: FULL on
// every connection cost the SMTP benchmark (P2) 60 % of its throughput.
func (s *Store) inDurableTx(ctx context.Context, what string, fn func(tx *sql.Tx) error) error {
	if s.dialect == dialectPostgres {
		// A PostgreSQL commit flushes its WAL, and every commit before
		// it, unless synchronous_commit is off: then this one is switched
		// on (pgDurableCommit).
		return s.inTx(ctx, what, func(tx *sql.Tx) error {
			if err := pgDurableCommit(ctx, tx); err != nil {
				return fmt.Errorf("store: %s: %w", what, err)
			}
			return fn(tx)
		})
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous=FULL"); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	// Back to NORMAL before the connection returns to the pool (deferred
	// calls run last-in first-out: before Close). Should it fail, the
	// connection stays FULL: slower, never less safe.
	defer conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous=NORMAL") //nolint:errcheck // see above
	defer s.timeWrite(time.Now())
	return runTx(ctx, conn, what, fn)
}
