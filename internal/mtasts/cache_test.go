package mtasts

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/resolver"
)

// world is a scripted DNS record and policy host for the cache tests.
type world struct {
	mu       sync.Mutex
	now      time.Time
	record   string // "" means NXDOMAIN
	dnsErr   error
	policy   Policy
	fetchErr error
	fetches  int
}

func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *world) advance(d time.Duration) {
	w.mu.Lock()
	w.now = w.now.Add(d)
	w.mu.Unlock()
}

func (w *world) set(f func(w *world)) {
	w.mu.Lock()
	f(w)
	w.mu.Unlock()
}

func (w *world) lookupTXT(_ context.Context, name string) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.dnsErr != nil {
		return nil, w.dnsErr
	}
	if w.record == "" {
		return nil, fmt.Errorf("%s: %w", name, resolver.ErrNXDomain)
	}
	return []string{"v=spf1 -all", w.record}, nil
}

func (w *world) fetch(_ context.Context, _ string) (Policy, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fetches++
	if w.fetchErr != nil {
		return Policy{}, w.fetchErr
	}
	return w.policy, nil
}

func TestCacheDiscover(t *testing.T) {
	enforce := Policy{Mode: ModeEnforce, MX: []string{"mx.example.org"}, MaxAge: time.Hour}
	testing2 := Policy{Mode: ModeTesting, MX: []string{"mx.example.org"}, MaxAge: time.Hour}
	w := &world{now: time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), record: "v=STSv1; id=one", policy: enforce}
	c := NewCache(0, w.clock)

	// step runs one discovery and checks where the policy came from, its
	// mode and the number of fetches so far.
	step := func(name string, wantSource Source, wantMode Mode, wantFetches int, wantErr error) {
		t.Helper()
		d := c.Discover(context.Background(), "example.org", w.lookupTXT, w.fetch)
		w.mu.Lock()
		fetches := w.fetches
		w.mu.Unlock()
		p, ok := d.Policy()
		if d.Source != wantSource || ok != (wantSource != SourceNone) || ok && p.Mode != wantMode || fetches != wantFetches {
			t.Fatalf("%s: source %v, mode %q, %d fetches; want %v, %q, %d (%+v)", name, d.Source, p.Mode, fetches, wantSource, wantMode, wantFetches, d)
		}
		if wantErr != nil && !errors.Is(d.RecordErr, wantErr) && !errors.Is(d.FetchErr, wantErr) {
			t.Fatalf("%s: errors %v / %v, want %v", name, d.RecordErr, d.FetchErr, wantErr)
		}
	}

	step("first discovery fetches", SourceFetched, ModeEnforce, 1, nil)
	step("same id: from the cache", SourceCache, ModeEnforce, 1, nil)

	w.set(func(w *world) { w.record, w.policy = "v=STSv1; id=two", testing2 })
	step("new id: refetch", SourceFetched, ModeTesting, 2, nil)

	w.set(func(w *world) { w.record, w.policy = "v=STSv1; id=three", enforce; w.fetchErr = ErrPolicyFetch })
	step("new id, fetch fails: cached policy stays", SourceCache, ModeTesting, 3, ErrPolicyFetch)

	w.set(func(w *world) { w.record = "" })
	step("record gone: cached policy stays", SourceCache, ModeTesting, 3, ErrNoRecord)

	w.set(func(w *world) { w.dnsErr = resolver.ErrServFail })
	step("DNS failure: cached policy stays", SourceCache, ModeTesting, 3, ErrRecordLookup)

	w.set(func(w *world) { w.record = "v=STSv1; id=a\nv=STSv1; id=b"; w.dnsErr = nil })
	step("malformed record: cached policy stays", SourceCache, ModeTesting, 3, ErrRecordSyntax)

	w.advance(time.Hour)
	step("expired, malformed record: no policy", SourceNone, "", 3, ErrRecordSyntax)

	w.set(func(w *world) { w.record = "v=STSv1; id=two"; w.fetchErr = nil })
	step("expired, same id: refetch", SourceFetched, ModeEnforce, 4, nil)

	w.advance(59 * time.Minute)
	step("not yet expired", SourceCache, ModeEnforce, 4, nil)
	w.set(func(w *world) { w.fetchErr = ErrNoPolicy })
	w.advance(time.Minute)
	step("expired, fetch fails: no policy", SourceNone, "", 5, ErrNoPolicy)

	w.set(func(w *world) { w.record = ""; w.fetchErr = nil })
	step("no record, nothing cached", SourceNone, "", 5, ErrNoRecord)
}

func TestCacheLimits(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	c := NewCache(2, func() time.Time { return now })
	p := func(age time.Duration) Policy { return Policy{Mode: ModeNone, MaxAge: age} }
	c.Put("a.example", "1", p(time.Hour))
	c.Put("b.example", "1", p(2*time.Hour))
	c.Put("c.example", "1", p(3*time.Hour)) // evicts a (closest to expiry)
	if _, ok := c.Get("a.example"); ok || c.Len() != 2 {
		t.Fatalf("a should have been evicted; len %d", c.Len())
	}
	if e, ok := c.Get("B.Example."); !ok || e.ID != "1" || !e.Expires.Equal(now.Add(2*time.Hour)) {
		t.Fatalf("Get(B.Example.) = %+v, %v", e, ok)
	}
	c.Put("b.example", "2", p(0)) // max_age 0: stored, but never valid
	if _, ok := c.Get("b.example"); ok {
		t.Fatal("a policy with max_age 0 must not be used")
	}
	c.Delete("c.example")
	if _, ok := c.Get("c.example"); ok {
		t.Fatal("deleted entry still there")
	}
}

// TestDiscoverSharesConcurrentFetches: parallel deliveries to one domain
// fetch its policy once.
func TestDiscoverSharesConcurrentFetches(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	fetches := 0
	fetch := func(context.Context, string) (Policy, error) {
		mu.Lock()
		fetches++
		mu.Unlock()
		<-release
		return Policy{Mode: ModeNone, MaxAge: time.Hour}, nil
	}
	lookup := func(context.Context, string) ([]string, error) { return []string{"v=STSv1; id=1"}, nil }
	c := NewCache(0, nil)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if d := c.Discover(context.Background(), "example.org", lookup, fetch); d.Source == SourceNone {
				t.Errorf("no policy: %+v", d)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if fetches != 1 {
		t.Fatalf("%d fetches, want 1", fetches)
	}
}
