package store

import (
	"testing"
	"time"
)

// TestProviderHistory: a result finalised with a provider verdict adds a
// row to the provider's history, in the same transaction (a second
// finalisation adds none); one row per provider and day, the day's newest
// verdict; the history is newest first and per domain; deleting the test
// keeps the row without its test id.
func TestProviderHistory(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		finalise := func(id, domain string, at time.Time, pv *ProviderVerdict) {
			t.Helper()
			test := Test{ID: id, Created: t0, Kind: TestToken, Sender: "x@" + domain, State: TestFinal, Updated: at}
			if err := s.CreateTest(ctx, test); err != nil {
				t.Fatal(err)
			}
			r := TestResult{TestID: id, Final: at, Verdict: []byte(`{}`), SenderDomain: domain, MailState: MailNone, SenderAuthenticated: true, Provider: pv}
			if err := s.FinalizeTest(ctx, test, r); err != nil {
				t.Fatal(err)
			}
			if err := s.FinalizeTest(ctx, test, r); err == nil {
				t.Fatal("second finalisation succeeded")
			}
		}
		finalise("hist1", "provider.example", t0.Add(time.Hour), &ProviderVerdict{Domain: "Provider.example", Final: t0.Add(time.Hour), TestID: "hist1", Policy: "none", Colour: "red"})
		finalise("hist2", "provider.example", t0.Add(48*time.Hour), &ProviderVerdict{Domain: "provider.example", Final: t0.Add(48 * time.Hour), TestID: "hist2", Policy: "dane", Colour: "green", Complete: true})
		finalise("hist3", "other.example", t0.Add(2*time.Hour), &ProviderVerdict{Domain: "other.example", Final: t0.Add(2 * time.Hour), TestID: "hist3", Policy: "mta-sts", Colour: "white", Complete: true})
		finalise("hist4", "provider.example", t0.Add(3*time.Hour), nil) // not a provider's test
		// Later the same day: replaces hist1's row; then one finalised
		// after it but final earlier that day: replaces nothing.
		finalise("hist6", "provider.example", t0.Add(2*time.Hour), &ProviderVerdict{Domain: "provider.example", Final: t0.Add(2 * time.Hour), TestID: "hist6", Policy: "mta-sts", Colour: "white"})
		finalise("hist7", "provider.example", t0.Add(30*time.Minute), &ProviderVerdict{Domain: "provider.example", Final: t0.Add(30 * time.Minute), TestID: "hist7", Policy: "none", Colour: "red"})

		h, err := s.ProviderHistory(ctx, "PROVIDER.example", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 2 || h[0].TestID != "hist2" || h[0].Colour != "green" || !h[0].Complete || !h[0].Final.Equal(t0.Add(48*time.Hour)) ||
			h[1].TestID != "hist6" || h[1].Policy != "mta-sts" || h[1].Complete || h[1].Domain != "provider.example" || !h[1].Final.Equal(t0.Add(2*time.Hour)) {
			t.Fatalf("history: %+v", h)
		}
		if h, _ := s.ProviderHistory(ctx, "provider.example", 1); len(h) != 1 || h[0].TestID != "hist2" {
			t.Errorf("limit 1: %+v", h)
		}
		if err := s.DeleteTest(ctx, "hist2"); err != nil {
			t.Fatal(err)
		}
		h, err = s.ProviderHistory(ctx, "provider.example", 0)
		if err != nil || len(h) != 2 || h[0].TestID != "" || h[0].Colour != "green" || h[1].TestID != "hist6" {
			t.Fatalf("after deleting hist2: %+v %v", h, err)
		}
		if err := s.FinalizeTest(ctx, Test{ID: "hist5", State: TestFinal}, TestResult{TestID: "hist5", Final: t0, Verdict: []byte(`{}`), MailState: MailNone,
			Provider: &ProviderVerdict{Domain: "provider.example"}}); err == nil {
			t.Error("a provider verdict without time and colour was accepted")
		}
	})
}
