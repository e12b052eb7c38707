package verdict

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// report is a TLS-RPT report with one policy for the test's slot domain in
// zone A (or B), from 192.0.2.1 (the simulated sender's address) unless
// the failure says otherwise.
func report(typ string, zoneB bool, ok, failed int64, failures ...TLSRPTFailure) TLSRPTReport {
	domain := "s001.a.example"
	if zoneB {
		domain = "s001.b.example"
	}
	return TLSRPTReport{ID: 1, Organization: "Reporter", ReportID: "r1", Start: t0, End: t0.Add(24 * time.Hour),
		Policies: []TLSRPTPolicy{{Type: typ, Domain: domain, ZoneB: zoneB, Successful: ok, Failed: failed, Failures: failures}}}
}

var sender = netip.MustParseAddr("192.0.2.1")

// TestTLSRPTFacts: the facts a report settles, by policy type and result
// type (docs/verdict.md "TLS-RPT reports"); proven with the test's
// connections from the sending MTA the report names, likely without;
// never over a fact the connections proved; never against the verdict.
func TestTLSRPTFacts(t *testing.T) {
	// A sender seen only in the downgrade window, refusing plain text:
	// PKIX, DANE and MTA-STS are open; "enforces encryption" is proven.
	window, _ := sim{policy: PolicyVerify, toA: true, reached: []column{colPlainWindow}, client: "192.0.2.1"}.history()
	// A sender that delivered in plain text: "enforces encryption" is
	// proven false, and the verdict (may or none) implies it.
	plain, _ := sim{policy: PolicyNone, toA: true, reached: []column{colPlainWindow}, client: "192.0.2.1"}.history()
	// A sender that delivered to persona 3 (TLSA wrong): "validates
	// DANE" proven false by the connection.
	dane3, _ := sim{policy: PolicyEncrypt, toA: true, reached: []column{col3}, client: "192.0.2.1"}.history()
	mine := TLSRPTFailure{ResultType: "validation-failure", Sessions: 2, SendingMTA: sender, ReceivingMX: "mx3.s001.a.example"}
	other := TLSRPTFailure{ResultType: "validation-failure", Sessions: 2, SendingMTA: netip.MustParseAddr("198.51.100.7")}
	for _, tc := range []struct {
		name    string
		history Observations
		fact    string
		want    Confidence
		value   bool
		why     string // part of the fact's Why
	}{
		{"no report: MTA-STS open", Observations{Connections: window}, FactAppliesMTASTS, Unknown, false, "no policy fetch"},
		{"sts from the sender: proven", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("sts", false, 3, 2, mine)}},
			FactAppliesMTASTS, Proven, true, "applied zone A's MTA-STS policy"},
		{"sts from elsewhere: likely", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("sts", false, 3, 2, other)}},
			FactAppliesMTASTS, Likely, true, "applied zone A's MTA-STS policy"},
		{"sts without sessions: nothing", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("sts", false, 0, 0)}},
			FactAppliesMTASTS, Unknown, false, "no policy fetch"},
		{"sts for zone B: nothing", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("sts", true, 3, 0)}},
			FactAppliesMTASTS, Unknown, false, "no policy fetch"},
		{"tlsa: DANE", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("tlsa", false, 1, 2, mine)}},
			FactValidatesDANE, Proven, true, "TLSA records"},
		{"tlsa for zone B: DANE", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("tlsa", true, 1, 0)}},
			FactValidatesDANE, Likely, true, "TLSA records"},
		{"no policy found: no MTA-STS", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("no-policy-found", false, 5, 0)}},
			FactAppliesMTASTS, Likely, false, "found no MTA-STS policy"},
		{"no policy found: no DANE", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("no-policy-found", false, 5, 0)}},
			FactValidatesDANE, Likely, false, "found no TLSA records"},
		{"certificate failure under sts: PKIX", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("sts", false, 0, 1,
			TLSRPTFailure{ResultType: "certificate-host-mismatch", Sessions: 1, SendingMTA: sender, ReceivingMX: "mx3.s001.a.example"})}},
			FactValidatesPKIX, Proven, true, "refused mx3.s001.a.example's certificate"},
		{"certificate failure under tlsa: not PKIX", Observations{Connections: window, TLSRPT: []TLSRPTReport{report("tlsa", false, 0, 1,
			TLSRPTFailure{ResultType: "certificate-expired", Sessions: 1, SendingMTA: sender})}},
			FactValidatesPKIX, Unknown, false, ""},
		{"no STARTTLS under a policy: enforces", Observations{Connections: dane3, TLSRPT: []TLSRPTReport{report("sts", false, 0, 1,
			TLSRPTFailure{ResultType: "starttls-not-supported", Sessions: 1, SendingMTA: sender})}},
			FactEnforcesEncryption, Proven, true, "offered no STARTTLS"},
		{"never over a proven fact", Observations{Connections: dane3, TLSRPT: []TLSRPTReport{report("tlsa", false, 1, 2, mine)}},
			FactValidatesDANE, Proven, false, "does not match"},
		{"never against the verdict", Observations{Connections: plain, SenderDone: true, TLSRPT: []TLSRPTReport{report("sts", false, 0, 1,
			TLSRPTFailure{ResultType: "starttls-not-supported", Sessions: 1})}},
			FactEnforcesEncryption, Proven, false, "plain text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Judge(tc.history)
			f := fact(t, v, tc.fact)
			if f.Confidence != tc.want || (f.Confidence != Unknown && f.Value != tc.value) || !strings.Contains(f.Why, tc.why) {
				t.Fatalf("%s = %+v, want %v %v (%q)", tc.fact, f, tc.want, tc.value, tc.why)
			}
			if f.Confidence == Proven && len(f.Evidence) == 0 {
				t.Fatalf("%s proven without evidence", tc.fact)
			}
			if c := factConflicts(v); len(c) > 0 {
				t.Fatalf("facts conflict with the verdict: %v", c)
			}
		})
	}
}

