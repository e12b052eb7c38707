package store

import (
	"fmt"
	"strings"
	"time"
)

// This file holds the optional filters and row limits of the reading
// queries (DNS queries, connections, policy fetches, TLS-RPT reports).

// limitOrDefault is a caller's row limit: 0 means def, and a negative limit
// is an error.
func limitOrDefault(what string, limit, def int) (int, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("store: %s: negative limit %d", what, limit)
	case limit == 0:
		return def, nil
	}
	return limit, nil
}

// filter collects the conditions of a query's optional filters with their
// arguments, in the order of their placeholders.
type filter struct {
	conds []string
	args  []any
}

// add adds a condition and the arguments of its placeholders.
func (f *filter) add(cond string, args ...any) {
	f.conds = append(f.conds, cond)
	f.args = append(f.args, args...)
}

// and adds the conditions of g after those of f.
func (f *filter) and(g filter) {
	f.conds = append(f.conds, g.conds...)
	f.args = append(f.args, g.args...)
}

// timeRange restricts the nanosecond column to [since, until); a zero bound
// does not restrict, and bounds outside the storable range are clamped.
func (f *filter) timeRange(column string, since, until time.Time) {
	if !since.IsZero() {
		f.add(column+" >= ?", clampToNanos(since))
	}
	if !until.IsZero() {
		f.add(column+" < ?", clampToNanos(until))
	}
}

// where is the WHERE clause of the conditions, all of which must hold, on
// a line of its own; "" without conditions.
func (f *filter) where() string {
	if len(f.conds) == 0 {
		return ""
	}
	return "\nWHERE " + strings.Join(f.conds, " AND ")
}
