package store

import (
	"cmp"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migrationFS holds the schema migrations, named NNNN_description.sql. They
// are embedded so the binary carries exactly the schema it was written for.
// A migration must never be edited once released; add a new one instead.
//
// One file serves both databases (the rules are in docs/store.md
// "Writing a migration"): on PostgreSQL it passes through pgRewrite, which
// turns SQLite's two spellings that PostgreSQL lacks into PostgreSQL's. A
// statement that must differ otherwise goes into a variant file,
// NNNN_description.postgres.sql beside NNNN_description.sql, which
// PostgreSQL runs instead of the portable file (and SQLite ignores).
//
//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one schema change.
type migration struct {
	version int64
	name    string // file name, recorded for people inspecting the database
	sql     string
}

// loadMigrations returns the migrations of fsys (a directory "migrations")
// for the dialect d, sorted by version.
func loadMigrations(fsys fs.FS, d dialect) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []migration
	variants := map[int64]migration{}
	for _, e := range entries {
		name := e.Name()
		prefix, rest, ok := strings.Cut(name, "_")
		if !ok || !strings.HasSuffix(rest, ".sql") {
			return nil, fmt.Errorf("migration %s: name is not NNNN_description.sql", name)
		}
		v, err := strconv.ParseInt(prefix, 10, 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_description.sql", name)
		}
		b, err := fs.ReadFile(fsys, path.Join("migrations", name))
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		m := migration{version: v, name: name, sql: string(b)}
		base, variant := strings.CutSuffix(rest, ".postgres.sql")
		switch {
		case !variant:
			ms = append(ms, m)
		case strings.Contains(base, "."):
			return nil, fmt.Errorf("migration %s: a variant is NNNN_description.postgres.sql", name)
		default:
			if _, dup := variants[v]; dup {
				return nil, fmt.Errorf("migration %s: two PostgreSQL variants of version %d", name, v)
			}
			variants[v] = m
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("no migrations embedded")
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	for v, m := range variants {
		i, found := slices.BinarySearchFunc(ms, v, func(m migration, v int64) int { return cmp.Compare(m.version, v) })
		if !found {
			return nil, fmt.Errorf("migration %s: no portable migration of version %d beside it", m.name, v)
		}
		if d == dialectPostgres {
			ms[i] = m
		}
	}
	if d == dialectPostgres {
		for i := range ms {
			ms[i].sql = pgRewrite(ms[i].sql)
		}
	}
	return ms, nil
}

// pgRewrite turns the SQLite spellings of a portable migration into
// PostgreSQL's: "INTEGER PRIMARY KEY", SQLite's alias of the row id, a
// 64-bit key the database assigns, becomes an identity column (the
// application never writes the id); "BLOB" becomes "BYTEA" (both compare
// byte-wise). Whole words only, in capitals as the migrations write them.
func pgRewrite(sql string) string {
	sql = integerPrimaryKey.ReplaceAllString(sql, "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY")
	return blobType.ReplaceAllString(sql, "BYTEA")
}

var (
	integerPrimaryKey = regexp.MustCompile(`\bINTEGER PRIMARY KEY\b`)
	blobType          = regexp.MustCompile(`\bBLOB\b`)
)

// migrate applies every embedded migration not yet recorded in
// schema_migrations, each in its own transaction together with its record,
// so a failed migration leaves the schema at the previous version.
//
// Two processes opening the same database at once are safe: the
// migration's transaction holds the write lock (SQLite: it begins
// IMMEDIATE; PostgreSQL: lockMigrations), so the second waits for the
// first and then sees its record, and skips the migration. On PostgreSQL
// the DDL is transactional too.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := loadMigrations(migrationFS, s.dialect)
	if err != nil {
		return err
	}
	latest := ms[len(ms)-1].version

	// CREATE TABLE IF NOT EXISTS is accepted by both SQLite and PostgreSQL;
	// PostgreSQL's can still fail when two run at once (a catalogue
	// conflict), hence the lock.
	if err := s.inTx(ctx, "create schema_migrations", func(tx *sql.Tx) error {
		if err := s.serialise(ctx, tx, lockMigrations); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    BIGINT NOT NULL PRIMARY KEY,
    name       TEXT   NOT NULL,
    applied_ns BIGINT NOT NULL -- unix nanoseconds UTC
)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		return nil
	}); err != nil {
		return err
	}

	// Checked before touching anything, and again inside each transaction in
	// case a newer binary migrated concurrently.
	cur, err := s.schemaVersion(ctx, s.db)
	if err != nil {
		return err
	}
	if cur > latest {
		return fmt.Errorf("%w: database is at version %d, this binary knows up to %d", ErrSchemaTooNew, cur, latest)
	}

	applied, err := s.appliedVersions(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		// Skipping known versions here keeps a routine re-open from taking
		// the write lock once per migration; applyMigration re-checks under
		// the lock.
		if applied[m.version] {
			continue
		}
		if err := s.applyMigration(ctx, m, latest); err != nil {
			return err
		}
	}
	return nil
}

