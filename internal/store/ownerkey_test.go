package store

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOwnerKeys(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		key, err := NewOwnerKey()
		if err != nil {
			t.Fatal(err)
		}
		if len(key) != 32 || !ownerKeyRe.MatchString(key) {
			t.Fatalf("NewOwnerKey %q: want 32 lower-case base32 characters", key)
		}
		tt := Test{ID: "ownedtest", Created: created, Updated: created, Kind: TestToken, State: TestOpen, OwnerKey: key}
		if err := s.CreateTest(ctx, tt); err != nil {
			t.Fatal(err)
		}
		other := Test{ID: "othertest", Created: created, Updated: created, Kind: TestToken, State: TestOpen}
		if err := s.CreateTest(ctx, other); err != nil {
			t.Fatal(err)
		}
		mailKey, _ := NewOwnerKey()
		if err := s.AddOwnerKey(ctx, tt.ID, mailKey, KeyResultMail, created.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.AddOwnerKey(ctx, "nosuchtest", mailKey+"x", KeyResultMail, created); !errors.Is(err, ErrNotFound) {
			t.Fatalf("AddOwnerKey of a missing test: %v, want ErrNotFound", err)
		}
		wrong, _ := NewOwnerKey()
		for _, tc := range []struct {
			name, key string
			want      string // test id, "" for none
		}{
			{"creation key", key, tt.ID},
			{"creation key upper case", strings.ToUpper(key), tt.ID},
			{"result mail key", mailKey, tt.ID},
			{"the test id", tt.ID, ""},
			{"a test id without keys", other.ID, ""},
			{"wrong key", wrong, ""},
			{"key with its last character changed", key[:31] + map[bool]string{true: "b", false: "a"}[key[31] == 'a'], ""},
			{"empty", "", ""},
			{"malformed", "../" + key, ""},
			{"too long", strings.Repeat("a", 65), ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.TestByOwnerKey(ctx, tc.key)
				if tc.want == "" {
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("TestByOwnerKey: %+v, %v; want ErrNotFound", got, err)
					}
					return
				}
				if err != nil || got.ID != tc.want {
					t.Fatalf("TestByOwnerKey: %+v, %v; want test %s", got, err, tc.want)
				}
			})
		}
		// Only hashes are stored: no row holds a key.
		var rows int
		if err := s.DB().QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM test_owner_keys WHERE key_hash IN (?, ?) OR test_id IN (?, ?)`),
			key, mailKey, key, mailKey).Scan(&rows); err != nil || rows != 0 {
			t.Fatalf("%d rows hold a plain key (%v)", rows, err)
		}
		infos, err := s.OwnerKeys(ctx, tt.ID)
		if err != nil || len(infos) != 2 || infos[0].Via != KeyCreated || !infos[0].Created.Equal(created) || infos[1].Via != KeyResultMail {
			t.Fatalf("OwnerKeys: %+v, %v", infos, err)
		}
		if err := s.DeleteTest(ctx, tt.ID); err != nil {
			t.Fatal(err)
		}
		if infos, err := s.OwnerKeys(ctx, tt.ID); err != nil || len(infos) != 0 {
			t.Fatalf("keys after deletion: %+v, %v", infos, err)
		}
		if _, err := s.TestByOwnerKey(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("key of a deleted test: %v", err)
		}
	})
}

// TestLegacyOwnerKeys: a test from before migration 0015 is opened by its
// ID, as it was; one created after it is not.
func TestLegacyOwnerKeys(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) { testLegacyOwnerKeys(t, driver) })
}

func testLegacyOwnerKeys(t *testing.T, driver string) {
	dsn := newTestDSN(t, driver)
	ctx := t.Context()
	s, err := OpenDriver(ctx, driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, id := range []string{"oldtesta", "oldtestb"} {
		if err := s.CreateTest(ctx, Test{ID: id, Created: created, Updated: created, Kind: TestToken, State: TestOpen}); err != nil {
			t.Fatal(err)
		}
	}
	// More than one backfill batch of them (ids bulkaab ... in letters).
	for i := 1; i <= backfillBatch+1; i++ {
		if _, err := s.DB().ExecContext(ctx, s.q(`INSERT INTO tests (id, created_ns, kind, sender, state, acked_ns, updated_ns) VALUES (?, ?, 'token', '', 'open', 0, 0)`),
			bulkID(i), created.UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	// Back to the schema before 0015, then open again: the migration and
	// its backfill run on the tests that exist.
	for _, q := range []string{`DROP TABLE test_owner_keys`, `DELETE FROM schema_migrations WHERE version = 15`} {
		if _, err := s.DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	if s, err = OpenDriver(ctx, driver, dsn); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, id := range []string{"oldtesta", "OLDTESTB", "bulkaab", bulkID(backfillBatch + 1)} {
		if got, err := s.TestByOwnerKey(ctx, id); err != nil || got.ID != strings.ToLower(id) {
			t.Fatalf("legacy test %s by its ID: %+v, %v", id, got, err)
		}
	}
	if infos, err := s.OwnerKeys(ctx, "oldtesta"); err != nil || len(infos) != 1 || infos[0].Via != KeyLegacyID || !infos[0].Created.Equal(created) {
		t.Fatalf("legacy keys: %+v, %v", infos, err)
	}
	if err := s.CreateTest(ctx, Test{ID: "newtest", Created: created, Updated: created, Kind: TestToken, State: TestOpen}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TestByOwnerKey(ctx, "newtest"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a test created after the migration opened by its ID: %v", err)
	}
}

// bulkID is the id TestLegacyOwnerKeys gives its i-th bulk test.
func bulkID(i int) string {
	return "bulk" + string(rune('a'+i/676%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i%26))
}
