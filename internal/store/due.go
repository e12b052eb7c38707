package store

import (
	"context"
	"strings"
	"time"
)

// This file holds the finaliser's queue (migration 0013): each test that is
// not final has a due time, when the finaliser looks at it next. The
// finaliser reads only the tests due now, oldest due first, in pages on an
// index, and after each look sets the next due time (DeferTest). So no
// number of open tests that are not due can keep it from one that is
// (issue 16: a thousand junk tests used to fill its one page of the 1,000
// oldest unfinished tests for 48 hours).

// defaultDueLimit bounds a DueTests page when the caller does not.
const defaultDueLimit = 100

// DueTest is a test that is not final with its due time.
type DueTest struct {
	Test
	Due time.Time
}

// DueCursor is where a walk through the due tests stands: after the test
// (Due, ID). The zero cursor starts at the beginning.
type DueCursor struct {
	Due time.Time
	ID  string
}

// After returns the cursor just past t.
func (t DueTest) After() DueCursor { return DueCursor{Due: t.Due, ID: t.ID} }

// DueTests returns the tests that are not final and due at or before now,
// ordered by due time and id, starting after the cursor, at most limit (0:
// 100; negative is an error). Tests the caller defers meanwhile drop out
// of the later pages; the cursor lets a caller pass over a test it could
// not handle without reading it again in the same walk.
func (s *Store) DueTests(ctx context.Context, now time.Time, after DueCursor, limit int) ([]DueTest, error) {
	limit, err := limitOrDefault("due tests", limit, defaultDueLimit)
	if err != nil {
		return nil, err
	}
	afterNS := int64(-1 << 63)
	if !after.Due.IsZero() {
		afterNS = clampToNanos(after.Due)
	}
	return queryRows(ctx, s.db, "due tests", scanDueTest, s.q(dueTestsSQL), clampToNanos(now), afterNS, afterNS, after.ID, int64(limit))
}

// dueTestsSQL reads a page of due tests. The literal 'final' lets SQLite
// use the partial index tests_due, whose WHERE the query's must imply.
const dueTestsSQL = `SELECT ` + testColumns + `, due_ns FROM tests
WHERE state <> 'final' AND due_ns <= ? AND (due_ns > ? OR due_ns = ? AND id > ?)
ORDER BY due_ns, id
LIMIT ?`

func scanDueTest(row rowScanner) (DueTest, error) {
	var due int64
	t, err := scanTestAnd(row, &due)
	if err != nil {
		return DueTest{}, err
	}
	return DueTest{Test: t, Due: nanosToTime(due)}, nil
}

// DeferTest sets when the finaliser looks at the test id next. A final
// test is left alone.
func (s *Store) DeferTest(ctx context.Context, id string, until time.Time) error {
	_, err := execCount(ctx, s.db, "defer test "+id, s.q(`UPDATE tests SET due_ns = ? WHERE id = ? AND state <> 'final'`),
		clampToNanos(until), strings.ToLower(id))
	return err
}
