package store

import (
	"context"
	"fmt"
	"time"
)

// This file holds the caps of a scan that several workers share
// (migration 0021; docs/scan.md "Several workers"): the connections open
// to each destination address and the domains started per rate window,
// counted in the database so that they hold for all workers together.

// AcquireScanSlot takes one of the max slots of the destination dest for
// owner until until, if one is free or its holder's time ran out at now,
// and returns its number; ok is false when all max are held. Each slot is
// one row taken by an upsert whose update applies only to an expired slot:
// of two workers taking one slot at once, one inserts or updates it and the
// other changes no row (PostgreSQL re-checks the WHERE on the row the
// first one wrote; SQLite has one writer), and tries the next.
func (s *Store) AcquireScanSlot(ctx context.Context, scanID, dest, owner string, max int, now, until time.Time) (slot int, ok bool, err error) {
	for slot := range max {
		n, err := execCount(ctx, s.db, "scan slot of "+dest, s.q(`INSERT INTO scan_slots (scan_id, dest, slot, owner, until_ns) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (scan_id, dest, slot) DO UPDATE SET owner = excluded.owner, until_ns = excluded.until_ns
WHERE scan_slots.until_ns <= ?`), scanID, dest, int64(slot), owner, clampToNanos(until), clampToNanos(now))
		if err != nil {
			return 0, false, err
		}
		if n == 1 {
			return slot, true, nil
		}
	}
	return 0, false, nil
}

// ReleaseScanSlot gives owner's slot of dest back.
func (s *Store) ReleaseScanSlot(ctx context.Context, scanID, dest, owner string, slot int) error {
	_, err := execCount(ctx, s.db, "release scan slot of "+dest,
		s.q(`DELETE FROM scan_slots WHERE scan_id = ? AND dest = ? AND slot = ? AND owner = ?`), scanID, dest, int64(slot), owner)
	return err
}

// TakeScanStart counts one domain started in the rate window beginning at
// window, if fewer than max were started in it by all workers; false if
// the window is full. One statement decides, as AcquireScanSlot's.
func (s *Store) TakeScanStart(ctx context.Context, scanID string, window time.Time, max int) (bool, error) {
	if max < 1 {
		return false, fmt.Errorf("store: scan start: cap %d", max)
	}
	n, err := execCount(ctx, s.db, "scan start", s.q(`INSERT INTO scan_rate (scan_id, window_ns, started) VALUES (?, ?, 1)
ON CONFLICT (scan_id, window_ns) DO UPDATE SET started = scan_rate.started + 1
WHERE scan_rate.started < ?`), scanID, clampToNanos(window), int64(max))
	return n == 1, err
}

// ScanStarts returns the domains started per rate window of the scan, by
// window start (the test's and operator's view of the shared rate).
func (s *Store) ScanStarts(ctx context.Context, scanID string) (map[time.Time]int, error) {
	type row struct {
		w int64
		n int64
	}
	rows, err := queryRows(ctx, s.db, "scan starts", func(r rowScanner) (row, error) {
		var v row
		return v, r.Scan(&v.w, &v.n)
	}, s.q(`SELECT window_ns, started FROM scan_rate WHERE scan_id = ? ORDER BY window_ns LIMIT 100000`), scanID)
	if err != nil {
		return nil, err
	}
	out := make(map[time.Time]int, len(rows))
	for _, r := range rows {
		out[nanosToTime(r.w)] = int(r.n)
	}
	return out, nil
}

// PruneScanShares deletes the shared caps' rows that no worker needs any
// more: rate windows that began before before, and destination slots whose
// holder's time ran out before before (a worker gives a slot back when its
// connection closes; one that was killed leaves the row). scanID "" prunes
// every scan's. A worker prunes its scan's old rows as it goes and all of
// them when the scan is complete (far-future before); the retention purge
// prunes what workers killed for good left behind. It returns the rows
// deleted.
func (s *Store) PruneScanShares(ctx context.Context, scanID string, before time.Time) (int64, error) {
	b := clampToNanos(before)
	var total int64
	for _, t := range []struct{ what, table, column string }{
		{"prune scan rate windows", "scan_rate", "window_ns"},
		{"prune scan slots", "scan_slots", "until_ns"},
	} {
		var f filter
		f.add(t.column+" < ?", b)
		if scanID != "" {
			f.add("scan_id = ?", scanID) // the key's first column: an index look-up
		}
		n, err := execCount(ctx, s.db, t.what, s.q("DELETE FROM "+t.table+f.where()), f.args...)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}
