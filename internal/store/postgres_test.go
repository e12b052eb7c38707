package store

import (
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/mailsec/mailsec/internal/pgtest"
)

// TestLoadMigrationsDialects: PostgreSQL runs a migration's .postgres.sql
// variant instead of the portable file, SQLite ignores variants, and the
// portable files pass through the rewrite rule on PostgreSQL only.
func TestLoadMigrationsDialects(t *testing.T) {
	fsys := fstest.MapFS{
		"migrations/0001_a.sql":          {Data: []byte("CREATE TABLE a (id INTEGER PRIMARY KEY, raw BLOB, n INTEGER NOT NULL, blobby TEXT);")},
		"migrations/0002_b.sql":          {Data: []byte("INSERT OR IGNORE INTO a (n) VALUES (1);")},
		"migrations/0002_b.postgres.sql": {Data: []byte("INSERT INTO a (n) VALUES (1) ON CONFLICT DO NOTHING;")},
	}
	for _, tc := range []struct {
		d    dialect
		want []string
	}{
		{dialectSQLite, []string{
			"0001_a.sql: CREATE TABLE a (id INTEGER PRIMARY KEY, raw BLOB, n INTEGER NOT NULL, blobby TEXT);",
			"0002_b.sql: INSERT OR IGNORE INTO a (n) VALUES (1);"}},
		{dialectPostgres, []string{
			"0001_a.sql: CREATE TABLE a (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, raw BYTEA, n INTEGER NOT NULL, blobby TEXT);",
			"0002_b.postgres.sql: INSERT INTO a (n) VALUES (1) ON CONFLICT DO NOTHING;"}},
	} {
		ms, err := loadMigrations(fsys, tc.d)
		if err != nil {
			t.Fatalf("dialect %d: %v", tc.d, err)
		}
		var got []string
		for _, m := range ms {
			got = append(got, m.name+": "+m.sql)
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("dialect %d:\n%s\nwant\n%s", tc.d, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
	for name, bad := range map[string]fstest.MapFS{
		"variant without its portable file": {
			"migrations/0001_a.sql":          {Data: []byte("SELECT 1;")},
			"migrations/0002_b.postgres.sql": {Data: []byte("SELECT 1;")},
		},
		"two variants": {
			"migrations/0001_a.sql":          {Data: []byte("SELECT 1;")},
			"migrations/0001_a.postgres.sql": {Data: []byte("SELECT 1;")},
			"migrations/0001_b.postgres.sql": {Data: []byte("SELECT 1;")},
		},
		"variant of another database": {
			"migrations/0001_a.sql":       {Data: []byte("SELECT 1;")},
			"migrations/0001_a.mysql.sql": {Data: []byte("SELECT 1;")},
		},
	} {
		if _, err := loadMigrations(bad, dialectPostgres); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestConcurrentCaps: counts that decide an insert hold when many
// writers race, on PostgreSQL too (where transactions run side by side:
// Store.serialise) — the open fixed tests' cap and the TLS-RPT quota.
func TestConcurrentCaps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		const writers, limit = 24, 5
		now := time.Now()
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				tt := Test{ID: fmt.Sprintf("fixedrace%02d", i), Created: now, Kind: TestFixed, Sender: fmt.Sprintf("s%d@example.org", i), State: TestOpen}
				errs[i] = s.CreateFixedTest(ctx, tt, "192.0.2.0/24", FixedTestLimits{PerClient: limit})
			})
		}
		wg.Wait()
		if created := succeeded(t, errs, ErrFixedTestsPerClient); created != limit {
			t.Errorf("%d fixed tests created by %d racing writers, cap %d", created, writers, limit)
		}

		for i := range writers {
			wg.Go(func() {
				errs[i] = s.AddTLSRPTReport(ctx, &TLSRPTReport{Received: now, MailFrom: "r@example.org", Raw: []byte("report")}, TLSRPTQuota{MaxReports: limit})
			})
		}
		wg.Wait()
		if added := succeeded(t, errs, ErrTLSRPTFull); added != limit {
			t.Errorf("%d TLS-RPT reports taken by %d racing writers, quota %d", added, writers, limit)
		}
	})
}

// succeeded counts the nil errors of errs; each other must wrap refused.
func succeeded(t *testing.T, errs []error, refused error) int {
	t.Helper()
	n := 0
	for _, err := range errs {
		switch {
		case err == nil:
			n++
		case !errors.Is(err, refused):
			t.Errorf("%v, want nil or %v", err, refused)
		}
	}
	return n
}

