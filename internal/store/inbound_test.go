package store

import (
	"errors"
	"testing"
	"time"
)

func TestInboundChecks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
		add := func(test, domain string, at time.Time, colour string) error {
			return s.AddInboundCheck(ctx, InboundCheck{TestID: test, Domain: domain, Checked: at, Stored: at.Add(time.Second),
				Colour: colour, Report: []byte(`{"schema":"mailsec.check.v1","colour":"` + colour + `"}`)})
		}
		if err := add("t1", "Example.ORG", t0, "green"); err != nil {
			t.Fatal(err)
		}
		if err := add("T1", "example.org", t0, "red"); !errors.Is(err, ErrExists) {
			t.Fatalf("second check of one test: %v", err)
		}
		if err := add("t2", "example.org", t0.Add(time.Minute), "yellow"); err != nil {
			t.Fatal(err)
		}
		// Checks tied to no test may repeat.
		for range 2 {
			if err := add("", "other.example", t0, "grey"); err != nil {
				t.Fatal(err)
			}
		}
		c, err := s.InboundCheckOfTest(ctx, "T1")
		if err != nil || c.Domain != "example.org" || c.Colour != "green" || !c.Checked.Equal(t0) || !c.Stored.Equal(t0.Add(time.Second)) || len(c.Report) == 0 {
			t.Fatalf("of test: %+v %v", c, err)
		}
		if _, err := s.InboundCheckOfTest(ctx, "t9"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
		c, err = s.LatestInboundCheck(ctx, "EXAMPLE.org", t0)
		if err != nil || c.TestID != "t2" || c.Colour != "yellow" {
			t.Fatalf("latest: %+v %v", c, err)
		}
		if _, err := s.LatestInboundCheck(ctx, "example.org", t0.Add(time.Hour)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("too old: %v", err)
		}
		// Deleting the test deletes its check.
		if err := s.CreateTest(ctx, Test{ID: "t1", Created: t0, Kind: TestToken, State: TestOpen}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTest(ctx, "t1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.InboundCheckOfTest(ctx, "t1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after DeleteTest: %v", err)
		}
		if err := s.AddInboundCheck(ctx, InboundCheck{Domain: "x.example", Checked: t0, Stored: t0}); err == nil {
			t.Fatal("a check without report was stored")
		}
	})
}
