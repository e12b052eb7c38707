package store

import (
	"database/sql"
	"errors"
	"slices"
	"strings"
	"testing"
)

// openScratch is a test store with a table "scratch (k TEXT PRIMARY KEY,
// v BIGINT)" holding a=1, b=2, c=3.
func openScratch(t *testing.T, driver string) *Store {
	t.Helper()
	s := openTestStoreOf(t, driver)
	if _, err := s.db.ExecContext(t.Context(), `CREATE TABLE scratch (k TEXT NOT NULL PRIMARY KEY, v BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for i, k := range []string{"a", "b", "c"} {
		if err := insertNew(t.Context(), s.db, "insert "+k, s.q(`INSERT INTO scratch (k, v) VALUES (?, ?) ON CONFLICT DO NOTHING`), k, i+1); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

type scratchRow struct {
	k string
	v int64
}

func scanScratch(row rowScanner) (r scratchRow, err error) {
	err = row.Scan(&r.k, &r.v)
	return r, err
}

func scratchKeys(t *testing.T, s *Store) []string {
	t.Helper()
	keys, err := queryRows(t.Context(), s.db, "keys", scanValue[string], s.q(`SELECT k FROM scratch ORDER BY k`))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestQueryRows(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := openScratch(t, driver)
		ctx := t.Context()
		for _, tc := range []struct {
			name  string
			query string
			args  []any
			want  []scratchRow
		}{
			{"all in order", `SELECT k, v FROM scratch ORDER BY v DESC`, nil, []scratchRow{{"c", 3}, {"b", 2}, {"a", 1}}},
			{"arguments", `SELECT k, v FROM scratch WHERE v >= ? ORDER BY k`, []any{2}, []scratchRow{{"b", 2}, {"c", 3}}},
			{"none", `SELECT k, v FROM scratch WHERE k = ?`, []any{"x"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := queryRows(ctx, s.db, "scratch", scanScratch, s.q(tc.query), tc.args...)
				if err != nil || !slices.Equal(got, tc.want) {
					t.Errorf("queryRows = %v, %v; want %v", got, err, tc.want)
				}
			})
		}

		// A scan error stops the read part way; the rows must be closed all
		// the same, giving their connection back to the pool (a transaction
		// gets it back for its next statement).
		errScan := errors.New("bad row")
		_, err := queryRows(ctx, s.db, "scratch", func(rowScanner) (int, error) { return 0, errScan }, s.q(`SELECT k FROM scratch`))
		if !errors.Is(err, errScan) || !strings.HasPrefix(err.Error(), "store: scratch: ") {
			t.Errorf("scan error: %v, want it wrapped as store: scratch: ...", err)
		}
		if n := s.db.Stats().InUse; n != 0 {
			t.Errorf("after a failed read %d connections are in use, want 0", n)
		}
		if _, err := queryRows(ctx, s.db, "scratch", scanScratch, s.q(`SELECT k, v FROM missing_table`)); err == nil {
			t.Error("query of a missing table: no error")
		}
	})
}

func TestQueryOne(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := openScratch(t, driver)
		for _, tc := range []struct {
			key     string
			want    scratchRow
			wantErr error
		}{
			{"b", scratchRow{"b", 2}, nil},
			{"x", scratchRow{}, ErrNotFound},
		} {
			got, err := queryOne(t.Context(), s.db, "scratch "+tc.key, scanScratch, s.q(`SELECT k, v FROM scratch WHERE k = ?`), tc.key)
			if got != tc.want || !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Errorf("queryOne(%s) = %v, %v; want %v, %v", tc.key, got, err, tc.want, tc.wantErr)
			}
		}
	})
}

func TestExecHelpers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := openScratch(t, driver)
		ctx := t.Context()
		n, err := execCount(ctx, s.db, "bump", s.q(`UPDATE scratch SET v = v + 1 WHERE v >= ?`), 2)
		if n != 2 || err != nil {
			t.Errorf("execCount = %d, %v; want 2", n, err)
		}
		for _, tc := range []struct {
			name    string
			run     func() error
			wantErr error
		}{
			{"execOne hit", func() error {
				return execOne(ctx, s.db, "update a", s.q(`UPDATE scratch SET v = 5 WHERE k = ?`), "a")
			}, nil},
			{"execOne miss", func() error {
				return execOne(ctx, s.db, "update x", s.q(`UPDATE scratch SET v = 5 WHERE k = ?`), "x")
			}, ErrNotFound},
			{"insertNew new", func() error {
				return insertNew(ctx, s.db, "insert d", s.q(`INSERT INTO scratch (k, v) VALUES (?, 4) ON CONFLICT DO NOTHING`), "d")
			}, nil},
			{"insertNew taken", func() error {
				return insertNew(ctx, s.db, "insert a", s.q(`INSERT INTO scratch (k, v) VALUES (?, 4) ON CONFLICT DO NOTHING`), "a")
			}, ErrExists},
		} {
			err := tc.run()
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
			}
		}
		if got, want := scratchKeys(t, s), []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
			t.Errorf("keys %v, want %v", got, want)
		}
	})
}

func TestInTx(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := t.Context()
		errStop := errors.New("stop")
		for _, tc := range []struct {
			name     string
			fail     func() error // what fn does after its insert
			panics   bool
			wantErr  error
			wantKeys []string
		}{
			{"commit", func() error { return nil }, false, nil, []string{"a", "b", "c", "d"}},
			{"error rolls back", func() error { return errStop }, false, errStop, []string{"a", "b", "c"}},
			{"panic rolls back", func() error { panic(errStop) }, true, nil, []string{"a", "b", "c"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := openScratch(t, driver)
				var err error
				func() {
					defer func() {
						if r := recover(); (r != nil) != tc.panics {
							t.Errorf("recovered %v, want a panic: %v", r, tc.panics)
						}
					}()
					err = s.inTx(ctx, "add d", func(tx *sql.Tx) error {
						if err := insertNew(ctx, tx, "insert d", s.q(`INSERT INTO scratch (k, v) VALUES ('d', 4) ON CONFLICT DO NOTHING`)); err != nil {
							return err
						}
						return tc.fail()
					})
				}()
				if err != tc.wantErr {
					t.Errorf("inTx = %v, want %v returned as it is", err, tc.wantErr)
				}
				if got := scratchKeys(t, s); !slices.Equal(got, tc.wantKeys) {
					t.Errorf("keys %v, want %v", got, tc.wantKeys)
				}
			})
		}
	})
}