// TestConcurrentOpen: several processes (here: stores) opening a new
// database at once migrate it once, and all of them open it.
func TestConcurrentOpen(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		dsn := newTestDSN(t, driver)
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Go(func() {
				s, err := OpenDriver(t.Context(), driver, dsn)
				if err == nil {
					err = s.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("open #%d: %v", i, err)
			}
		}
	})
}

// TestPostgresDurableTx: the transaction a 250 rests on commits with
// synchronous_commit on even where the database's default is off (the
// operator's choice for the history writes), and other transactions keep
// the default.
func TestPostgresDurableTx(t *testing.T) {
	dsn := newTestDSN(t, DriverPostgres)
	pgtest.Exec(t, dsn, `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database()); END $$`)
	s, err := OpenPostgres(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	setting := func(run func(what string, fn func(tx *sql.Tx) error) error) string {
		var v string
		if err := run("test", func(tx *sql.Tx) error {
			return tx.QueryRowContext(ctx, `SELECT current_setting('synchronous_commit')`).Scan(&v)
		}); err != nil {
			t.Fatal(err)
		}
		return v
	}
	durable := setting(func(what string, fn func(tx *sql.Tx) error) error { return s.inDurableTx(ctx, what, fn) })
	plain := setting(func(what string, fn func(tx *sql.Tx) error) error { return s.inTx(ctx, what, fn) })
	if durable != "on" || plain != "off" {
		t.Errorf("synchronous_commit: %q in the durable transaction (want on), %q in others (want the default, off)", durable, plain)
	}
}

// TestOpenPostgresErrors: a DSN that does not parse, or a server that is
// not there, is a clear error that never shows the password.
func TestOpenPostgresErrors(t *testing.T) {
	const secret = "s3cret-pw"
	for _, dsn := range []string{
		"postgres://mailsec:" + secret + "@127.0.0.1:notaport/mailsec",
		"postgres://mailsec:" + secret + "@127.0.0.1:1/mailsec?sslmode=disable&connect_timeout=5",
		"host=127.0.0.1 port=1 user=mailsec password=" + secret + " dbname=mailsec sslmode=disable connect_timeout=5",
	} {
		s, err := OpenDriver(t.Context(), DriverPostgres, dsn)
		if err == nil {
			s.Close()
			t.Fatalf("%s: opened", dsn)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error shows the password: %v", err)
		}
	}
	if _, err := OpenDriver(t.Context(), "mysql", "x"); err == nil {
		t.Error("driver mysql accepted")
	}
}

// TestPostgresBackupRefused: mailsec does not back a PostgreSQL store up
// (pg_dump does), and says so.
func TestPostgresBackupRefused(t *testing.T) {
	s := openTestStoreOf(t, DriverPostgres)
	err := s.Backup(t.Context(), t.TempDir()+"/copy.db")
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("Backup on PostgreSQL: %v, want ErrUnsupported naming pg_dump", err)
	}
}

// TestConcurrentScanLeases: workers leasing from one scan at once never
// get the same item (SQLite: one writer; PostgreSQL: FOR UPDATE SKIP
// LOCKED), and together they get every item.
func TestConcurrentScanLeases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		newTestScan(t, s, "race")
		const items, workers = 300, 6
		lines := make([]ScanLine, items)
		for i := range lines {
			lines[i] = ScanLine{Line: int64(i + 1), Input: fmt.Sprintf("d%d.example", i), Domain: fmt.Sprintf("d%d.example", i)}
		}
		if _, err := s.AddScanLines(ctx, "race", lines); err != nil {
			t.Fatal(err)
		}
		now := testEpoch()
		var (
			mu     sync.Mutex
			leased = map[int64]string{}
			wg     sync.WaitGroup
		)
		for w := range workers {
			owner := fmt.Sprintf("worker%d", w)
			wg.Go(func() {
				for range items { // bounded: each round takes at least one item or stops
					got, err := s.LeaseScanItems(ctx, "race", owner, 7, now, now.Add(time.Hour), 3)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, it := range got {
						if other, dup := leased[it.Line]; dup {
							t.Errorf("line %d leased by %s and %s", it.Line, other, owner)
						}
						leased[it.Line] = owner
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(leased) != items {
			t.Errorf("%d of %d items leased", len(leased), items)
		}
	})
}
