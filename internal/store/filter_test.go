package store

import (
	"math"
	"reflect"
	"testing"
	"time"
)

func TestLimitOrDefault(t *testing.T) {
	for _, tc := range []struct {
		limit, want int
		wantErr     bool
	}{
		{0, 1000, false},
		{1, 1, false},
		{5000, 5000, false},
		{-1, 0, true},
	} {
		got, err := limitOrDefault("things", tc.limit, 1000)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("limitOrDefault(%d) = %d, %v; want %d, error %v", tc.limit, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestFilter(t *testing.T) {
	since := time.Unix(10, 5)
	until := time.Unix(20, 0)
	for _, tc := range []struct {
		name      string
		build     func(f *filter)
		wantWhere string
		wantArgs  []any
	}{
		{"none", func(*filter) {}, "", nil},
		{"zero time range", func(f *filter) { f.timeRange("t_ns", time.Time{}, time.Time{}) }, "", nil},
		{"since only", func(f *filter) { f.timeRange("t_ns", since, time.Time{}) },
			"\nWHERE t_ns >= ?", []any{since.UnixNano()}},
		{"range then more", func(f *filter) {
			f.timeRange("t_ns", since, until)
			f.add("name = ?", "x")
		}, "\nWHERE t_ns >= ? AND t_ns < ? AND name = ?", []any{since.UnixNano(), until.UnixNano(), "x"}},
		{"clamped bound", func(f *filter) { f.timeRange("t_ns", time.Time{}, time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)) },
			"\nWHERE t_ns < ?", []any{int64(math.MaxInt64)}},
		{"two arguments, then another filter's", func(f *filter) {
			f.add("ip BETWEEN ? AND ?", 1, 2)
			var g filter
			g.add("status = ?", 200)
			f.and(g)
		}, "\nWHERE ip BETWEEN ? AND ? AND status = ?", []any{1, 2, 200}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f filter
			tc.build(&f)
			if got := f.where(); got != tc.wantWhere {
				t.Errorf("where() = %q, want %q", got, tc.wantWhere)
			}
			if !reflect.DeepEqual(f.args, tc.wantArgs) {
				t.Errorf("args = %v, want %v", f.args, tc.wantArgs)
			}
		})
	}
}
