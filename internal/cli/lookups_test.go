package cli

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// TestTestShowLookups: `mailsec test show` lists the look-ups of the
// test slot's names (JSON key dns_lookups; a line each in text), not
// another slot's.
func TestTestShowLookups(t *testing.T) {
	cfg, st, now := slottedTest(t)
	ctx := t.Context()
	resolver := netip.MustParseAddrPort("198.51.100.53:5353")
	if err := st.AddDNSQueries(ctx, []store.DNSQuery{
		{Time: now.Add(-30 * time.Second), Client: resolver, Transport: "udp", Name: "_25._tcp.mx4.s004.a.mailtest.example.", Type: 52, DO: true},
		{Time: now.Add(-29 * time.Second), Client: resolver, Transport: "udp", Name: "s005.a.mailtest.example.", Type: 15, DO: true},
	}); err != nil {
		t.Fatal(err)
	}
	// Its slot's policy fetched from anywhere; another slot's not.
	for _, sni := range []string{"mta-sts.s004.a.mailtest.example", "mta-sts.s005.a.mailtest.example"} {
		if err := st.AddPolicyFetch(ctx, store.PolicyFetch{Time: now.Add(-20 * time.Second), Client: netip.MustParseAddrPort("203.0.113.9:443"),
			SNI: sni, Status: 200, Path: "/.well-known/mta-sts.txt"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	code, out, errOut := run(t, "-config", cfg, "test", "show", "-json", "slotted")
	var v struct {
		DNSLookups    []store.DNSQuery    `json:"dns_lookups"`
		PolicyFetches []store.PolicyFetch `json:"policy_fetches"`
	}
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || len(v.DNSLookups) != 1 || v.DNSLookups[0].Name != "_25._tcp.mx4.s004.a.mailtest.example." ||
		len(v.PolicyFetches) != 1 || v.PolicyFetches[0].SNI != "mta-sts.s004.a.mailtest.example" {
		t.Fatalf("exit %d %v: %+v\n%s\n%s", code, err, v, out, errOut)
	}
	code, out, _ = run(t, "-config", cfg, "test", "show", "slotted")
	if code != exitOK || !strings.Contains(out, "TLSA _25._tcp.mx4.s004.a.mailtest.example., DNSSEC (NOERROR)") || strings.Contains(out, "s005") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// TestTestShowTLSRPT: `mailsec test show` lists the TLS-RPT reports tied
// to the test (JSON key tlsrpt_reports; lines in text), not another's.
func TestTestShowTLSRPT(t *testing.T) {
	cfg, st, now := slottedTest(t)
	ctx := t.Context()
	report := func(id, domain string) []byte {
		return []byte(`{"organization-name": "Reporter", "report-id": "` + id + `", "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
 "policies": [{"policy": {"policy-type": "tlsa", "policy-domain": "` + domain + `"}, "summary": {"total-successful-session-count": 2, "total-failure-session-count": 1},
 "failure-details": [{"result-type": "validation-failure", "sending-mta-ip": "192.0.2.1", "receiving-mx-hostname": "mx3.` + domain + `", "failed-session-count": 1}]}]}`)
	}
	for _, r := range []*store.TLSRPTReport{
		{Received: now, Source: store.TLSRPTByMail, Report: report("mine", "s004.a.mailtest.example"), Key: "1", Tests: []string{"slotted"}},
		{Received: now, Source: store.TLSRPTByMail, Report: report("other", "s005.a.mailtest.example"), Key: "2"},
	} {
		if err := st.AddTLSRPTReport(ctx, r, store.TLSRPTQuota{}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	code, out, errOut := run(t, "-config", cfg, "test", "show", "-json", "slotted")
	var v struct {
		TLSRPTReports []verdict.TLSRPTReport `json:"tlsrpt_reports"`
	}
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || len(v.TLSRPTReports) != 1 || v.TLSRPTReports[0].ReportID != "mine" ||
		len(v.TLSRPTReports[0].Policies) != 1 || v.TLSRPTReports[0].Policies[0].Failures[0].SendingMTA.String() != "192.0.2.1" {
		t.Fatalf("exit %d %v: %+v\n%s\n%s", code, err, v, out, errOut)
	}
	code, out, _ = run(t, "-config", cfg, "test", "show", "slotted")
	if code != exitOK || !strings.Contains(out, "TLS-RPT report by mail") || !strings.Contains(out, "1 validation-failure at mx3.s004.a.mailtest.example from 192.0.2.1") ||
		strings.Contains(out, "other") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

// slottedTest makes a configuration and a store holding an open test
// "slotted" in slot 4, created a minute before the now it returns.
func slottedTest(t *testing.T) (cfg string, st *store.Store, now time.Time) {
	t.Helper()
	cfg, st = configAndStore(t, "")
	now = time.Now().UTC()
	tt := store.Test{ID: "slotted", Created: now.Add(-time.Minute), Updated: now, Kind: store.TestToken, State: store.TestOpen, Slot: 4}
	if err := st.CreateTest(t.Context(), tt); err != nil {
		t.Fatal(err)
	}
	return cfg, st, now
}
