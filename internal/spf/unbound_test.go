package spf_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/spf"
)

// TestLookupThroughUnbound runs Lookup through a real Unbound (local-data
// answers: NXDOMAIN for absent names in a static zone, NODATA for names
// without TXT) and internal/resolver's LookupTXT, as the inbound check
// wires it: strings of one TXT RR are joined (RFC 7208 §3.3), NXDOMAIN
// is recognised as a void lookup, and a long record split over several
// strings parses.
func TestLookupThroughUnbound(t *testing.T) {
	// 40 ip4 terms make a record of about 900 octets: four strings.
	var ips []string
	for i := 0; i < 40; i++ {
		ips = append(ips, fmt.Sprintf("ip4:192.0.2.%d", i))
	}
	long := "v=spf1 " + strings.Join(ips, " ") + " include:nx.spf.test include:nodata.spf.test include:mx.spf.test -all"
	var extra strings.Builder
	extra.WriteString("  local-zone: \"spf.test.\" static\n")
	extra.WriteString("  local-data: \"nodata.spf.test. A 192.0.2.1\"\n")
	extra.WriteString("  local-data: 'mx.spf.test. TXT \"v=spf1 mx a\" \":mail.spf.test ~all\"'\n")
	fmt.Fprintf(&extra, "  local-data: 'top.spf.test. TXT %s'\n", quoteStrings(long, 250))
	u := peertest.StartUnbound(t, peertest.UnboundOptions{Extra: extra.String()})
	res, err := resolver.New(u.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := spf.Lookup(ctx, res.LookupTXT, "top.spf.test", spf.Options{
		NotFound: func(err error) bool { return errors.Is(err, resolver.ErrNXDomain) },
	})
	if r == nil || r.Text != long {
		t.Fatalf("record not joined: %+v, %v", r, err)
	}
	// include ×3, then mx and a:mail in mx.spf.test.
	if r.Lookups != 5 || r.VoidLookups != 2 || r.Queries != 4 {
		t.Fatalf("lookups %d void %d queries %d; errors %v", r.Lookups, r.VoidLookups, r.Queries, r.Errors)
	}
	if !errors.Is(err, spf.ErrNoRecord) || errors.Is(err, spf.ErrTooManyVoidLookups) || len(r.Errors) != 2 {
		t.Fatalf("errors %v", r.Errors)
	}
	if len(r.Notes) == 0 || !strings.Contains(r.Notes[0], "450") {
		t.Fatalf("no note on the record size: %q", r.Notes)
	}
	if _, err := spf.Lookup(ctx, res.LookupTXT, "absent.spf.test", spf.Options{
		NotFound: func(err error) bool { return errors.Is(err, resolver.ErrNXDomain) },
	}); !errors.Is(err, spf.ErrNoRecord) {
		t.Fatalf("absent domain: %v", err)
	}
}

// quoteStrings splits s into quoted character-strings of at most n octets.
func quoteStrings(s string, n int) string {
	var parts []string
	for len(s) > n {
		parts = append(parts, fmt.Sprintf("%q", s[:n]))
		s = s[n:]
	}
	return strings.Join(append(parts, fmt.Sprintf("%q", s)), " ")
}
