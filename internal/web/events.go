package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Event streams are long-lived requests, each reloading a report from the
// store, so they are bounded (issue 16): at most Options.MaxStreams at
// once and Options.MaxStreamsPerClient per client (clientIP: an address,
// IPv6 by /64), beyond which a stream is refused with 503 or 429 and
// Retry-After (the browser's EventSource retries); each ends after
// EventMax; and an unchanged report is reloaded less and less often
// (reloadAfter), so an idle live page costs little.

// streamSlots counts the open event streams, in total and per client.
type streamSlots struct {
	mu    sync.Mutex
	total int
	per   map[string]int
}

// acquire takes a slot for client: 0 if granted, else the status to
// answer (503 when the server is full, 429 when the client is).
func (t *streamSlots) acquire(client string, max, perClient int) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.total >= max:
		return http.StatusServiceUnavailable
	case t.per[client] >= perClient:
		return http.StatusTooManyRequests
	}
	if t.per == nil {
		t.per = map[string]int{}
	}
	t.total++
	t.per[client]++
	return 0
}

func (t *streamSlots) release(client string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total--
	if t.per[client]--; t.per[client] <= 0 {
		delete(t.per, client)
	}
}

// reloadAfter is the wait before the next reload: EventInterval after a
// change, doubled for every unchanged report up to maxWait (the test's
// history changes in bursts: a sender's retries, then quiet).
func reloadAfter(last, base, maxWait time.Duration, changed bool) time.Duration {
	if changed || last <= 0 {
		return base
	}
	return min(2*last, max(maxWait, base))
}

// streamRetryAfter is the Retry-After (seconds) of a refused stream.
const streamRetryAfter = 10

// keepAlive is how often an idle stream sends a comment, so that proxies
// do not close it.
const keepAlive = 15 * time.Second

// writeWait bounds each write to the stream: a client that stops reading
// loses its stream (and slot) instead of holding them until EventMax.
const writeWait = 30 * time.Second

// events streams the report as server-sent events (HTML Living Standard
// §9.2): an event "report" with the report's JSON whenever it changed,
// until the verdict is final, the client leaves, or EventMax.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	client := clientIP(r)
	if code := s.streams.acquire(client, s.o.MaxStreams, s.o.MaxStreamsPerClient); code != 0 {
		w.Header().Set("Retry-After", strconv.Itoa(streamRetryAfter))
		s.fail(w, r, true, code, "too many open event streams; try again later")
		return
	}
	defer s.streams.release(client)
	rep, _, key, ok := s.load(w, r, true)
	if !ok {
		return
	}
	flusher, canFlush := w.(http.Flusher)
	if !canFlush {
		s.fail(w, r, true, http.StatusInternalServerError, "streaming not supported")
		return
	}
	// The server has no WriteTimeout (it would cut every stream): each
	// write gets its own deadline (writeWait). Its ReadTimeout does not
	// reach the stream: net/http lifts the read deadline once the request
	// is read (TestServerTimeouts).
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	ctx := r.Context()
	deadline := time.NewTimer(s.o.EventMax)
	defer deadline.Stop()
	send := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(writeWait))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		flusher.Flush()
		return true
	}
	var last []byte
	var wait time.Duration
	lastSent := time.Now()
	for {
		b, err := json.Marshal(rep)
		if err != nil {
			return
		}
		changed := !bytes.Equal(b, last)
		switch {
		case changed:
			if !send("event: report\ndata: %s\n\n", b) {
				return
			}
			last, lastSent = b, time.Now()
		case time.Since(lastSent) >= keepAlive:
			if !send(": keep-alive\n\n") {
				return
			}
			lastSent = time.Now()
		}
		if rep.Final {
			return
		}
		wait = reloadAfter(wait, s.o.EventInterval, s.o.EventMaxWait, changed)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-deadline.C:
			timer.Stop()
			return
		case <-timer.C:
		}
		next, _, err := s.build(ctx, rep.Test, key, s.o.Now(), rep.Lang)
		if err != nil {
			return // deleted, or the store failed: the browser reconnects
		}
		rep = next
	}
}
