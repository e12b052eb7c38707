package inbound

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
)

// fakeChecks is a unit-test stand-in for Check: it counts calls per
// domain and can hold them until released.
type fakeChecks struct {
	mu      sync.Mutex
	calls   map[string]int
	release chan struct{} // nil: return at once
}

func (f *fakeChecks) check(ctx context.Context, domain string, _ Options) (*checkreport.Report, error) {
	f.mu.Lock()
	f.calls[domain]++
	f.mu.Unlock()
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	r := &checkreport.Report{Schema: checkreport.Schema, Domain: domain, CheckedAt: time.Now().UTC(), Colour: colour.Green}
	return r, nil
}

func (f *fakeChecks) count(domain string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[domain]
}

type saved struct {
	mu   sync.Mutex
	byID map[string]Stored
	n    atomic.Int32
}

func (s *saved) save(_ context.Context, testID string, rep Stored) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[testID] = rep
	s.n.Add(1)
	return nil
}

func (s *saved) wait(t *testing.T, n int) {
	t.Helper()
	for range 200 {
		if int(s.n.Load()) >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d saves, want %d", s.n.Load(), n)
}

func TestSenderDomain(t *testing.T) {
	for in, want := range map[string]string{
		"user@Example.ORG": "example.org", "<user@example.org>": "example.org", "a@b@Bücher.example": "xn--bcher-kva.example",
		"": "", "<>": "", "user": "", "user@": "", "user@[192.0.2.1]": "", "user@a..b": "",
	} {
		if got := SenderDomain(in); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
}

func TestRunnerDeduplicates(t *testing.T) {
	f := &fakeChecks{calls: map[string]int{}, release: make(chan struct{})}
	s := &saved{byID: map[string]Stored{}}
	r := NewRunner(RunnerOptions{Save: s.save, check: f.check, Parallel: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	r.Submit("t1", "a@example.org")
	r.Submit("t1", "a@example.org")  // same test: ignored
	r.Submit("t2", "b@EXAMPLE.org.") // same domain, other test: one check
	r.Submit("t3", "<>")             // null sender: nothing
	r.Submit("", "a@example.org")    // no test: nothing
	time.Sleep(50 * time.Millisecond)
	close(f.release)
	s.wait(t, 2)
	time.Sleep(50 * time.Millisecond)
	if n := f.count("example.org"); n != 1 {
		t.Errorf("%d checks of example.org, want 1", n)
	}
	if s.n.Load() != 2 || s.byID["t1"].Domain != "example.org" || s.byID["t2"].Colour != colour.Green || len(s.byID["t2"].JSON) == 0 {
		t.Errorf("saved %+v", s.byID)
	}
	// Later tests reuse the cached result.
	r.Submit("t4", "c@example.org")
	s.wait(t, 3)
	if n := f.count("example.org"); n != 1 {
		t.Errorf("%d checks after a cached result, want 1", n)
	}
}

func TestRunnerLimits(t *testing.T) {
	f := &fakeChecks{calls: map[string]int{}}
	s := &saved{byID: map[string]Stored{}}
	recent := func(_ context.Context, domain string, since time.Time) (Stored, bool, error) {
		if domain == "stored.example" {
			return Stored{Domain: domain, Colour: colour.White, Checked: time.Now(), JSON: []byte("{}")}, true, nil
		}
		return Stored{}, false, nil
	}
	r := NewRunner(RunnerOptions{Save: s.save, check: f.check, PerHour: 2, Queue: 3, Recent: recent})
	// The queue is bounded and Submit never blocks, with no worker running.
	start := time.Now()
	for i := range 10 {
		r.Submit("q"+string(rune('a'+i)), "x@d"+string(rune('a'+i))+".example")
	}
	if time.Since(start) > time.Second || len(r.queue) != 3 {
		t.Fatalf("queue %d after 10 submissions", len(r.queue))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// Three queued, two may start this hour: the third is dropped.
	time.Sleep(200 * time.Millisecond)
	if got := s.n.Load(); got != 2 {
		t.Errorf("%d saved with PerHour 2", got)
	}
	// A stored recent result is reused without a check or a start.
	r.Submit("s1", "x@stored.example")
	s.wait(t, 3)
	if f.count("stored.example") != 0 || s.byID["s1"].Colour != colour.White {
		t.Errorf("stored result not reused: %d checks, %+v", f.count("stored.example"), s.byID["s1"])
	}
}
