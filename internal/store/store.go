// Package store is mailsec's database layer: the shared record of what the
// service observed.
//
// Listeners (the DNS server, SMTP receivers, HTTPS endpoints) write
// observations here as they happen; the verdict code reads them back later to
// decide whether a tested mail system behaved correctly, for example whether
// its resolver asked for TLSA records with the DNSSEC OK bit set. Writers are
// on hot paths, so bulk writers go through asynchronous batching (see
// DNSQueryLog); readers run ordinary queries.
//
// The database is SQLite (modernc.org/sqlite, no cgo) in WAL mode, or
// PostgreSQL (github.com/jackc/pgx/v5 through database/sql, OpenPostgres),
// on one code path: queries are written with "?" placeholders and pass
// through one rebind helper (Store.q), which gives PostgreSQL its "$n";
// column types are BIGINT, INTEGER and TEXT; booleans are INTEGER 0/1;
// timestamps are BIGINT unix nanoseconds UTC. The migrations are the same
// files on both (migrate.go); what PostgreSQL does differently (locks
// instead of SQLite's one writer, the durable commit, statistics) is in
// postgres.go.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// ErrSchemaTooNew is returned by Open when the database was migrated by a
// newer mailsec than this binary. Running old code against a newer schema
// could silently misread or corrupt data, so Open refuses instead.
var ErrSchemaTooNew = errors.New("store: database schema is newer than this binary supports")

const (
	// busyTimeout is how long a connection waits for a lock held by another
	// connection (or process) before failing with SQLITE_BUSY. WAL readers
	// never wait; writers wait for each other, and a batch insert of 1000
	// rows takes milliseconds, so 5 s only expires if something is wrong.
	busyTimeout = 5 * time.Second

	// maxOpenConns bounds the connection pool. In WAL mode readers do not
	// block the writer or each other, but SQLite allows only one writer at a
	// time, so extra connections only help concurrent readers (verdicts
	// reading while the DNS log flushes). Writers on different connections
	// serialize on the database lock via busy_timeout; because every
	// transaction begins IMMEDIATE (see Open) they take the lock up front and
	// cannot deadlock by upgrading a read lock. Each connection carries its
	// own page cache, so the pool is kept small rather than unbounded.
	maxOpenConns = 4
)

// dialect is the database behind a Store: its placeholder syntax, and the
// few statements that differ (postgres.go).
type dialect int

const (
	dialectSQLite   dialect = iota // "?" placeholders, used as written
	dialectPostgres                // "$1, $2, ..." placeholders, via rebindDollar
)

// Store is the service's database. It is safe for concurrent use.
type Store struct {
	db      *sql.DB
	dialect dialect
	// writeSeconds is the duration of write transactions, waiting for
	// SQLite's one writer included (WriteSeconds).
	writeSeconds prometheus.Histogram
}

// Open opens (creating if needed) the SQLite database at path, configures it
// for concurrent use and applies any pending migrations. It returns an error
// wrapping ErrSchemaTooNew if the database was migrated by a newer binary.
//
// path is a file system path; its parent directory is created with mode 0700
// because the store holds evidence about third parties' mail systems.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("store: resolve database path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("store: create database directory: %w", err)
	}
	if err := restrictFiles(abs); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}

	db, err := sql.Open("sqlite", dsn(abs))
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	db.SetMaxOpenConns(maxOpenConns)
	// Keep idle connections: each new one re-runs the DSN pragmas, and there
	// is no server on the other end whose resources we would free.
	db.SetMaxIdleConns(maxOpenConns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)

	s := &Store{db: db, dialect: dialectSQLite, writeSeconds: newWriteSeconds()}
	if err := s.init(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", abs, err)
	}
	return s, nil
}

// fileMode is the mode of the database file and its -wal and -shm files:
// they hold evidence about third parties' mail systems and test addresses,
// for the service's user only.
const fileMode = 0o600

