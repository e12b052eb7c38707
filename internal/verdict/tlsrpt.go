package verdict

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// TLSRPTReport is what one TLS-RPT aggregate report (RFC 8460 §4) tied
// to the test says about the test's domains: pure data, gathered by
// internal/evidence from the reports the service received.
type TLSRPTReport struct {
	ID           int64     `json:"id"` // the stored report
	Source       string    `json:"source"`
	Received     time.Time `json:"received"`
	Organization string    `json:"organization"`
	ReportID     string    `json:"report_id"`
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	// Policies are the report's policies for the test's domains (its
	// slot's, or the shared zone A and B apexes); the others are left out.
	Policies []TLSRPTPolicy `json:"policies"`
}

// TLSRPTPolicy is one policy of a report (RFC 8460 §4.4): the policy the
// reporter applied to one of the test's domains and its sessions.
type TLSRPTPolicy struct {
	Type       string          `json:"type"` // "sts", "tlsa", "no-policy-found"
	Domain     string          `json:"domain"`
	ZoneB      bool            `json:"zone_b"` // a domain of zone B (else A)
	Successful int64           `json:"successful"`
	Failed     int64           `json:"failed"`
	Failures   []TLSRPTFailure `json:"failures"`
}

// TLSRPTFailure is one failure detail (RFC 8460 §4.3, §4.4).
type TLSRPTFailure struct {
	ResultType  string     `json:"result_type"`
	Sessions    int64      `json:"sessions"`
	SendingMTA  netip.Addr `json:"sending_mta"` // invalid when not given
	ReceivingMX string     `json:"receiving_mx,omitempty"`
	ReceivingIP string     `json:"receiving_ip,omitempty"`
}

// Result types of RFC 8460 §4.3 that the facts read.
const (
	resultSTARTTLSNotSupported = "starttls-not-supported"
	resultHostMismatch         = "certificate-host-mismatch"
	resultExpired              = "certificate-expired"
	resultNotTrusted           = "certificate-not-trusted"
)

// Policy types of RFC 8460 §4.4.
const (
	tlsrptSTS      = "sts"
	tlsrptTLSA     = "tlsa"
	tlsrptNoPolicy = "no-policy-found"
)

// tlsrptFacts settles facts from the TLS-RPT reports (docs/verdict.md
// "TLS-RPT reports") where the connections left them unknown or only
// likely, and where the verdict's policy does not imply the opposite (a
// report never contradicts what the connections proved). The policy
// itself is not changed: anyone can send a report, so a report fills in
// facts but never moves the verdict. A fact is proven when a failure
// detail of the report names a sending MTA that connected for the test
// (those connections are its evidence), else likely.
func tlsrptFacts(v *Verdict, obs Observations) {
	implied := impliedFacts(v.Policy)
	for _, rf := range tlsrptSettles(obs) {
		i := slices.IndexFunc(v.Facts, func(f Fact) bool { return f.Name == rf.name })
		if i < 0 || v.Facts[i].Confidence == Proven {
			continue
		}
		if want, ok := implied[rf.name]; ok && want != rf.value {
			continue
		}
		c := Likely
		if len(rf.ev) > 0 {
			c = Proven
		}
		v.Facts[i] = Fact{Name: rf.name, Value: rf.value, Confidence: c, Evidence: rf.ev, Why: rf.why, Caveat: v.Facts[i].Caveat}
	}
}

// reportFact is a fact a report settles.
type reportFact struct {
	name  string
	value bool
	why   string
	ev    []int64
}

// tlsrptSettles lists the facts the reports settle, in the order of the
// reports, the first per fact.
func tlsrptSettles(obs Observations) []reportFact {
	var out []reportFact
	add := func(r TLSRPTReport, p TLSRPTPolicy, name string, value bool, what string) {
		if slices.ContainsFunc(out, func(f reportFact) bool { return f.name == name }) {
			return
		}
		out = append(out, reportFact{name: name, value: value,
			why: fmt.Sprintf("TLS-RPT report %q of %s (%s policy for %s, %d sessions succeeded, %d failed): %s",
				r.ReportID, r.Organization, p.Type, p.Domain, p.Successful, p.Failed, what),
			ev: corroborating(obs, p)})
	}
	for _, r := range obs.TLSRPT {
		for _, p := range r.Policies {
			sessions := p.Successful+p.Failed > 0
			switch {
			case p.Type == tlsrptSTS && !p.ZoneB && sessions:
				// §4.4: "sts" is the policy the sender applied: it
				// found and fetched zone A's MTA-STS policy.
				add(r, p, FactAppliesMTASTS, true, "it applied zone A's MTA-STS policy")
			case p.Type == tlsrptTLSA && sessions:
				// It looked up the TLSA records and applied DANE
				// (RFC 7672 §2.2) to the MX hosts.
				add(r, p, FactValidatesDANE, true, "it applied the MX hosts' TLSA records (DANE)")
			case p.Type == tlsrptNoPolicy && !p.ZoneB && sessions:
				// Zone A publishes both an MTA-STS policy and TLSA
				// records: a sender that found neither applies neither.
				add(r, p, FactAppliesMTASTS, false, "it found no MTA-STS policy for zone A, which publishes one")
				add(r, p, FactValidatesDANE, false, "it found no TLSA records for zone A's MX hosts, which have them")
			}
			if p.Type != tlsrptSTS && p.Type != tlsrptTLSA {
				continue
			}
			for _, f := range p.Failures {
				if f.Sessions <= 0 {
					continue
				}
				switch f.ResultType {
				case resultSTARTTLSNotSupported:
					// A failed session under a policy is a mail not
					// delivered (§4.3): it refused plain text.
					add(r, p, FactEnforcesEncryption, true, fmt.Sprintf("it refused to deliver to %s, which offered no STARTTLS", orUnnamed(f.ReceivingMX)))
				case resultHostMismatch, resultExpired, resultNotTrusted:
					if p.Type == tlsrptSTS {
						// MTA-STS requires a PKIX-valid certificate
						// (RFC 8461 §4.2): the failure is its refusal.
						add(r, p, FactValidatesPKIX, true, fmt.Sprintf("it refused %s's certificate (%s)", orUnnamed(f.ReceivingMX), f.ResultType))
					}
				}
			}
		}
	}
	return out
}

// corroborating returns the test's connections from a sending MTA the
// policy's failure details name: the report then speaks of the test's own
// sender.
func corroborating(obs Observations, p TLSRPTPolicy) []int64 {
	var ids []int64
	for _, f := range p.Failures {
		if !f.SendingMTA.IsValid() {
			continue
		}
		for _, c := range obs.Connections {
			if c.Client.Addr().Unmap() == f.SendingMTA.Unmap() && !slices.Contains(ids, c.ID) {
				ids = append(ids, c.ID)
			}
		}
	}
	return ids
}

func orUnnamed(host string) string {
	if strings.TrimSpace(host) == "" {
		return "an MX host"
	}
	return host
}
