package report

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// TestLookups: the report lists a slot test's DNS look-ups, a TLSA name as
// its host, with the DNSSEC question and the answer, in the JSON model,
// the text and the HTML; a test without look-ups has an empty list and no
// section.
func TestLookups(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 1, 0, time.UTC)
	in := Input{Test: store.Test{ID: "t1", Created: at}, Now: at, Location: time.UTC,
		DNSLookups: []store.DNSQuery{
			{Time: at, Client: netip.MustParseAddrPort("198.51.100.53:5353"), Name: "_25._tcp.mx4.s001.a.example.", Type: 52, DO: true},
			{Time: at.Add(time.Second), Client: netip.MustParseAddrPort("198.51.100.53:5353"), Name: "_25._tcp.mx7.s001.b.example.", Type: 52, Rcode: 3, Count: 2},
		},
		PolicyFetches: []store.PolicyFetch{{Time: at, Client: netip.MustParseAddrPort("203.0.113.9:443"), SNI: "mta-sts.s001.a.example", Status: 200}}}
	r := Build(in)
	if len(r.DNSLookups) != 2 {
		t.Fatalf("look-ups %+v", r.DNSLookups)
	}
	want := "01.12.2026 12:00:01 your resolver 198.51.100.53 looked up TLSA for mx4.s001.a.example (port 25), asking for DNSSEC (NOERROR)"
	if r.DNSLookups[0].Text != want || !r.DNSLookups[0].DNSSEC || r.DNSLookups[0].Type != "TLSA" {
		t.Errorf("line %+v, want %q", r.DNSLookups[0], want)
	}
	if l := r.DNSLookups[1]; l.Answer != "NXDOMAIN" || l.Count != 2 || !strings.Contains(l.Text, "without asking for DNSSEC (NXDOMAIN, 2 times)") {
		t.Errorf("line %+v", l)
	}
	if len(r.PolicyFetches) != 1 || r.PolicyFetches[0].Text != "01.12.2026 12:00:01 203.0.113.9 fetched the MTA-STS policy of mta-sts.s001.a.example" {
		t.Errorf("fetches %+v", r.PolicyFetches)
	}
	text, err := Text(r)
	if err != nil || !strings.Contains(text, want) || !strings.Contains(text, "fetched the MTA-STS policy of mta-sts.s001") {
		t.Errorf("text lacks the look-up (%v):\n%s", err, text)
	}
	html, err := HTML(r)
	if err != nil || !strings.Contains(html, `id="lookups"`) {
		t.Errorf("HTML lacks the look-ups (%v)", err)
	}

	empty := Build(Input{Test: store.Test{ID: "t2", Created: at}, Now: at, Location: time.UTC})
	if empty.DNSLookups == nil || len(empty.DNSLookups) != 0 || empty.PolicyFetches == nil {
		t.Errorf("no look-ups: %#v, want an empty list", empty.DNSLookups)
	}
	if html, _ := HTML(empty); strings.Contains(html, `id="lookups"`) {
		t.Error("an empty look-up section is shown")
	}
}
