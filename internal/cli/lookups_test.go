package cli

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// TestTestShowLookups: `mailsec test show` lists the look-ups of the
// test slot's names (JSON key dns_lookups; a line each in text), not
// another slot's.
func TestTestShowLookups(t *testing.T) {
	cfg, st := configAndStore(t, "")
	ctx := t.Context()
	now := time.Now().UTC()
	tt := store.Test{ID: "slotted", Created: now.Add(-time.Minute), Updated: now, Kind: store.TestToken, State: store.TestOpen, Slot: 4}
	if err := st.CreateTest(ctx, tt); err != nil {
		t.Fatal(err)
	}
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
