package ratelimit

import (
	"testing"
	"time"
)

func TestWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := New(2, time.Minute, func() time.Time { return now })
	steps := []struct {
		advance time.Duration
		key     string
		want    bool
	}{
		{0, "a", true},
		{0, "a", true},
		{0, "a", false}, // third in the window
		{0, "b", true},  // another key has its own count
		{59 * time.Second, "a", false},
		{time.Second, "a", true}, // a new window
		{0, "a", true},
		{0, "a", false},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := w.Allow(s.key); got != s.want {
			t.Errorf("step %d: Allow(%q) = %v, want %v", i, s.key, got, s.want)
		}
	}
}

func TestWindowBoundedKeys(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	w := New(1, time.Hour, func() time.Time { return now })
	w.maxKeys = 3
	for _, k := range []string{"a", "b", "c"} {
		if !w.Allow(k) {
			t.Fatalf("first use of %q refused", k)
		}
	}
	if w.Allow("a") {
		t.Fatal("second use of a allowed in the same window")
	}
	// A fourth key: the table is full. The oldest key (a) is evicted; the
	// others keep their counts (a flood of new keys must not reset
	// everyone's limit).
	if !w.Allow("d") {
		t.Fatal("d refused")
	}
	if len(w.counts) != 3 {
		t.Fatalf("table holds %d keys, want 3", len(w.counts))
	}
	for _, k := range []string{"b", "c", "d"} {
		if w.Allow(k) {
			t.Errorf("second use of %q allowed: its count was reset", k)
		}
	}
	// An expired window goes before a live one: b's window renews (it
	// moves to the back), so e evicts c, then f evicts d.
	now = now.Add(time.Hour)
	if !w.Allow("b") || !w.Allow("e") || !w.Allow("f") {
		t.Fatal("uses after the window refused")
	}
	if _, ok := w.counts["b"]; !ok {
		t.Error("b was evicted, although its window is the newest")
	}
	if w.Allow("b") {
		t.Error("second use of b in its new window allowed")
	}
}

func TestWindowZeroAllowsNothing(t *testing.T) {
	w := New(0, time.Hour, nil)
	if w.Allow("a") {
		t.Fatal("a limit of 0 allowed a use")
	}
}
