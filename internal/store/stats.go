package store

import (
	"context"
	"fmt"
	"strings"
)

// Stats is what an operator asks of the database: the rows of every table,
// the database's size, and (when asked) the result of its integrity check.
type Stats struct {
	Tables map[string]int64 `json:"tables"`
	Bytes  int64            `json:"bytes"`
	// Integrity is "ok" when the check passed, its first problems
	// otherwise, and "" when it was not run.
	Integrity string `json:"integrity,omitempty"`
}

// Stats counts the rows of every table (migrations bookkeeping included)
// and the database's size in bytes. With integrity, it also checks the
// database: SQLite's PRAGMA integrity_check, which reads every page (slow
// on a large store); on PostgreSQL amcheck's B-tree checks, or an error
// wrapping ErrUnsupported without that extension (pgStats).
func (s *Store) Stats(ctx context.Context, integrity bool) (Stats, error) {
	st := Stats{Tables: map[string]int64{}}
	if s.dialect == dialectPostgres {
		if err := s.pgStats(ctx, &st, integrity); err != nil {
			return Stats{}, err
		}
		return st, nil
	}
	names, err := queryRows(ctx, s.db, "stats", scanValue[string],
		"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		return Stats{}, err
	}
	if err := s.countTables(ctx, &st, names); err != nil {
		return Stats{}, err
	}
	pages, err := queryOne(ctx, s.db, "stats", scanValue[int64], "PRAGMA page_count")
	if err != nil {
		return Stats{}, err
	}
	size, err := queryOne(ctx, s.db, "stats", scanValue[int64], "PRAGMA page_size")
	if err != nil {
		return Stats{}, err
	}
	st.Bytes = pages * size
	if integrity {
		problems, err := queryRows(ctx, s.db, "integrity check", scanValue[string], "PRAGMA integrity_check(20)")
		if err != nil {
			return Stats{}, err
		}
		st.Integrity = strings.Join(problems, "; ")
	}
	return st, nil
}

// countTables counts the rows of each table of names into st.Tables. The
// names come from the database's catalogue, not from a user; quoted as
// identifiers all the same.
func (s *Store) countTables(ctx context.Context, st *Stats, names []string) error {
	for _, n := range names {
		rows, err := queryOne(ctx, s.db, "stats: counting "+n, scanValue[int64],
			`SELECT count(*) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`)
		if err != nil {
			return err
		}
		st.Tables[n] = rows
	}
	return nil
}

// Backup writes a consistent copy of the database to path (SQLite's VACUUM
// INTO: a snapshot, compacted, while the service goes on writing). path
// must not exist. On PostgreSQL it returns an error wrapping
// ErrUnsupported: the operator's tool there is pg_dump (docs/store.md).
func (s *Store) Backup(ctx context.Context, path string) error {
	if s.dialect == dialectPostgres {
		return fmt.Errorf("%w: a PostgreSQL store is backed up with pg_dump (for example pg_dump -Fc -f %s DSN; docs/store.md), not by mailsec", ErrUnsupported, path)
	}
	if _, err := s.db.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("store: backup to %s: %w", path, err)
	}
	return nil
}
