package store

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestTLSRPTQuota(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		tests := []struct {
			name    string
			quota   TLSRPTQuota
			sizes   []int
			wantErr []bool
		}{
			{"no quota", TLSRPTQuota{}, []int{100, 100, 100}, []bool{false, false, false}},
			{"rows", TLSRPTQuota{MaxReports: 2}, []int{10, 10, 10, 10}, []bool{false, false, true, true}},
			{"bytes", TLSRPTQuota{MaxBytes: 250}, []int{100, 100, 100, 50}, []bool{false, false, true, false}},
			{"both", TLSRPTQuota{MaxReports: 3, MaxBytes: 1000}, []int{600, 500, 300, 1, 1}, []bool{false, true, false, false, true}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s := openTestStoreOf(t, driver)
				ctx := t.Context()
				stored := 0
				for i, n := range tc.sizes {
					r := &TLSRPTReport{Received: testEpoch(), Raw: []byte(strings.Repeat("x", n))}
					err := s.AddTLSRPTReport(ctx, r, tc.quota)
					if got := err != nil; got != tc.wantErr[i] {
						t.Fatalf("report %d (%d bytes): err %v, want error %v", i, n, err, tc.wantErr[i])
					}
					if err != nil && !errors.Is(err, ErrTLSRPTFull) {
						t.Fatalf("report %d: error %v does not wrap ErrTLSRPTFull", i, err)
					}
					if err == nil {
						stored++
					}
				}
				got, err := s.TLSRPTReports(ctx, time.Time{}, 0)
				if err != nil || len(got) != stored {
					t.Fatalf("stored %d reports (%v), want %d", len(got), err, stored)
				}
			})
		}
	})
}

// TestPruneByAge: policy fetches and TLS-RPT reports older than the cut
// are deleted, in chunks, and newer ones kept.
func TestPruneByAge(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		cut := testEpoch().Add(time.Hour)
		old, fresh := pruneChunk+3, 5 // more than a chunk: the loop must go on
		client := netip.MustParseAddrPort("192.0.2.1:4000")
		for i := range old + fresh {
			at := cut.Add(-time.Duration(i+1) * time.Millisecond)
			if i >= old {
				at = cut.Add(time.Duration(i) * time.Millisecond)
			}
			if err := s.AddPolicyFetch(ctx, PolicyFetch{Time: at, Client: client, Path: "/.well-known/mta-sts.txt", Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		for _, at := range []time.Time{cut.Add(-time.Second), cut.Add(-time.Nanosecond), cut, cut.Add(time.Second)} {
			if err := s.AddTLSRPTReport(ctx, &TLSRPTReport{Received: at, Raw: []byte("r")}, TLSRPTQuota{}); err != nil {
				t.Fatal(err)
			}
		}

		if n, err := s.PrunePolicyFetches(ctx, cut); err != nil || n != int64(old) {
			t.Fatalf("PrunePolicyFetches: %d, %v; want %d", n, err, old)
		}
		left, err := s.PolicyFetches(ctx, time.Time{}, time.Time{}, 10000)
		if err != nil || len(left) != fresh {
			t.Fatalf("%d policy fetches left (%v), want %d", len(left), err, fresh)
		}
		for _, f := range left {
			if f.Time.Before(cut) {
				t.Errorf("fetch of %v survived the cut %v", f.Time, cut)
			}
		}

		if n, err := s.PruneTLSRPTReports(ctx, cut); err != nil || n != 2 {
			t.Fatalf("PruneTLSRPTReports: %d, %v; want 2", n, err)
		}
		reports, err := s.TLSRPTReports(ctx, time.Time{}, 0)
		if err != nil || len(reports) != 2 || reports[0].Received.Before(cut) {
			t.Fatalf("reports left: %+v, %v", reports, err)
		}
	})
}

// TestPruneClientsAndUntiedChecks: a client network's window state goes
// once it is old and none of its connections is left; an inbound check tied
// to no test goes once old; a test's check and a client with a connection
// stay.
func TestPruneClientsAndUntiedChecks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		cut := testEpoch().Add(time.Hour)
		for _, c := range []struct {
			key string
			at  time.Time
		}{{"192.0.2.0/24", cut.Add(-time.Minute)}, {"198.51.100.0/24", cut.Add(-time.Minute)}, {"203.0.113.0/24", cut.Add(time.Minute)}} {
			if _, err := s.ClientWindowStart(ctx, c.key, c.at); err != nil {
				t.Fatal(err)
			}
		}
		// 198.51.100.0/24 still has a connection (untied, or its test's).
		conn := SMTPConnection{Started: cut.Add(-time.Minute), Client: netip.MustParseAddrPort("198.51.100.7:4000"),
			Local: netip.MustParseAddrPort("127.0.0.1:25"), ClientKey: "198.51.100.0/24", State: StateNone}
		if err := s.InsertConnection(ctx, &conn); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PruneClients(ctx, cut); err != nil || n != 1 {
			t.Fatalf("PruneClients: %d, %v; want 1 (the old client without connections)", n, err)
		}
		st, err := s.Stats(ctx, false)
		if err != nil || st.Tables["smtp_clients"] != 2 {
			t.Fatalf("smtp_clients left: %d (%v), want 2", st.Tables["smtp_clients"], err)
		}

		now := cut.Add(-time.Minute)
		for _, c := range []InboundCheck{
			{Domain: "old.example", Checked: now, Stored: now, Colour: "green", Report: []byte("{}")},
			{Domain: "new.example", Checked: cut.Add(time.Minute), Stored: cut.Add(time.Minute), Colour: "green", Report: []byte("{}")},
		} {
			if err := s.AddInboundCheck(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CreateTest(ctx, Test{ID: "prunetest1", Created: now, Updated: now, Kind: TestToken, State: TestOpen}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddInboundCheck(ctx, InboundCheck{TestID: "prunetest1", Domain: "old.example", Checked: now, Stored: now, Colour: "red", Report: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PruneUntiedInboundChecks(ctx, cut); err != nil || n != 1 {
			t.Fatalf("PruneUntiedInboundChecks: %d, %v; want 1", n, err)
		}
		if st, err := s.Stats(ctx, false); err != nil || st.Tables["inbound_checks"] != 2 {
			t.Fatalf("inbound_checks left: %d (%v), want 2 (the new one and the test's)", st.Tables["inbound_checks"], err)
		}
	})
}
