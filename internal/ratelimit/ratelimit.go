// Package ratelimit counts uses per key in fixed windows: the limits that
// keep one client (an address, a network) from taking more than its share
// of something stored (tests started on the web, TLS-RPT reports, DNS
// query log rows).
//
// A fixed window is coarse (a client may use twice the limit across a
// window boundary) but needs one counter per key and no timers, which is
// what a limit against floods wants: the table is bounded in keys, and when
// full it starts a new window for everyone rather than grow.
package ratelimit

import (
	"sync"
	"time"
)

// DefaultMaxKeys bounds the keys one Window counts.
const DefaultMaxKeys = 100000

// Window allows at most N uses per key in each window of Length. It is safe
// for concurrent use.
type Window struct {
	mu      sync.Mutex
	n       int
	length  time.Duration
	now     func() time.Time
	maxKeys int
	start   time.Time
	counts  map[string]int
}

// New returns a Window of n uses per key per length; now nil means
// time.Now. n < 1 allows nothing.
func New(n int, length time.Duration, now func() time.Time) *Window {
	if now == nil {
		now = time.Now
	}
	return &Window{n: n, length: length, now: now, maxKeys: DefaultMaxKeys, counts: map[string]int{}}
}

// Allow counts one use by key and tells whether it is within the limit. A
// refused use is not counted.
func (w *Window) Allow(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	_, known := w.counts[key]
	if now.Sub(w.start) >= w.length || now.Before(w.start) || !known && len(w.counts) >= w.maxKeys {
		w.start = now
		clear(w.counts)
	}
	if w.counts[key] >= w.n {
		return false
	}
	w.counts[key]++
	return true
}
