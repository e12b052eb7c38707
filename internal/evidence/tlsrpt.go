package evidence

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/tlsrpt"
	"github.com/mailsec/mailsec/internal/untrusted"
	"github.com/mailsec/mailsec/internal/verdict"
)

// DefaultTLSRPTLimit bounds the TLS-RPT reports read per test: a sender
// reports once a day per policy domain and reporter (RFC 8460 §4.1).
const DefaultTLSRPTLimit = 100

// maxReportText bounds each text of a report the verdict and the report
// quote.
const maxReportText = 255

// TieTLSRPT returns the tests report r is tied to, by the rule of
// docs/tlsrpt.md "Tying a report to a test", decided when it arrives:
//   - a policy for a test slot's domain (s001.A, s001.B) names the tests
//     that held the slot during the report's date range (a slot is held
//     from its test's creation until the test became final, and reused
//     after); one holder is the report's test; of several, the one with
//     connections from a sending-mta-ip of the report in the range, if
//     exactly one has;
//   - a policy for the shared domains (zone A or B itself) names no test
//     by itself: the report goes to the test with connections from one of
//     its sending-mta-ip addresses in the range, if exactly one has;
//   - a policy for another domain, or a choice that is not one test,
//     ties nothing: the report is kept and shown on no test.
func (g Gatherer) TieTLSRPT(ctx context.Context, r tlsrpt.Report) ([]string, error) {
	slots := g.Rules.Slots
	from, until := r.DateRange.Start, r.DateRange.End
	var addrs []netip.Addr
	for _, p := range r.Policies {
		for _, f := range p.FailureDetails {
			if a, err := netip.ParseAddr(f.SendingMTAIP); err == nil && !slices.Contains(addrs, a.Unmap()) {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	var fromAddrs []string // the tests with connections from addrs, read once
	clientsTests := func() ([]string, error) {
		if fromAddrs != nil || len(addrs) == 0 {
			return fromAddrs, nil
		}
		ids, err := g.Store.TestsOfClients(ctx, addrs, from, until)
		if err != nil {
			return nil, fmt.Errorf("evidence: TLS-RPT report %q: %w", r.ReportID, err)
		}
		fromAddrs = append([]string{}, ids...)
		return fromAddrs, nil
	}
	var out []string
	for _, p := range r.Policies {
		domain := dnsname.Canonical(p.Policy.Domain)
		var candidates []string
		switch n, _, isSlot := slots.Parse(domain); {
		case isSlot:
			holders, err := g.Store.SlotTests(ctx, n, from, until)
			if err != nil {
				return nil, fmt.Errorf("evidence: TLS-RPT report %q: %w", r.ReportID, err)
			}
			candidates = holders
			if len(holders) > 1 {
				ids, err := clientsTests()
				if err != nil {
					return nil, err
				}
				candidates = slices.DeleteFunc(holders, func(id string) bool { return !slices.Contains(ids, id) })
			}
		case domain == slots.Domain(0, persona.ZoneA) || domain == slots.Domain(0, persona.ZoneB):
			ids, err := clientsTests()
			if err != nil {
				return nil, err
			}
			candidates = ids
		}
		if len(candidates) == 1 && !slices.Contains(out, candidates[0]) {
			out = append(out, candidates[0])
		}
	}
	return out, nil
}

// TLSRPTReports returns the reports tied to t as observations, oldest
// first, at most DefaultTLSRPTLimit: each with its policies for t's
// domains (its slot's and the shared zone A and B), the others left out.
func (g Gatherer) TLSRPTReports(ctx context.Context, t store.Test) ([]verdict.TLSRPTReport, error) {
	rows, err := g.Store.TLSRPTReportsOf(ctx, t.ID, DefaultTLSRPTLimit)
	if err != nil {
		return nil, fmt.Errorf("evidence: TLS-RPT reports of %s: %w", t.ID, err)
	}
	slots := g.Rules.Slots
	zoneOf := map[string]bool{ // domain → zone B
		slots.Domain(0, persona.ZoneA): false,
		slots.Domain(0, persona.ZoneB): true,
	}
	if g.slotHeld(t) {
		zoneOf[slots.Domain(t.Slot, persona.ZoneA)] = false
		zoneOf[slots.Domain(t.Slot, persona.ZoneB)] = true
	}
	var out []verdict.TLSRPTReport
	for _, row := range rows {
		r, err := tlsrpt.ParseReport(row.Report)
		if err != nil {
			// Stored only once parsed: a report that no longer parses
			// is damage to the store, not the sender's.
			return nil, fmt.Errorf("evidence: stored TLS-RPT report %d: %w", row.ID, err)
		}
		// The report's texts are the reporter's: bounded and printable
		// before the verdict quotes them.
		obs := verdict.TLSRPTReport{ID: row.ID, Source: row.Source, Received: row.Received, Organization: untrusted.Printable(r.OrganizationName, maxReportText),
			ReportID: untrusted.Printable(r.ReportID, maxReportText), Start: r.DateRange.Start, End: r.DateRange.End, Policies: []verdict.TLSRPTPolicy{}}
		for _, p := range r.Policies {
			domain := dnsname.Canonical(p.Policy.Domain)
			zoneB, ours := zoneOf[domain]
			if !ours {
				continue
			}
			vp := verdict.TLSRPTPolicy{Type: p.Policy.Type, Domain: domain, ZoneB: zoneB,
				Successful: p.Summary.Successful, Failed: p.Summary.Failed, Failures: []verdict.TLSRPTFailure{}}
			for _, f := range p.FailureDetails {
				a, _ := netip.ParseAddr(f.SendingMTAIP)
				vp.Failures = append(vp.Failures, verdict.TLSRPTFailure{ResultType: untrusted.Printable(f.ResultType, maxReportText),
					Sessions: f.FailedSessionCount, SendingMTA: a.Unmap(), ReceivingMX: untrusted.Printable(f.ReceivingMXHostname, maxReportText),
					ReceivingIP: untrusted.Printable(f.ReceivingIP, maxReportText)})
			}
			obs.Policies = append(obs.Policies, vp)
		}
		out = append(out, obs)
	}
	return out, nil
}
