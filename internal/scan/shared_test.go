package scan

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store/storetest"
)

// runWorkers runs n workers at once, as n processes would (run builds
// each one's own parts: Destinations, checker), and returns their stats.
func runWorkers(t *testing.T, n int, run func(owner string) (Stats, error)) []Stats {
	t.Helper()
	var wg sync.WaitGroup
	stats := make([]Stats, n)
	for i := range stats {
		wg.Go(func() {
			var err error
			if stats[i], err = run(fmt.Sprintf("worker-%d", i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	return stats
}

// TestSharedPerDestinationCap: two workers, each with its own
// Destinations as two processes have, share the per-destination cap
// through the store: the server never holds more than the cap's sessions
// from both together, and every domain is checked once. With a cap per
// process (NewDestinations) the server sees up to twice the cap.
func TestSharedPerDestinationCap(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		srv := startCountingSMTP(t)
		const limit = 2
		st := openStore(t, driver)
		newScan(t, st, "s", domainList(60))
		var (
			mu    sync.Mutex
			calls = map[string]int{}
		)
		stats := runWorkers(t, 2, func(owner string) (Stats, error) {
			dests := NewSharedDestinations(st, "s", owner, limit, time.Minute)
			d := &net.Dialer{}
			check := twoConnections(dests.Dial(d.DialContext), srv.ln.Addr().String())
			counted := func(ctx context.Context, domain string) (json.RawMessage, error) {
				mu.Lock()
				calls[domain]++
				mu.Unlock()
				return check(ctx, domain)
			}
			return Run(t.Context(), st, "s", counted, Options{Owner: owner, Concurrency: 16})
		})
		if got := srv.max.Load(); got > limit {
			t.Errorf("the server saw up to %d connections at once from two workers, want at most the cap %d", got, limit)
		}
		for d, n := range calls {
			if n != 1 {
				t.Errorf("%s checked %d times", d, n)
			}
		}
		if stats[0].Failed+stats[1].Failed != 0 || stats[0].Checked+stats[1].Checked != int64(len(calls)) {
			t.Errorf("stats %+v %+v for %d domains", stats[0], stats[1], len(calls))
		}
		var held int
		if err := st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM scan_slots`).Scan(&held); err != nil || held != 0 {
			t.Errorf("%d slots still held after the scan, %v", held, err)
		}
	})
}

// TestSharedRate: two workers with --rate R shared through the store start
// at most R domains per second together, as the checks' start times show
// (a check starts just after its grant, so one can slip into the next
// second: one more is allowed per second for that). Each worker limiting
// itself alone starts up to 2R.
func TestSharedRate(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		const perSecond = 20
		st := openStore(t, driver)
		newScan(t, st, "s", domainList(80))
		var (
			mu     sync.Mutex
			starts = map[int64]int{}
			total  int
		)
		// The store's windows are read while the scan runs: its end
		// prunes them.
		windows := map[time.Time]int{}
		check := func(ctx context.Context, domain string) (json.RawMessage, error) {
			started := time.Now().Unix() // before the read below, which takes time
			w, err := st.ScanStarts(ctx, "s")
			if err != nil {
				return nil, err
			}
			mu.Lock()
			starts[started]++
			total++
			for k, n := range w {
				windows[k] = max(windows[k], n)
			}
			mu.Unlock()
			return fakeReport(domain), nil
		}
		runWorkers(t, 2, func(owner string) (Stats, error) {
			return Run(t.Context(), st, "s", check, Options{Owner: owner, Concurrency: 8, Rate: perSecond, SharedRate: true})
		})
		for sec, n := range starts {
			if n > perSecond+1 {
				t.Errorf("second %d: %d checks started by two workers, rate %d/s", sec, n, perSecond)
			}
		}
		granted := 0
		for w, n := range windows {
			if n > perSecond {
				t.Errorf("window %s: %d starts granted, cap %d", w, n, perSecond)
			}
			granted += n
		}
		if granted != total {
			t.Errorf("%d starts granted, %d checks", granted, total)
		}
		// The complete scan left no rate window behind.
		var left int
		if err := st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM scan_rate`).Scan(&left); err != nil || left != 0 {
			t.Errorf("%d rate windows left after the scan, %v", left, err)
		}
	})
}
