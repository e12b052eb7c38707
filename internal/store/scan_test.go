package store

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func newTestScan(t *testing.T, s *Store, id string) {
	t.Helper()
	if err := s.CreateScan(t.Context(), Scan{ID: id, Created: testEpoch(), Source: "in.txt", InputSHA256: "abc", Options: "{}"}); err != nil {
		t.Fatalf("CreateScan: %v", err)
	}
}

func TestScanCreateAndLoad(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		newTestScan(t, s, "s1")
		if err := s.CreateScan(ctx, Scan{ID: "s1", Created: testEpoch()}); !errors.Is(err, ErrExists) {
			t.Fatalf("second CreateScan: %v, want ErrExists", err)
		}
		if _, err := s.Scan(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Scan(nope): %v, want ErrNotFound", err)
		}
		lines := []ScanLine{
			{Line: 1, Input: "a.example", Domain: "a.example", Label: "x"},
			{Line: 3, Input: "bad..name", Err: "empty label"},
			{Line: 4, Input: "A.example.", Domain: "a.example", Label: "y"},
			{Line: 5, Input: "b.example", Domain: "b.example"},
		}
		st, err := s.AddScanLines(ctx, "s1", lines)
		if err != nil {
			t.Fatal(err)
		}
		if want := (AddStats{Domains: 2, Invalid: 1, Duplicates: 1}); st != want {
			t.Errorf("stats %+v, want %+v", st, want)
		}
		// A load resumed after an interruption gives the same lines again.
		st, err = s.AddScanLines(ctx, "s1", lines)
		if err != nil {
			t.Fatal(err)
		}
		if want := (AddStats{Known: 4}); st != want {
			t.Errorf("reload stats %+v, want %+v", st, want)
		}
		// A later batch: a domain an earlier batch stored is a duplicate
		// of its line; and a load resumed across both batches.
		more := []ScanLine{{Line: 6, Input: "b.example", Domain: "b.example"}, {Line: 7, Input: "c.example", Domain: "c.example"}}
		if st, err = s.AddScanLines(ctx, "s1", more); err != nil || st != (AddStats{Domains: 1, Duplicates: 1}) {
			t.Errorf("later batch: %+v %v", st, err)
		}
		if st, err = s.AddScanLines(ctx, "s1", append(lines[2:], more...)); err != nil || st != (AddStats{Known: 4}) {
			t.Errorf("reload across batches: %+v %v", st, err)
		}
		if err := s.MarkScanLoaded(ctx, "s1", testEpoch(), 7); err != nil {
			t.Fatal(err)
		}
		sc, err := s.Scan(ctx, "s1")
		if err != nil || sc.InputLines != 7 || sc.Loaded.IsZero() || sc.Source != "in.txt" {
			t.Fatalf("Scan: %+v %v", sc, err)
		}
		var got []string
		err = s.EachScanItem(ctx, "s1", true, func(it ScanItem) error {
			got = append(got, fmt.Sprintf("%d %s %s %s %q", it.Line, it.Kind, it.State, it.Domain, it.Error))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			`1 domain pending a.example ""`,
			`3 invalid error  "empty label"`,
			`4 duplicate error a.example "duplicate of line 1 (a.example is checked once)"`,
			`5 domain pending b.example ""`,
			`6 duplicate error b.example "duplicate of line 5 (b.example is checked once)"`,
			`7 domain pending c.example ""`,
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("items\n got %q\nwant %q", got, want)
		}
		c, err := s.ScanCounts(ctx, "s1")
		if err != nil || c != (ScanCounts{Pending: 3, Error: 3}) {
			t.Errorf("counts %+v %v", c, err)
		}
	})
}