// TestTLSRPTNeverMovesTheVerdict: for every policy and every subset of the
// places its sender went, a report claiming everything (MTA-STS and DANE
// applied, every failure) fills in facts but leaves the policy, the
// candidates and completeness as the connections made them, and no fact
// contradicts the verdict.
func TestTLSRPTNeverMovesTheVerdict(t *testing.T) {
	all := []TLSRPTReport{report("sts", false, 1, 3,
		TLSRPTFailure{ResultType: "starttls-not-supported", Sessions: 1, SendingMTA: sender},
		TLSRPTFailure{ResultType: "certificate-not-trusted", Sessions: 1, SendingMTA: sender},
		TLSRPTFailure{ResultType: "validation-failure", Sessions: 1}),
		report("tlsa", false, 1, 1, TLSRPTFailure{ResultType: "dane-required", Sessions: 1, SendingMTA: sender}),
		report("no-policy-found", false, 1, 0)}
	checked := 0
	for _, p := range Candidates {
		for mask := 0; mask < 1<<numColumns; mask++ {
			s := sim{policy: p, toA: true, toB: true, reached: reachedOf(mask), client: "192.0.2.1"}
			conns, fetches := s.history()
			obs := Observations{Connections: conns, PolicyFetches: fetches, Now: t0.Add(time.Hour), Quiet: 10 * time.Minute}
			without := Judge(obs)
			obs.TLSRPT = all
			with := Judge(obs)
			checked++
			if with.Policy != without.Policy || with.Complete != without.Complete || !slices.Equal(with.Candidates, without.Candidates) {
				t.Fatalf("%+v: the report moved the verdict from %s to %s", s, without.Policy, with.Policy)
			}
			if c := factConflicts(with); len(c) > 0 {
				t.Fatalf("%+v: %v", s, c)
			}
			for i, f := range with.Facts {
				if w := without.Facts[i]; w.Confidence == Proven && (f.Value != w.Value || f.Why != w.Why) {
					t.Fatalf("%+v: the report replaced the proven %q", s, f.Name)
				}
			}
		}
	}
	t.Logf("%d histories judged", checked)
}
