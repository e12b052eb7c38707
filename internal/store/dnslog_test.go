package store

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// logBuffer is a concurrency-safe log sink for asserting on log output.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newTestLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	var b logBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// startLog runs l in a goroutine and returns a function that cancels it and
// waits for Run to return, failing the test if Run returns an error or does
// not return promptly.
func startLog(t *testing.T, l *DNSQueryLog) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
	}
}

// countQueries returns how many queries the stored rows stand for (the log
// aggregates identical ones).
func countQueries(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(t.Context(), `SELECT COALESCE(SUM(count), 0) FROM dns_queries`).Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	return n
}

func TestDNSQueryLogFlushesEverythingOnCancel(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		const n = 10000
		for _, tc := range []struct {
			name    string
			startup bool // start Run before recording (else record into the buffer first)
		}{
			{"while running", true},
			{"buffered before run", false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := openTestStoreOf(t, driver)
				l := NewDNSQueryLog(s, nil, n, time.Hour)
				var stop func()
				if tc.startup {
					stop = startLog(t, l)
				}
				for i := range n {
					l.Record(testQuery(i, "a.example."))
				}
				if !tc.startup {
					stop = startLog(t, l)
				}
				stop()

				if got := countQueries(t, s); got != n {
					t.Errorf("%d queries stored, want %d", got, n)
				}
				if got := l.Written(); got != n {
					t.Errorf("Written() = %d, want %d", got, n)
				}
				if got := l.Dropped(); got != 0 {
					t.Errorf("Dropped() = %d, want 0", got)
				}
			})
		}
	})
}

func TestDNSQueryLogFlushesPeriodically(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		l := NewDNSQueryLog(s, nil, 100, 0)
		stop := startLog(t, l)
		defer stop()

		// Fewer than a batch: only the periodic tick writes them.
		for i := range 3 {
			l.Record(testQuery(i, "a.example."))
		}
		deadline := time.Now().Add(10 * time.Second)
		for l.Written() < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("Written() = %d after 10s, want 3", l.Written())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := countQueries(t, s); got != 3 {
			t.Errorf("%d queries stored, want 3", got)
		}
	})
}

func TestDNSQueryLogRecordNeverBlocks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		l := NewDNSQueryLog(s, nil, 1, time.Hour) // Run never started: nothing drains the buffer

		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 1000 {
				l.Record(testQuery(i, "a.example."))
			}
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Record blocked on a full buffer")
		}
		if got := l.Dropped(); got != 999 {
			t.Errorf("Dropped() = %d, want 999", got)
		}
		if got := l.Written(); got != 0 {
			t.Errorf("Written() = %d, want 0", got)
		}
	})
}

func TestDNSQueryLogWarnsAboutDrops(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		logger, logs := newTestLogger(t)
		l := NewDNSQueryLog(s, logger, 2, 0)
		for i := range 7 {
			l.Record(testQuery(i, "a.example."))
		}
		stop := startLog(t, l)

		// The first warning comes on the first flush tick, not at shutdown.
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(logs.String(), "queries dropped") {
			if time.Now().After(deadline) {
				t.Fatalf("no drop warning after 10s; log:\n%s", logs)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// More drops within 10 s of the warning are reported only at shutdown.
		for i := range 100 {
			l.Record(testQuery(i, "b.example."))
		}
		time.Sleep(3 * dnsLogFlushEvery)
		if got := strings.Count(logs.String(), "queries dropped"); got != 1 {
			t.Errorf("%d drop warnings within 10s, want 1; log:\n%s", got, logs)
		}
		stop()

		out := logs.String()
		if !strings.Contains(out, "level=WARN msg=\"DNS query log: queries dropped\" count=5 total=5") {
			t.Errorf("first warning does not report 5 drops; log:\n%s", out)
		}
		if got := strings.Count(out, "queries dropped"); got > 2 {
			t.Errorf("%d drop warnings, want at most 2; log:\n%s", got, out)
		}
		if total := l.Dropped() + l.Written(); total != 107 {
			t.Errorf("Dropped()+Written() = %d, want 107 (every record accounted for)", total)
		}
	})
}

func TestDNSQueryLogWriteErrorsDropBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		logger, logs := newTestLogger(t)
		l := NewDNSQueryLog(s, logger, 10, time.Hour)
		for i := range 5 {
			l.Record(testQuery(i, "a.example."))
		}
		// Make every write fail.
		if _, err := s.DB().ExecContext(t.Context(), `DROP TABLE dns_queries`); err != nil {
			t.Fatalf("drop table: %v", err)
		}
		stop := startLog(t, l)
		stop()

		if got := l.Dropped(); got != 5 {
			t.Errorf("Dropped() = %d, want 5", got)
		}
		if got := l.Written(); got != 0 {
			t.Errorf("Written() = %d, want 0", got)
		}
		out := logs.String()
		for _, want := range []string{"write failed, retrying", "write failed twice", "prune failed"} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q:\n%s", want, out)
			}
		}
	})
}

func TestDNSQueryLogPrunesAtStart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		old := testQuery(0, "old.example.")
		old.Time = time.Now().Add(-2 * time.Hour)
		fresh := testQuery(0, "fresh.example.")
		fresh.Time = time.Now().Add(-time.Minute)
		addQueries(t, s, []DNSQuery{old, fresh})

		l := NewDNSQueryLog(s, nil, 10, time.Hour)
		startLog(t, l)()

		got, err := s.DNSQueries(t.Context(), DNSQueryFilter{})
		if err != nil {
			t.Fatalf("DNSQueries: %v", err)
		}
		checkQueries(t, got, []DNSQuery{fresh})
	})
}

func TestDNSQueryLogRecordFillsTime(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		l := NewDNSQueryLog(s, nil, 10, 0)
		before := time.Now()
		q := testQuery(0, "a.example.")
		q.Time = time.Time{}
		l.Record(q)
		startLog(t, l)()

		got, err := s.DNSQueries(t.Context(), DNSQueryFilter{})
		if err != nil {
			t.Fatalf("DNSQueries: %v", err)
		}
		if len(got) != 1 || got[0].Time.Before(before) || got[0].Time.After(time.Now()) {
			t.Errorf("got %v, want one query timed between %v and now", got, before)
		}
	})
}

func TestDNSQueryLogRunTwice(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		l := NewDNSQueryLog(s, nil, 10, 0)
		stop := startLog(t, l)
		defer stop()
		// Wait until the first Run has claimed the log.
		deadline := time.Now().Add(10 * time.Second)
		for !l.running.Load() {
			if time.Now().After(deadline) {
				t.Fatal("Run did not start")
			}
			time.Sleep(time.Millisecond)
		}
		if err := l.Run(t.Context()); err == nil {
			t.Error("second concurrent Run returned nil")
		}
	})
}

// TestDNSQueryLogAggregates: identical queries of one window fold into one
// row with count, first and last time; any difference (client address,
// name, type, DO, rcode) keeps rows apart; the client port does not.
func TestDNSQueryLogAggregates(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		l := NewDNSQueryLog(s, nil, 100, 0)
		base := testQuery(0, "mx4.a.example.")
		same := func(i int, mutate func(*DNSQuery)) DNSQuery {
			q := base
			q.Time = base.Time.Add(time.Duration(i) * time.Millisecond)
			q.Client = netip.AddrPortFrom(base.Client.Addr(), uint16(40000+i)) // resolvers randomise ports
			if mutate != nil {
				mutate(&q)
			}
			return q
		}
		for i := range 5 {
			l.Record(same(i, nil))
		}
		l.Record(same(5, func(q *DNSQuery) { q.Type = 52 }))
		l.Record(same(6, func(q *DNSQuery) { q.DO = true }))
		l.Record(same(7, func(q *DNSQuery) { q.Client = netip.MustParseAddrPort("192.0.2.2:53") }))
		l.Record(same(8, func(q *DNSQuery) { q.Name = "mx5.a.example." }))
		l.Record(same(9, func(q *DNSQuery) { q.Rcode = 3 }))
		startLog(t, l)()

		got, err := s.DNSQueries(t.Context(), DNSQueryFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 6 {
			t.Fatalf("%d rows, want 6: %+v", len(got), got)
		}
		first := got[0]
		if first.Count != 5 || !first.Time.Equal(base.Time) || !first.Last.Equal(base.Time.Add(4*time.Millisecond)) || first.Client.Port() != 40000 {
			t.Fatalf("aggregated row %+v: want count 5, first and last time, first port", first)
		}
		for _, r := range got[1:] {
			if r.Count != 1 || !r.Last.Equal(r.Time) {
				t.Fatalf("row %+v should stand alone", r)
			}
		}
		if l.Written() != 10 {
			t.Fatalf("Written() = %d, want 10 queries", l.Written())
		}
	})
}