func TestScanLeases(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		newTestScan(t, s, "s")
		var lines []ScanLine
		for i := 1; i <= 5; i++ {
			d := fmt.Sprintf("d%d.example", i)
			lines = append(lines, ScanLine{Line: int64(i), Input: d, Domain: d})
		}
		if _, err := s.AddScanLines(ctx, "s", lines); err != nil {
			t.Fatal(err)
		}
		now := testEpoch()
		a, err := s.LeaseScanItems(ctx, "s", "w1", 2, now, now.Add(time.Minute), 3)
		if err != nil || len(a) != 2 || a[0].Line != 1 || a[1].Line != 2 || a[0].State != ScanRunning || a[0].LeaseOwner != "w1" {
			t.Fatalf("w1 lease: %+v %v", a, err)
		}
		b, err := s.LeaseScanItems(ctx, "s", "w2", 10, now, now.Add(time.Minute), 3)
		if err != nil || len(b) != 3 || b[0].Line != 3 {
			t.Fatalf("w2 lease: %+v %v", b, err)
		}
		if more, err := s.LeaseScanItems(ctx, "s", "w3", 10, now, now.Add(time.Minute), 3); err != nil || len(more) != 0 {
			t.Fatalf("w3 lease with nothing free: %+v %v", more, err)
		}
		// w1 finishes line 1; w2 is interrupted and releases its items.
		lost, err := s.FinishScanItems(ctx, "s", "w1", []ScanResult{{Line: 1, State: ScanDone, Summary: ScanSummary{Colour: "green", DNSSEC: true},
			Result: []byte(`{"colour":"green"}`), Started: now, Finished: now.Add(time.Second)}})
		if err != nil || lost != 0 {
			t.Fatalf("finish: lost %d %v", lost, err)
		}
		if n, err := s.ReleaseScanItems(ctx, "s", "w2"); err != nil || n != 3 {
			t.Fatalf("release: %d %v", n, err)
		}
		// w1's lease on line 2 expires; w3 takes it over, and w1's late result
		// is not stored.
		later := now.Add(2 * time.Minute)
		c, err := s.LeaseScanItems(ctx, "s", "w3", 10, later, later.Add(time.Minute), 3)
		if err != nil || len(c) != 4 || c[0].Line != 2 || c[0].Attempts != 2 || c[1].Attempts != 1 {
			t.Fatalf("w3 lease after expiry: %+v %v", c, err)
		}
		lost, err = s.FinishScanItems(ctx, "s", "w1", []ScanResult{{Line: 2, State: ScanDone, Summary: ScanSummary{Colour: "red"}}})
		if err != nil || lost != 1 {
			t.Fatalf("late finish: lost %d %v", lost, err)
		}
		if n, err := s.RenewScanLeases(ctx, "s", "w3", later.Add(time.Hour)); err != nil || n != 4 {
			t.Fatalf("renew: %d %v", n, err)
		}
		var res []ScanResult
		for _, it := range c {
			res = append(res, ScanResult{Line: it.Line, State: ScanError, Error: "timeout"})
		}
		if lost, err := s.FinishScanItems(ctx, "s", "w3", res); err != nil || lost != 0 {
			t.Fatalf("w3 finish: %d %v", lost, err)
		}
		cnt, err := s.ScanCounts(ctx, "s")
		if err != nil || cnt != (ScanCounts{Done: 1, Error: 4}) {
			t.Fatalf("counts %+v %v", cnt, err)
		}
		err = s.EachScanItem(ctx, "s", true, func(it ScanItem) error {
			if it.Line == 1 && (string(it.Result) != `{"colour":"green"}` || !it.Summary.DNSSEC || it.Summary.Colour != "green") {
				t.Errorf("line 1: %+v", it)
			}
			if it.Line == 2 && it.Summary.Colour != "" {
				t.Errorf("line 2 got the lost lease's result: %+v", it)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestScanGiveUp(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		newTestScan(t, s, "s")
		if _, err := s.AddScanLines(ctx, "s", []ScanLine{{Line: 1, Input: "x.example", Domain: "x.example"}}); err != nil {
			t.Fatal(err)
		}
		now := testEpoch()
		for i := 1; i <= 2; i++ {
			got, err := s.LeaseScanItems(ctx, "s", fmt.Sprintf("w%d", i), 1, now, now.Add(time.Second), 2)
			if err != nil || len(got) != 1 {
				t.Fatalf("lease %d: %+v %v", i, got, err)
			}
			now = now.Add(time.Minute) // the worker dies; the lease expires
		}
		got, err := s.LeaseScanItems(ctx, "s", "w3", 1, now, now.Add(time.Second), 2)
		if err != nil || len(got) != 0 {
			t.Fatalf("third lease: %+v %v", got, err)
		}
		err = s.EachScanItem(ctx, "s", false, func(it ScanItem) error {
			if it.State != ScanError || it.Error == "" {
				t.Errorf("after 2 expired leases: %+v", it)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestEachScanItemPages(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		newTestScan(t, s, "s")
		var lines []ScanLine
		for i := 1; i <= 1203; i++ {
			d := fmt.Sprintf("d%d.example", i)
			lines = append(lines, ScanLine{Line: int64(i * 2), Input: d, Domain: d})
		}
		if _, err := s.AddScanLines(ctx, "s", lines); err != nil {
			t.Fatal(err)
		}
		n, last := 0, int64(0)
		err := s.EachScanItem(ctx, "s", false, func(it ScanItem) error {
			if it.Line <= last {
				t.Fatalf("line %d after %d", it.Line, last)
			}
			last = it.Line
			n++
			return nil
		})
		if err != nil || n != 1203 {
			t.Fatalf("walked %d items: %v", n, err)
		}
	})
}
