package store

import (
	"context"
	"fmt"
	"time"
)

// This file reads scans side by side (docs/scan.md "Comparing scans"):
// the colour of each domain in two scans, the colour counts per label of
// one, and the list of scans.

// ScanPair is one domain found in two scans: its label and outcome in
// each (state and colour; the colour is "" without a result).
type ScanPair struct {
	Line             int64 // in the first scan
	Domain           string
	LabelA, LabelB   string
	StateA, StateB   string
	ColourA, ColourB string
}

// EachScanPair calls fn for every domain of scan a that scan b has too, in
// a's line order, reading in pages (the partial unique index on (scan_id,
// domain) finds b's item) so that scans of any size are streamed with
// bounded memory. An error from fn stops the walk and is returned.
func (s *Store) EachScanPair(ctx context.Context, a, b string, fn func(ScanPair) error) error {
	const page = 1000
	return eachInPages(page, func(after int64) ([]ScanPair, error) {
		return queryRows(ctx, s.db, "scan pairs of "+a+" and "+b, scanPair, s.q(`SELECT x.line, x.domain, x.label, y.label, x.state, y.state, x.colour, y.colour
FROM scan_items x JOIN scan_items y ON y.scan_id = ? AND y.kind = 'domain' AND y.domain = x.domain
WHERE x.scan_id = ? AND x.kind = 'domain' AND x.line > ?
ORDER BY x.line LIMIT ?`), b, a, after, page)
	}, func(p ScanPair) int64 { return p.Line }, fn)
}

func scanPair(row rowScanner) (ScanPair, error) {
	var p ScanPair
	err := row.Scan(&p.Line, &p.Domain, &p.LabelA, &p.LabelB, &p.StateA, &p.StateB, &p.ColourA, &p.ColourB)
	return p, err
}

// ScanDomainsOnlyIn counts the domains of scan a that scan b does not
// have.
func (s *Store) ScanDomainsOnlyIn(ctx context.Context, a, b string) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM scan_items x WHERE x.scan_id = ? AND x.kind = 'domain'
AND NOT EXISTS (SELECT 1 FROM scan_items y WHERE y.scan_id = ? AND y.kind = 'domain' AND y.domain = x.domain)`), a, b).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("store: domains of %s not in %s: %w", a, b, err)
	}
	return n, nil
}

// ScanColourCount is how many domains of a scan with one label ended in
// one state and colour.
type ScanColourCount struct {
	Label, State, Colour string
	N                    int64
}

// ScanColourCounts counts a scan's domains (invalid and duplicate lines
// left out) by label, state and colour, in that order.
func (s *Store) ScanColourCounts(ctx context.Context, scanID string) ([]ScanColourCount, error) {
	return queryRows(ctx, s.db, "colour counts of scan "+scanID, func(row rowScanner) (ScanColourCount, error) {
		var c ScanColourCount
		err := row.Scan(&c.Label, &c.State, &c.Colour, &c.N)
		return c, err
	}, s.q(`SELECT label, state, colour, COUNT(*) FROM scan_items WHERE scan_id = ? AND kind = 'domain'
GROUP BY label, state, colour ORDER BY label, state, colour`), scanID)
}

// Scans returns the stored scans, oldest first, at most limit (0: 100);
// with since set, only those created at or after it.
func (s *Store) Scans(ctx context.Context, since time.Time, limit int) ([]Scan, error) {
	if limit <= 0 {
		limit = 100
	}
	return queryRows(ctx, s.db, "scans", scanScan, s.q(`SELECT id, created_ns, source, input_sha256, options, loaded_ns, input_lines FROM scans
WHERE created_ns >= ? ORDER BY created_ns, id LIMIT ?`), clampToNanos(since), int64(limit))
}
