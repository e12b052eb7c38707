package store

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestTLSRPTTies: a report is stored with its ties and read back by test,
// parsed and without its raw form; a second report with the same key is
// refused and changes nothing; deleting a test drops its ties; pruning a
// report drops its ties.
func TestTLSRPTTies(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := openTestStoreOf(t, driver)
		ctx := t.Context()
		t0 := testEpoch()
		for _, id := range []string{"ta", "tb"} {
			if err := s.CreateTest(ctx, Test{ID: id, Created: t0, Updated: t0, Kind: TestToken, State: TestOpen}); err != nil {
				t.Fatal(err)
			}
		}
		r := &TLSRPTReport{Received: t0, Source: TLSRPTByHTTPS, Raw: []byte("gz"), Report: []byte(`{"x":1}`),
			Key: TLSRPTKey("Org", "r1"), Tests: []string{"ta", "tb"}}
		if err := s.AddTLSRPTReport(ctx, r, TLSRPTQuota{}); err != nil {
			t.Fatal(err)
		}
		dup := &TLSRPTReport{Received: t0.Add(time.Second), Source: TLSRPTByMail, Raw: []byte("m"), Report: []byte(`{}`), Key: r.Key, Tests: []string{"ta"}}
		if err := s.AddTLSRPTReport(ctx, dup, TLSRPTQuota{}); !errors.Is(err, ErrTLSRPTDuplicate) {
			t.Fatalf("duplicate: %v", err)
		}
		other := &TLSRPTReport{Received: t0.Add(2 * time.Second), Raw: []byte("m2"), Report: []byte(`{"y":2}`), Key: TLSRPTKey("Org", "r2")}
		if err := s.AddTLSRPTReport(ctx, other, TLSRPTQuota{}); err != nil {
			t.Fatal(err)
		}
		got, err := s.TLSRPTReportsOf(ctx, "ta", 0)
		if err != nil || len(got) != 1 || got[0].ID != r.ID || string(got[0].Report) != `{"x":1}` || got[0].Raw != nil ||
			got[0].Source != TLSRPTByHTTPS || got[0].Key != r.Key {
			t.Fatalf("reports of ta: %+v, %v", got, err)
		}
		if all, err := s.TLSRPTReports(ctx, time.Time{}, 0); err != nil || len(all) != 2 || string(all[1].Raw) != "m2" || all[1].Source != TLSRPTByMail {
			t.Fatalf("all reports: %+v, %v", all, err)
		}
		if err := s.DeleteTest(ctx, "ta"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.TLSRPTReportsOf(ctx, "ta", 0); err != nil || len(got) != 0 {
			t.Fatalf("reports of the deleted test: %+v, %v", got, err)
		}
		if n, err := s.PruneTLSRPTReports(ctx, t0.Add(time.Second)); err != nil || n != 1 {
			t.Fatalf("prune: %d, %v", n, err)
		}
		var ties int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM tlsrpt_report_tests`).Scan(&ties); err != nil || ties != 0 {
			t.Fatalf("%d ties left after the prune, %v", ties, err)
		}
	})
}

// TestSlotTestsAndClients: the holders of a slot over a time range (a
// reused slot has several), and the tests with connections from given
// addresses in a range.
func TestSlotTestsAndClients(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		s := openTestStoreOf(t, driver)
		ctx := t.Context()
		t0 := testEpoch()
		add := func(id string, slot int, created, final time.Time) {
			t.Helper()
			tt := Test{ID: id, Created: created, Updated: created, Kind: TestToken, State: TestOpen, Slot: slot}
			if err := s.CreateTest(ctx, tt); err != nil {
				t.Fatal(err)
			}
			if !final.IsZero() {
				tt.State, tt.Updated = TestFinal, final
				if err := s.UpdateTest(ctx, tt); err != nil {
					t.Fatal(err)
				}
			}
		}
		h := time.Hour
		add("early", 1, t0, t0.Add(h))
		add("late", 1, t0.Add(3*h), t0.Add(4*h))
		add("open", 1, t0.Add(6*h), time.Time{})
		add("elsewhere", 2, t0, time.Time{})
		for _, tc := range []struct {
			from, until time.Duration
			want        []string
		}{
			{0, 24 * h, []string{"early", "late", "open"}},
			{2 * h, 3*h + time.Minute, []string{"late"}},
			{90 * time.Minute, 2 * h, nil},
			{5 * h, 7 * h, []string{"open"}},
		} {
			got, err := s.SlotTests(ctx, 1, t0.Add(tc.from), t0.Add(tc.until))
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("slot 1 in [%v, %v]: %v, %v; want %v", tc.from, tc.until, got, err, tc.want)
			}
		}
		a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		for i, c := range []SMTPConnection{
			{TestID: "early", Started: t0.Add(time.Minute), Client: netip.AddrPortFrom(a, 1)},
			{TestID: "late", Started: t0.Add(3 * h), Client: netip.AddrPortFrom(b, 1)},
			{Started: t0.Add(time.Minute), Client: netip.AddrPortFrom(a, 2)},
		} {
			if err := s.InsertConnection(ctx, &c); err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
		}
		if got, err := s.TestsOfClients(ctx, []netip.Addr{a}, t0, t0.Add(24*h)); err != nil || !slices.Equal(got, []string{"early"}) {
			t.Errorf("tests of a: %v, %v", got, err)
		}
		if got, err := s.TestsOfClients(ctx, []netip.Addr{a, b}, t0.Add(2*h), t0.Add(24*h)); err != nil || !slices.Equal(got, []string{"late"}) {
			t.Errorf("tests of a, b later: %v, %v", got, err)
		}
		if got, err := s.TestsOfClients(ctx, nil, t0, t0.Add(24*h)); err != nil || got != nil {
			t.Errorf("no addresses: %v, %v", got, err)
		}
	})
}
