package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
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
}
