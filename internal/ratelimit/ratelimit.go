// Package ratelimit counts uses per key in fixed windows: the limits that
// keep one client (an address, a network) from taking more than its share
// of something stored (tests started on the web, TLS-RPT reports, DNS
// query log rows).
//
// A fixed window is coarse (a client may use twice the limit across a
// window boundary) but needs one counter per key and no timers, which is
// what a limit against floods wants. Each key's window starts at its first
// use. The table is bounded in keys; when it is full, a new key evicts the
// key whose window started first (expired ones go first, being oldest), so
// a flood of new keys can never reset the counts of everyone else.
package ratelimit

import (
	"container/list"
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
	// counts holds each key's element in order, oldest window first:
	// a key moves to the back when its window starts.
	counts map[string]*list.Element
	order  list.List // of *entry
}

type entry struct {
	key   string
	start time.Time
	count int
}

// New returns a Window of n uses per key per length; now nil means
// time.Now. n < 1 allows nothing.
func New(n int, length time.Duration, now func() time.Time) *Window {
	if now == nil {
		now = time.Now
	}
	return &Window{n: n, length: length, now: now, maxKeys: DefaultMaxKeys, counts: map[string]*list.Element{}}
}

// Allow counts one use by key and tells whether it is within the limit. A
// refused use is not counted.
func (w *Window) Allow(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	el, known := w.counts[key]
	switch {
	case !known:
		for len(w.counts) >= max(w.maxKeys, 1) {
			// The front is the oldest window: expired or not, it goes.
			oldest := w.order.Front()
			delete(w.counts, oldest.Value.(*entry).key)
			w.order.Remove(oldest)
		}
		el = w.order.PushBack(&entry{key: key, start: now})
		w.counts[key] = el
	default:
		if e := el.Value.(*entry); now.Sub(e.start) >= w.length || now.Before(e.start) {
			e.start, e.count = now, 0
			w.order.MoveToBack(el)
		}
	}
	e := el.Value.(*entry)
	if e.count >= w.n {
		return false
	}
	e.count++
	return true
}