// appliedVersions returns the set of recorded migration versions.
func (s *Store) appliedVersions(ctx context.Context) (map[int64]bool, error) {
	versions, err := queryRows(ctx, s.db, "read applied migrations", scanValue[int64], s.q(`SELECT version FROM schema_migrations`))
	if err != nil {
		return nil, err
	}
	applied := make(map[int64]bool, len(versions))
	for _, v := range versions {
		applied[v] = true
	}
	return applied, nil
}

// schemaVersion returns the highest applied migration version, 0 if none.
func (s *Store) schemaVersion(ctx context.Context, db querier) (int64, error) {
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, s.q(`SELECT MAX(version) FROM schema_migrations`)).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v.Int64, nil
}

// applyMigration applies m unless it is already recorded.
func (s *Store) applyMigration(ctx context.Context, m migration, latest int64) error {
	return s.inTx(ctx, "migration "+m.name, func(tx *sql.Tx) error {
		if err := s.serialise(ctx, tx, lockMigrations); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		cur, err := s.schemaVersion(ctx, tx)
		if err != nil {
			return err
		}
		if cur > latest {
			return fmt.Errorf("%w: database is at version %d, this binary knows up to %d", ErrSchemaTooNew, cur, latest)
		}
		var n int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
			return fmt.Errorf("migration %s: check applied: %w", m.name, err)
		}
		if n > 0 {
			return nil // another process applied it meanwhile: nothing to commit
		}

		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %s: %w", m.name, err)
		}
		if err := s.backfill(ctx, tx, m.version); err != nil {
			return fmt.Errorf("migration %s: backfill: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_ns) VALUES (?, ?, ?)`),
			m.version, m.name, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("migration %s: record: %w", m.name, err)
		}
		return nil
	})
}

// backfill runs the part of migration version that SQL cannot do portably,
// in the migration's transaction, after its script.
func (s *Store) backfill(ctx context.Context, tx *sql.Tx, version int64) error {
	switch version {
	case 9:
		return s.backfillPolicyFetchIP(ctx, tx)
	case 15:
		return s.backfillLegacyOwnerKeys(ctx, tx)
	}
	return nil
}

// backfillBatch is how many rows a backfill reads per query: the rows are
// read, then updated, on the transaction's one connection.
const backfillBatch = 1000

// backfillRow is a row a backfill reads: its cursor (the column the rows
// are ordered and resumed by) and the value it works from.
type backfillRow[K, V any] struct {
	cursor K
	value  V
}

func scanBackfillRow[K, V any](rs rowScanner) (r backfillRow[K, V], err error) {
	err = rs.Scan(&r.cursor, &r.value)
	return r, err
}

// backfillInBatches runs apply on every row query returns, in the order
// of its cursor column: query selects the cursor and the value of the rows
// after the last cursor seen (first, at the start), up to a limit; it is
// run for backfillBatch rows at a time.
func backfillInBatches[K, V any](ctx context.Context, tx *sql.Tx, what, query string, first K, apply func(backfillRow[K, V]) error) error {
	last := first
	for {
		batch, err := queryRows(ctx, tx, what, scanBackfillRow[K, V], query, last, backfillBatch)
		if err != nil {
			return err
		}
		for _, r := range batch {
			if err := apply(r); err != nil {
				return err
			}
			last = r.cursor
		}
		if len(batch) < backfillBatch {
			return nil
		}
	}
}

// backfillPolicyFetchIP fills policy_fetches.client_ip (migration 0009)
// from the text column client_addr.
func (s *Store) backfillPolicyFetchIP(ctx context.Context, tx *sql.Tx) error {
	return backfillInBatches(ctx, tx, "backfill policy_fetches.client_ip", s.q(`SELECT id, client_addr FROM policy_fetches
WHERE id > ? AND client_ip IS NULL AND client_addr <> ''
ORDER BY id
LIMIT ?`), int64(-1<<63), func(r backfillRow[int64, string]) error {
		a, err := netip.ParseAddr(r.value)
		if err != nil {
			return fmt.Errorf("policy fetch %d: client address %q: %w", r.cursor, r.value, err)
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE policy_fetches SET client_ip = ? WHERE id = ?`), addrKey(a), r.cursor)
		return err
	})
}
