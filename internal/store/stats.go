package store

import (
	"context"
	"fmt"
	"strings"
)

// Stats is what an operator asks of the database: the rows of every table,
// the file's size, and (when asked) the result of SQLite's integrity check.
type Stats struct {
	Tables map[string]int64 `json:"tables"`
	Bytes  int64            `json:"bytes"`
	// Integrity is "ok" when the check passed, its first problems
	// otherwise, and "" when it was not run.
	Integrity string `json:"integrity,omitempty"`
}

// Stats counts the rows of every table (migrations bookkeeping included)
// and the database's size in bytes. With integrity, it also runs PRAGMA
// integrity_check, which reads every page: slow on a large store.
func (s *Store) Stats(ctx context.Context, integrity bool) (Stats, error) {
	st := Stats{Tables: map[string]int64{}}
	names, err := queryRows(ctx, s.db, "stats", scanValue[string],
		"SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
	if err != nil {
		return Stats{}, err
	}
	for _, n := range names {
		// The name comes from sqlite_master, not from a user; quoted as an
		// identifier all the same.
		rows, err := queryOne(ctx, s.db, "stats: counting "+n, scanValue[int64],
			`SELECT count(*) FROM "`+strings.ReplaceAll(n, `"`, `""`)+`"`)
		if err != nil {
			return Stats{}, err
		}
		st.Tables[n] = rows
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

// Backup writes a consistent copy of the database to path (SQLite's VACUUM
// INTO: a snapshot, compacted, while the service goes on writing). path
// must not exist.
func (s *Store) Backup(ctx context.Context, path string) error {
	if _, err := s.db.ExecContext(ctx, "VACUUM INTO ?", path); err != nil {
		return fmt.Errorf("store: backup to %s: %w", path, err)
	}
	return nil
}