// restrictFiles creates the database file at abs with fileMode if it does
// not exist, and takes group and other permissions off it and off its
// -wal and -shm files if they exist (a store made by an older version, or
// copied). SQLite gives the -wal and -shm files it creates the mode of the
// database file, so creating that one first is enough for them.
func restrictFiles(abs string) error {
	f, err := os.OpenFile(abs, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	for _, p := range []string{abs, abs + "-wal", abs + "-shm"} {
		info, err := os.Stat(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if info.Mode().Perm()&^fileMode != 0 {
			if err := os.Chmod(p, info.Mode().Perm()&fileMode); err != nil {
				return fmt.Errorf("restrict %s: %w", p, err)
			}
		}
	}
	return nil
}

// dsn builds the modernc.org/sqlite data source name for the file at abs.
//
// The pragmas are given in the DSN rather than executed once after Open
// because they are per-connection settings (except journal_mode, which
// persists in the file) and database/sql opens connections on demand.
//   - journal_mode=WAL: readers and the writer do not block each other.
//   - synchronous=NORMAL: in WAL mode a commit is written but fsync'ed only
//     at the next checkpoint or FULL commit. What a 250 already given rests
//     on (the acknowledgement, a TLS-RPT report) commits through
//     inDurableTx, on a connection switched to FULL, whose fsync of the WAL
//     covers every earlier commit too: a power loss cannot take away the
//     evidence behind a 250 (issue 16), and the history writes before it
//     (about seven per connection) cost no fsync each.
//   - foreign_keys=ON: SQLite does not enforce them unless asked.
//   - _txlock=immediate: BEGIN IMMEDIATE takes the write lock at the start
//     of a transaction, so busy_timeout applies; a deferred transaction that
//     upgrades from read to write fails with SQLITE_BUSY at once instead.
//     All transactions in this package write; reads use plain statements.
func dsn(abs string) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Set("_txlock", "immediate")
	// A file: URI with a percent-encoded path, so that a path containing '?'
	// or '#' is not mistaken for the start of the parameters.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: q.Encode()}
	if !strings.HasPrefix(u.Path, "/") {
		// Windows drive paths ("C:/x") need the leading slash of a URI path.
		u.Path = "/" + u.Path
	}
	return u.String()
}

// init verifies the connection settings took effect and migrates the schema.
func (s *Store) init(ctx context.Context) error {
	var mode string
	if err := s.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("query journal mode: %w", err)
	}
	// SQLite silently keeps the old mode when WAL is impossible (for example
	// on some network file systems); the concurrency design depends on WAL.
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	return s.migrate(ctx)
}

// Close closes the database. Callers must stop writers (such as a running
// DNSQueryLog) first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// DB returns the underlying database handle, for queries this package does
// not wrap. Such code should follow the package's conventions: timestamps as
// unix nanoseconds UTC, and no read-only work inside BeginTx, since every
// non-ReadOnly transaction begins IMMEDIATE and so takes the write lock.
func (s *Store) DB() *sql.DB { return s.db }

// q adapts a query written with "?" placeholders to the store's dialect.
// Every query in this package goes through it so that a PostgreSQL port does
// not have to touch each call site.
func (s *Store) q(query string) string {
	if s.dialect == dialectPostgres {
		return rebindDollar(query)
	}
	return query
}

// rebindDollar replaces each "?" placeholder with "$1", "$2", ... as
// PostgreSQL expects. It skips question marks inside single-quoted string
// literals (a doubled quote inside a literal escapes a quote and so toggles
// twice), which is all the quoting the SQL in this package uses.
func rebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	inString := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			inString = !inString
		case c == '?' && !inString:
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// timeToNanos converts t to unix nanoseconds, the stored time format. It
// fails for times UnixNano cannot represent (before 1678 or after 2262),
// rather than storing a wrapped-around value.
func timeToNanos(t time.Time) (int64, error) {
	if t.Before(time.Unix(0, math.MinInt64)) || t.After(time.Unix(0, math.MaxInt64)) {
		return 0, fmt.Errorf("time %s out of storable range", t.Format(time.RFC3339))
	}
	return t.UnixNano(), nil
}

// clampToNanos converts a query bound to unix nanoseconds, clamping times
// outside the storable range to its ends: such a bound excludes nothing (or
// everything), which is what the caller meant.
func clampToNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// nanosToTime converts stored unix nanoseconds back to a UTC time.
func nanosToTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }

// boolToInt stores a boolean as INTEGER 0/1. Converting explicitly keeps the
// SQL portable: PostgreSQL drivers refuse to bind a Go bool to an integer.
func boolToInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
