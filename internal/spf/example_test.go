package spf_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/mailsec/mailsec/internal/spf"
)

func ExampleParse() {
	r, err := spf.Parse("v=spf1 ip4:192.0.2.0/24 mx include:_spf.example.net ~all")
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, m := range r.Mechanisms {
		fmt.Printf("%-8s %-8s queries DNS: %v\n", m.Kind, m.Qualifier, m.Kind.QueriesDNS())
	}
	// Output:
	// ip4      pass     queries DNS: false
	// mx       pass     queries DNS: true
	// include  pass     queries DNS: true
	// all      softfail queries DNS: false
}

// Lookup walks the include and redirect targets with the TXT look-up it is
// given, here a fixed table of records (in mailsec the resolver's), and
// counts the DNS-querying terms against the limit of 10 (RFC 7208 §4.6.4).
// The tree below needs 12: example.org's mx and two includes (3),
// _spf.example.net's a, mx and include (3) with _spf2's exists (1), and
// mail.example.com's redirect (1) back to _spf.example.net, whose four
// terms count again (4), though its record is fetched only once.
func ExampleLookup() {
	errNXDomain := errors.New("NXDOMAIN")
	records := map[string][]string{
		"example.org":       {"v=spf1 mx include:_spf.example.net include:mail.example.com -all"},
		"_spf.example.net":  {"v=spf1 a mx ip4:198.51.100.0/24 include:_spf2.example.net ~all"},
		"_spf2.example.net": {"v=spf1 exists:%{i}.allow.example.net ~all"},
		"mail.example.com":  {"v=spf1 redirect=_spf.example.net"},
	}
	lookupTXT := func(_ context.Context, name string) ([]string, error) {
		txt, ok := records[name]
		if !ok {
			return nil, errNXDomain
		}
		return txt, nil
	}
	res, err := spf.Lookup(context.Background(), lookupTXT, "example.org", spf.Options{
		NotFound: func(err error) bool { return errors.Is(err, errNXDomain) },
	})
	fmt.Println("look-ups:", res.Lookups, "of", spf.MaxLookups)
	fmt.Println("TXT queries:", res.Queries)
	fmt.Println("error:", err)
	// Output:
	// look-ups: 12 of 10
	// TXT queries: 4
	// error: spf: too many DNS-querying terms: 12, limit 10 (RFC 7208 §4.6.4: permerror)
}
