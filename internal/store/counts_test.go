package store

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestCounts: the held rows grouped as the metrics show them, and the
// write transactions timed.
func TestCounts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		empty, err := s.Counts(ctx)
		if err != nil || len(empty.Tests)+len(empty.Connections) != 0 || empty.InboundChecks != 0 {
			t.Fatalf("empty store: %+v %v", empty, err)
		}
		t0 := time.Now().UTC()
		for i, state := range []string{TestOpen, TestOpen, TestAcked} {
			if err := s.CreateTest(ctx, Test{ID: fmt.Sprintf("counts%d", i), Created: t0, Updated: t0, Kind: TestToken, State: state}); err != nil {
				t.Fatal(err)
			}
		}
		final := Test{ID: "countsfinal", Created: t0, Updated: t0, Kind: TestToken, State: TestOpen}
		if err := s.CreateTest(ctx, final); err != nil {
			t.Fatal(err)
		}
		final.State = TestFinal
		if err := s.FinalizeTest(ctx, final, TestResult{TestID: final.ID, Final: t0, Verdict: []byte(`{"policy":"dane"}`),
			MailState: MailPending, Recipient: "a@example.org", Next: t0}); err != nil {
			t.Fatal(err)
		}
		for _, c := range []SMTPConnection{
			{TestID: final.ID, Started: t0, Client: netip.MustParseAddrPort("192.0.2.1:1000"), Persona: 4, State: StateMail},
			{TestID: final.ID, Started: t0, Client: netip.MustParseAddrPort("192.0.2.1:1001"), Persona: 4, State: StateMail},
			{Started: t0, Client: netip.MustParseAddrPort("192.0.2.1:1002"), Persona: 1, State: StateNone},
		} {
			if err := s.InsertConnection(ctx, &c); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddPolicyFetch(ctx, PolicyFetch{Time: t0, Path: "/.well-known/mta-sts.txt", Status: 200}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Counts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		show := func(cs []Count) string {
			var out []string
			for _, c := range cs {
				out = append(out, fmt.Sprintf("%s=%d", strings.Join(c.Labels, "/"), c.N))
			}
			slices.Sort(out)
			return strings.Join(out, " ")
		}
		for _, c := range []struct{ name, got, want string }{
			{"tests", show(got.Tests), "acked=1 final=1 open=2"},
			{"verdicts", show(got.Verdicts), "dane=1"},
			{"result mails", show(got.ResultMails), "pending=1"},
			{"connections", show(got.Connections), "1/None=1 4/Mail=2"},
			{"policy fetches", show(got.PolicyFetches), "200=1"},
		} {
			if c.got != c.want {
				t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
			}
		}
		// CreateTest and FinalizeTest are transactions: timed.
		if out := histogramCount(t, s); out < 5 {
			t.Errorf("%d write transactions timed, want at least 5", out)
		}
	})
}

// histogramCount is the number of observations of the store's write
// histogram.
func histogramCount(t *testing.T, s *Store) uint64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	s.WriteSeconds().Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
