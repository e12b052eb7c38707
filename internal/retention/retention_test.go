package retention

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

func openStore(t *testing.T, driver string) *store.Store {
	t.Helper()
	return storetest.Open(t, driver)
}

// TestPurge: each kind of row is deleted past its own retention and kept
// before it.
func TestPurge(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		ctx := t.Context()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		p := New(Options{Store: st, Tests: 24 * time.Hour, FetchWindow: 7 * 24 * time.Hour, TLSRPT: 48 * time.Hour,
			Now: func() time.Time { return now }})

		for id, at := range map[string]time.Time{"oldtestaaaaaaaaa": now.Add(-25 * time.Hour), "freshtestaaaaaaa": now.Add(-time.Hour)} {
			if err := st.CreateTest(ctx, store.Test{ID: id, Created: at, Updated: at, Kind: store.TestToken, State: store.TestOpen}); err != nil {
				t.Fatal(err)
			}
		}
		client := netip.MustParseAddrPort("192.0.2.1:4000")
		// Fetches: kept while a stored test (created up to 24h ago) may look
		// back a week at them, deleted after 24h + 7d.
		for _, at := range []time.Time{now.Add(-8*24*time.Hour - time.Minute), now.Add(-8*24*time.Hour + time.Minute), now} {
			if err := st.AddPolicyFetch(ctx, store.PolicyFetch{Time: at, Client: client, Path: "/.well-known/mta-sts.txt", Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		for _, at := range []time.Time{now.Add(-49 * time.Hour), now.Add(-47 * time.Hour)} {
			if err := st.AddTLSRPTReport(ctx, &store.TLSRPTReport{Received: at, Raw: []byte("r")}, store.TLSRPTQuota{}); err != nil {
				t.Fatal(err)
			}
		}
		// A scan whose workers were killed: its rate windows and slots
		// go after an hour, its current ones stay.
		for _, w := range []time.Time{now.Add(-ScanSharesKept - time.Second), now} {
			if ok, err := st.TakeScanStart(ctx, "abandoned", w, 1); err != nil || !ok {
				t.Fatalf("scan start: %v %v", ok, err)
			}
		}
		if _, ok, err := st.AcquireScanSlot(ctx, "abandoned", "192.0.2.9", "killed", 1, now.Add(-2*ScanSharesKept), now.Add(-ScanSharesKept-time.Second)); err != nil || !ok {
			t.Fatalf("scan slot: %v %v", ok, err)
		}

		c, err := p.Purge(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if want := (Counts{Tests: 1, PolicyFetches: 1, TLSRPTReports: 1, ScanShares: 2}); c != want {
			t.Errorf("Purge deleted %+v, want %+v", c, want)
		}
		if _, err := st.Test(ctx, "oldtestaaaaaaaaa"); err == nil {
			t.Error("the old test survived")
		}
		if _, err := st.Test(ctx, "freshtestaaaaaaa"); err != nil {
			t.Error("the fresh test was purged")
		}
		if fs, err := st.PolicyFetches(ctx, time.Time{}, time.Time{}, 0); err != nil || len(fs) != 2 {
			t.Errorf("policy fetches left: %d, %v; want 2", len(fs), err)
		}
		if rs, err := st.TLSRPTReports(ctx, time.Time{}, 0); err != nil || len(rs) != 1 {
			t.Errorf("TLS-RPT reports left: %d, %v; want 1", len(rs), err)
		}
		// A second round finds nothing more.
		if c, err := p.Purge(ctx); err != nil || c != (Counts{}) {
			t.Errorf("second purge: %+v, %v", c, err)
		}
	})
}

// TestRunPurgesAtOnce: the loop purges at its start, without waiting an
// interval.
func TestRunPurgesAtOnce(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		old := time.Now().Add(-48 * time.Hour)
		if err := st.AddTLSRPTReport(t.Context(), &store.TLSRPTReport{Received: old, Raw: []byte("r")}, store.TLSRPTQuota{}); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- New(Options{Store: st, TLSRPT: 24 * time.Hour, Every: time.Hour}).Run(ctx) }()
		deadline := time.Now().Add(10 * time.Second)
		for {
			rs, err := st.TLSRPTReports(t.Context(), time.Time{}, 0)
			if err == nil && len(rs) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the old report is still stored (%v)", err)
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
