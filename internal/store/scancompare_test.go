package store

import (
	"slices"
	"testing"
	"time"
)

// scanOutcome is one line of a test scan: a domain, its label and its
// outcome ("" pending, "error", or a colour).
type scanOutcome struct{ domain, label, outcome string }

// fillTestScan stores a scan created at created with the lines in order
// (line numbers 1, 2, …; a domain "" is an invalid line) and their
// outcomes.
func fillTestScan(t *testing.T, s *Store, id string, created time.Time, lines []scanOutcome) {
	t.Helper()
	ctx := t.Context()
	if err := s.CreateScan(ctx, Scan{ID: id, Created: created, Source: id + ".txt", InputSHA256: id, Options: "{}"}); err != nil {
		t.Fatal(err)
	}
	var sl []ScanLine
	for i, l := range lines {
		line := ScanLine{Line: int64(i + 1), Input: l.domain, Domain: l.domain, Label: l.label}
		if l.domain == "" {
			line.Input, line.Err = "bad..line", "not a domain"
		}
		sl = append(sl, line)
	}
	if _, err := s.AddScanLines(ctx, id, sl); err != nil {
		t.Fatal(err)
	}
	items, err := s.LeaseScanItems(ctx, id, "w", len(lines), created, created.Add(time.Hour), 3)
	if err != nil {
		t.Fatal(err)
	}
	var results []ScanResult
	for _, it := range items {
		switch o := lines[it.Line-1].outcome; o {
		case "":
			results = append(results, ScanResult{Line: it.Line, State: ScanPending})
		case "error":
			results = append(results, ScanResult{Line: it.Line, State: ScanError, Error: "timeout", Started: created, Finished: created})
		default:
			results = append(results, ScanResult{Line: it.Line, State: ScanDone, Summary: ScanSummary{Colour: o}, Result: []byte(`{}`), Started: created, Finished: created})
		}
	}
	if _, err := s.FinishScanItems(ctx, id, "w", results); err != nil {
		t.Fatal(err)
	}
}

// TestScanCompareReads: the pairs of domains two scans share (in the
// first scan's line order, whatever the second's), the domains only one
// has, the colour counts per label, and the list of scans.
func TestScanCompareReads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		fillTestScan(t, s, "scan-a", t0, []scanOutcome{
			{"a.example", "law", "red"}, {"b.example", "law", "green"}, {"c.example", "auth", "yellow"},
			{"d.example", "auth", ""}, {"gone.example", "auth", "red"}, {"", "auth", ""},
		})
		fillTestScan(t, s, "scan-b", t0.Add(24*time.Hour), []scanOutcome{
			{"b.example", "law", "green"}, {"new.example", "x", "red"}, {"a.example", "law firm", "green"},
			{"c.example", "auth", "error"}, {"d.example", "auth", "white"},
		})
		var got []ScanPair
		if err := s.EachScanPair(ctx, "scan-a", "scan-b", func(p ScanPair) error { got = append(got, p); return nil }); err != nil {
			t.Fatal(err)
		}
		want := []ScanPair{
			{Line: 1, Domain: "a.example", LabelA: "law", LabelB: "law firm", StateA: ScanDone, StateB: ScanDone, ColourA: "red", ColourB: "green"},
			{Line: 2, Domain: "b.example", LabelA: "law", LabelB: "law", StateA: ScanDone, StateB: ScanDone, ColourA: "green", ColourB: "green"},
			{Line: 3, Domain: "c.example", LabelA: "auth", LabelB: "auth", StateA: ScanDone, StateB: ScanError, ColourA: "yellow", ColourB: ""},
			{Line: 4, Domain: "d.example", LabelA: "auth", LabelB: "auth", StateA: ScanPending, StateB: ScanDone, ColourA: "", ColourB: "white"},
		}
		if !slices.Equal(got, want) {
			t.Errorf("pairs\n%+v\nwant\n%+v", got, want)
		}
		if n, err := s.ScanDomainsOnlyIn(ctx, "scan-a", "scan-b"); err != nil || n != 1 {
			t.Errorf("only in a: %d %v", n, err)
		}
		if n, err := s.ScanDomainsOnlyIn(ctx, "scan-b", "scan-a"); err != nil || n != 1 {
			t.Errorf("only in b: %d %v", n, err)
		}
		counts, err := s.ScanColourCounts(ctx, "scan-a")
		if err != nil {
			t.Fatal(err)
		}
		wantCounts := []ScanColourCount{{"auth", ScanDone, "red", 1}, {"auth", ScanDone, "yellow", 1}, {"auth", ScanPending, "", 1},
			{"law", ScanDone, "green", 1}, {"law", ScanDone, "red", 1}}
		if !slices.Equal(counts, wantCounts) {
			t.Errorf("counts %+v, want %+v", counts, wantCounts)
		}
		all, err := s.Scans(ctx, time.Time{}, 0)
		if err != nil || len(all) != 2 || all[0].ID != "scan-a" || all[1].ID != "scan-b" || !all[1].Created.Equal(t0.Add(24*time.Hour)) {
			t.Errorf("scans %+v %v", all, err)
		}
		if later, err := s.Scans(ctx, t0.Add(time.Hour), 0); err != nil || len(later) != 1 || later[0].ID != "scan-b" {
			t.Errorf("scans since: %+v %v", later, err)
		}
	})
}
