package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/pgtest"
)

func TestStats(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		dsn := newTestDSN(t, driver)
		s, err := OpenDriver(ctx, driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if driver == DriverPostgres {
			// The integrity check needs amcheck (postgresql-contrib, part of
			// Debian's postgresql); without it, an ErrUnsupported (below).
			if _, err := s.Stats(ctx, true); !errors.Is(err, ErrUnsupported) {
				t.Fatalf("integrity check without amcheck: %v, want ErrUnsupported", err)
			}
			pgtest.Exec(t, dsn, `CREATE EXTENSION amcheck`)
		}
		before, err := s.Stats(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if before.Tables["tests"] != 0 || before.Bytes <= 0 || before.Integrity != "" {
			t.Fatalf("empty store: %+v", before)
		}
		now := time.Now().UTC()
		if err := s.CreateTest(ctx, Test{ID: "statstest1", Created: now, Updated: now, Kind: TestToken, State: TestOpen}); err != nil {
			t.Fatal(err)
		}
		after, err := s.Stats(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if after.Tables["tests"] != 1 {
			t.Fatalf("after one test: tests = %d", after.Tables["tests"])
		}
		if after.Integrity != "ok" {
			t.Fatalf("integrity: %q", after.Integrity)
		}
		if len(after.Tables) < 5 {
			t.Fatalf("tables: %v", after.Tables)
		}
	})
}
