package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/pgtest"
)

// Every store test runs on both databases: forEachBackend runs it as the
// subtests "sqlite" (a file in a temporary directory) and "postgres" (a
// fresh database on the test binary's throwaway cluster, internal/pgtest:
// skipped without PostgreSQL installed, a failure then under CI=true).

// testDrivers are the databases the tests run on.
var testDrivers = []string{DriverSQLite, DriverPostgres}

// forEachDriver runs fn as a subtest per database.
func forEachDriver(t *testing.T, fn func(t *testing.T, driver string)) {
	t.Helper()
	for _, d := range testDrivers {
		t.Run(d, func(t *testing.T) { fn(t, d) })
	}
}

// forEachBackend runs fn as a subtest per database with a fresh store of
// it.
func forEachBackend(t *testing.T, fn func(t *testing.T, s *Store)) {
	t.Helper()
	forEachDriver(t, func(t *testing.T, driver string) { fn(t, openTestStoreOf(t, driver)) })
}

// newTestDSN returns the DSN of a fresh, empty database of driver: a file
// path for SQLite, a URL for PostgreSQL. It is removed when t ends.
func newTestDSN(t testing.TB, driver string) string {
	t.Helper()
	if driver == DriverPostgres {
		return pgtest.Database(t)
	}
	return filepath.Join(t.TempDir(), "mailsec.db")
}

