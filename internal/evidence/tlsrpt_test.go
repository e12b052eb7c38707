package evidence

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
	"github.com/mailsec/mailsec/internal/testslot"
	"github.com/mailsec/mailsec/internal/tlsrpt"
	"github.com/mailsec/mailsec/internal/verdict"
)

// slotTest creates test id in slot n from created, final at final (zero:
// still open).
func slotTest(t *testing.T, st *store.Store, id string, n int, created, final time.Time) store.Test {
	t.Helper()
	tt := store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen, Slot: n}
	if err := st.CreateTest(t.Context(), tt); err != nil {
		t.Fatal(err)
	}
	if !final.IsZero() {
		tt.State, tt.Updated = store.TestFinal, final
		if err := st.UpdateTest(t.Context(), tt); err != nil {
			t.Fatal(err)
		}
	}
	return tt
}

// rpt is a report over [from, until] with one policy per domain, each
// with a failure from the sending MTA addr when addr is not "".
func rpt(from, until time.Time, addr string, domains ...string) tlsrpt.Report {
	r := tlsrpt.Report{OrganizationName: "Reporter", ReportID: "r", DateRange: tlsrpt.DateRange{Start: from, End: until}}
	for _, d := range domains {
		p := tlsrpt.PolicyResult{Policy: tlsrpt.Policy{Type: tlsrpt.PolicySTS, Domain: d}, Summary: tlsrpt.Summary{Successful: 1, Failed: 1}}
		if addr != "" {
			p.FailureDetails = []tlsrpt.FailureDetail{{ResultType: "validation-failure", SendingMTAIP: addr, FailedSessionCount: 1}}
		}
		r.Policies = append(r.Policies, p)
	}
	return r
}

// TestTieTLSRPT: the rule of docs/tlsrpt.md "Tying a report to a test":
// a slot's domain ties to the test that held the slot in the date range
// (slots are reused: of several holders, the one the sending MTA connected
// for); the shared domains tie by sending MTA alone; an ambiguous report,
// or one for another domain, ties nothing.
func TestTieTLSRPT(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		g := Gatherer{Store: st, Rules: Rules{Slots: testslot.Pool{ZoneA: "A.example.", ZoneB: "b.example", Count: 3}}}
		h := time.Hour
		slotTest(t, st, "early", 1, t0, t0.Add(h))
		slotTest(t, st, "late", 1, t0.Add(3*h), t0.Add(4*h))
		slotTest(t, st, "open", 2, t0, time.Time{})
		addTest(t, st, "fixed", store.TestFixed, t0)
		addTest(t, st, "fixed2", store.TestFixed, t0)
		addConn(t, st, "early", "192.0.2.1", t0.Add(time.Minute))
		addConn(t, st, "late", "192.0.2.2", t0.Add(3*h))
		addConn(t, st, "fixed", "198.51.100.1", t0.Add(time.Minute))
		addConn(t, st, "fixed", "198.51.100.9", t0.Add(time.Minute))
		addConn(t, st, "fixed2", "198.51.100.9", t0.Add(time.Minute))
		day := t0.Add(24 * h)
		for _, tc := range []struct {
			name string
			r    tlsrpt.Report
			want []string
		}{
			{"slot, one holder in the range", rpt(t0.Add(-h), t0.Add(2*h), "", "s001.a.example"), []string{"early"}},
			{"slot in zone B, any case", rpt(t0.Add(-h), t0.Add(2*h), "", "S001.B.example"), []string{"early"}},
			{"reused slot, no address: untied", rpt(t0, day, "", "s001.a.example"), nil},
			{"reused slot, the sender's address", rpt(t0, day, "192.0.2.2", "s001.a.example"), []string{"late"}},
			{"reused slot, an unknown address", rpt(t0, day, "203.0.113.1", "s001.a.example"), nil},
			{"slot between holders", rpt(t0.Add(90*time.Minute), t0.Add(2*h), "192.0.2.1", "s001.a.example"), nil},
			{"open test's slot", rpt(t0, day, "", "s002.a.example"), []string{"open"}},
			{"slot never held", rpt(t0, day, "", "s003.a.example"), nil},
			{"shared domain by address", rpt(t0, day, "198.51.100.1", "a.example"), []string{"fixed"}},
			{"shared domain, address of two tests", rpt(t0, day, "198.51.100.9", "a.example"), nil},
			{"shared domain, no address", rpt(t0, day, "", "a.example"), nil},
			{"shared domain, address outside the range", rpt(t0.Add(2*h), day, "198.51.100.1", "a.example"), nil},
			{"another domain", rpt(t0, day, "198.51.100.1", "example.org"), nil},
			{"two policies, two tests", rpt(t0, t0.Add(2*h), "198.51.100.1", "s002.a.example", "a.example"), []string{"open", "fixed"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := g.TieTLSRPT(t.Context(), tc.r)
				if err != nil || !slices.Equal(got, tc.want) {
					t.Fatalf("tied to %v, %v; want %v", got, err, tc.want)
				}
			})
		}
	})
}

// TestGatherTLSRPT: Gather reads the reports tied to the test with their
// policies for its domains only (its slot's and the shared ones), the
// reporter's texts made printable; another test's report is not read.
func TestGatherTLSRPT(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		g := Gatherer{Store: st, Rules: Rules{Quiet: time.Minute, Slots: testslot.Pool{ZoneA: "a.example", ZoneB: "b.example", Count: 3}}}
		tt := slotTest(t, st, "mine", 2, t0, time.Time{})
		slotTest(t, st, "other", 1, t0, time.Time{})
		r := rpt(t0, t0.Add(time.Hour), "192.0.2.1", "s002.a.example", "s001.a.example", "b.example")
		r.OrganizationName = "Evil\x1b[31m Org"
		data, err := jsonOf(r)
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range []*store.TLSRPTReport{
			{Received: t0, Report: data, Key: "1", Tests: []string{"mine"}},
			{Received: t0, Report: data, Key: "2", Tests: []string{"other"}},
		} {
			if err := st.AddTLSRPTReport(t.Context(), row, store.TLSRPTQuota{}); err != nil {
				t.Fatal(err)
			}
		}
		obs, err := g.Gather(t.Context(), tt, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if len(obs.TLSRPT) != 1 {
			t.Fatalf("%d reports gathered, want 1", len(obs.TLSRPT))
		}
		got := obs.TLSRPT[0]
		var domains []string
		for _, p := range got.Policies {
			domains = append(domains, p.Domain)
		}
		if !slices.Equal(domains, []string{"s002.a.example", "b.example"}) || !got.Policies[1].ZoneB || got.Policies[0].ZoneB {
			t.Fatalf("policies %+v", got.Policies)
		}
		if got.Organization != "Evil?[31m Org" || got.Policies[0].Failures[0].SendingMTA.String() != "192.0.2.1" {
			t.Fatalf("report %+v", got)
		}
		if f := verdict.Judge(obs); len(f.Facts) == 0 {
			t.Fatal("no facts")
		}
	})
}

func jsonOf(r tlsrpt.Report) ([]byte, error) { return json.Marshal(r) }