// openTestStoreOf opens a store on a fresh database of driver and closes
// it when the test ends.
func openTestStoreOf(t testing.TB, driver string) *Store {
	t.Helper()
	s, err := OpenDriver(t.Context(), driver, newTestDSN(t, driver))
	if err != nil {
		t.Fatalf("Open %s: %v", driver, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// openTestStore opens a fresh SQLite store (the benchmarks, and the tests
// of what only SQLite has: files, pragmas).
func openTestStore(t testing.TB) *Store {
	t.Helper()
	return openTestStoreOf(t, DriverSQLite)
}

// appliedMigrations returns the versions recorded in schema_migrations.
func appliedMigrations(t *testing.T, s *Store) []int64 {
	t.Helper()
	rows, err := s.DB().QueryContext(t.Context(), `SELECT version FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatalf("query schema_migrations: %v", err)
	}
	defer rows.Close()
	var vs []int64
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			t.Fatalf("scan: %v", err)
		}
		vs = append(vs, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	return vs
}

func TestOpenCreatesDirAndConfiguresConnection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "mailsec.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()

	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatalf("stat parent: %v", err)
	}
	if got := fi.Mode().Perm(); got&0o077 != 0 {
		t.Errorf("parent dir mode = %v, want no group/other access", got)
	}

	// Pragmas are per connection; check several connections at once so the
	// check is not satisfied by one lucky connection.
	ctx := t.Context()
	conns := make([]*sql.Conn, 0, maxOpenConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range maxOpenConns {
		c, err := s.DB().Conn(ctx)
		if err != nil {
			t.Fatalf("Conn: %v", err)
		}
		conns = append(conns, c)
		for _, tc := range []struct {
			pragma string
			want   string
		}{
			{"journal_mode", "wal"},
			{"busy_timeout", "5000"},
			{"foreign_keys", "1"},
			{"synchronous", "1"}, // NORMAL; the commits a 250 rests on are FULL (TestDurableTx)
		} {
			var got string
			if err := c.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
				t.Fatalf("PRAGMA %s: %v", tc.pragma, err)
			}
			if got != tc.want {
				t.Errorf("PRAGMA %s = %q, want %q", tc.pragma, got, tc.want)
			}
		}
	}
}

func TestPathWithURICharacters(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("'?' is not allowed in Windows file names")
	}
	// '?' and '#' would end the path of a naively built file: URI.
	path := filepath.Join(t.TempDir(), "odd ?name#%20.db")
	s, err := Open(t.Context(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not created at the given path: %v", err)
	}
}

func TestMigrationsIdempotentOnReopen(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := t.Context()
		dsn := newTestDSN(t, driver)
		ms, err := loadMigrations(migrationFS, dialectSQLite)
		if err != nil {
			t.Fatalf("loadMigrations: %v", err)
		}

		var want []int64
		for _, m := range ms {
			want = append(want, m.version)
		}
		for i := range 3 {
			s, err := OpenDriver(ctx, driver, dsn)
			if err != nil {
				t.Fatalf("Open #%d: %v", i+1, err)
			}
			got := appliedMigrations(t, s)
			if len(got) != len(want) {
				t.Fatalf("open #%d: applied %v, want %v", i+1, got, want)
			}
			for j := range got {
				if got[j] != want[j] {
					t.Fatalf("open #%d: applied %v, want %v", i+1, got, want)
				}
			}
			// Data written before a reopen must survive it (no re-creation).
			if err := s.AddDNSQueries(ctx, []DNSQuery{testQuery(0, "a.example.")}); err != nil {
				t.Fatalf("AddDNSQueries: %v", err)
			}
			qs, err := s.DNSQueries(ctx, DNSQueryFilter{})
			if err != nil {
				t.Fatalf("DNSQueries: %v", err)
			}
			if len(qs) != i+1 {
				t.Errorf("open #%d: %d rows, want %d", i+1, len(qs), i+1)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
	})
}

func TestSchemaTooNew(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := t.Context()
		dsn := newTestDSN(t, driver)
		s, err := OpenDriver(ctx, driver, dsn)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		// Simulate a newer binary having migrated the database.
		if _, err := s.DB().ExecContext(ctx,
			s.q(`INSERT INTO schema_migrations (version, name, applied_ns) VALUES (?, ?, ?)`),
			999999, "999999_future.sql", 0); err != nil {
			t.Fatalf("insert future migration: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}

		s, err = OpenDriver(ctx, driver, dsn)
		if !errors.Is(err, ErrSchemaTooNew) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("Open of newer schema: err = %v, want ErrSchemaTooNew", err)
		}
		if s != nil {
			t.Errorf("Open returned a store along with %v", err)
		}
	})
}

func TestLoadMigrations(t *testing.T) {
	ms, err := loadMigrations(migrationFS, dialectSQLite)
	if err != nil {
		t.Fatalf("loadMigrations: %v", err)
	}
	for i, m := range ms {
		if i > 0 && m.version <= ms[i-1].version {
			t.Errorf("migrations out of order: %s after %s", m.name, ms[i-1].name)
		}
		if m.sql == "" {
			t.Errorf("migration %s is empty", m.name)
		}
	}
}

func TestRebindDollar(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"SELECT 1", "SELECT 1"},
		{"SELECT * FROM t WHERE a = ? AND b = ?", "SELECT * FROM t WHERE a = $1 AND b = $2"},
		{"SELECT '?' , ?", "SELECT '?' , $1"},
		{"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{"VALUES (?, ?, ?)", "VALUES ($1, $2, $3)"},
	} {
		if got := rebindDollar(tc.in); got != tc.want {
			t.Errorf("rebindDollar(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClosedStore(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s, err := OpenDriver(context.Background(), driver, newTestDSN(t, driver))
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := s.AddDNSQueries(t.Context(), []DNSQuery{testQuery(0, "a.example.")}); err == nil {
			t.Error("AddDNSQueries on closed store succeeded")
		}
	})
}

// TestFileModes: the database and its -wal and -shm files are the
// service's user's only (0600), also when an older version left the
// database readable by others.
func TestFileModes(t *testing.T) {
	for _, existing := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "mailsec.db")
		if existing {
			for _, p := range []string{path, path + "-wal"} {
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, 0o644); err != nil { // whatever the umask
					t.Fatal(err)
				}
			}
		}
		s, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateTest(t.Context(), Test{ID: "t1", Created: time.Now(), Kind: TestToken, State: TestOpen}); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm"} {
			info, err := os.Stat(p)
			if err != nil {
				t.Fatalf("existing %v: %v", existing, err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("existing %v: %s has mode %v, want 0600", existing, filepath.Base(p), info.Mode().Perm())
			}
		}
		s.Close()
	}
}

// TestDurableTx: the transaction a 250 rests on runs with synchronous=FULL
// (its commit fsyncs the WAL), and its connection goes back to the pool at
// NORMAL.
func TestDurableTx(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	var inside string
	if err := s.inDurableTx(ctx, "test", func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&inside)
	}); err != nil {
		t.Fatal(err)
	}
	if inside != "2" {
		t.Fatalf("synchronous inside the durable transaction = %s, want 2 (FULL)", inside)
	}
	// Every pooled connection is back at NORMAL.
	conns := make([]*sql.Conn, 0, maxOpenConns)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range maxOpenConns {
		c, err := s.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		var got string
		if err := c.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&got); err != nil || got != "1" {
			t.Fatalf("a pooled connection at synchronous %s (%v), want 1", got, err)
		}
	}
}
