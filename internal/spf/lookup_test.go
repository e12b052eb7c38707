package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
)

var (
	errNX   = errors.New("test: NXDOMAIN")
	errServ = errors.New("test: SERVFAIL")
)

// zone is a fake TXT lookup for unit tests of this package: names map to
// records; names absent are NXDOMAIN; the value "SERVFAIL" fails. It
// counts queries per name.
type zone struct {
	txt     map[string][]string
	queries map[string]int
}

func newZone(txt map[string][]string) *zone { return &zone{txt: txt, queries: map[string]int{}} }

func (z *zone) lookup(ctx context.Context, name string) ([]string, error) {
	z.queries[name]++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v, ok := z.txt[name]
	switch {
	case !ok:
		return nil, errNX
	case len(v) == 1 && v[0] == "SERVFAIL":
		return nil, errServ
	}
	return v, nil
}

var testOpts = Options{NotFound: func(err error) bool { return errors.Is(err, errNX) }}

func lookup(t *testing.T, z *zone, domain string, opts Options) (*Result, error) {
	t.Helper()
	res, err := Lookup(context.Background(), z.lookup, domain, opts)
	if res == nil {
		t.Fatalf("Lookup(%s) returned no Result (err %v)", domain, err)
	}
	for name, n := range z.queries {
		if n > 1 {
			t.Fatalf("%s queried %d times", name, n)
		}
	}
	return res, err
}

func TestLookupCounts(t *testing.T) {
	z := newZone(map[string][]string{
		"example.org": {"v=DMARC1; p=none", "v=spf1 a mx include:_spf.example.org include:_spf.example.org ip4:192.0.2.0/24 redirect=r.example.org"},
		// Included twice: counted twice, queried once.
		"_spf.example.org": {"v=spf1 exists:%{i}.e.example.net ptr include:%{d}.m.example.net ~all"},
		"r.example.org":    {"v=spf1 mx:mail.example.org -all include:never.example.org"},
	})
	res, err := lookup(t, z, "Example.ORG.", testOpts)
	if !errors.Is(err, ErrTooManyLookups) || len(res.Errors) != 1 {
		t.Fatalf("error %v, want only ErrTooManyLookups", err)
	}
	// top: a mx include include redirect = 5; each _spf: exists ptr include = 3, twice = 6;
	// r: mx = 1 (terms after -all are never evaluated).
	if res.Lookups != 12 || res.VoidLookups != 0 || res.Queries != 3 || res.Truncated {
		t.Fatalf("result %+v", res)
	}
	if res.Domain != "example.org" || !strings.HasPrefix(res.Text, "v=spf1 a mx") || res.Record == nil {
		t.Fatalf("result %+v", res)
	}
	if len(res.Unexpanded) != 2 || !strings.Contains(res.Unexpanded[0], "%{d}.m.example.net") {
		t.Fatalf("unexpanded %q", res.Unexpanded)
	}
	if !hasNote(res, "ptr should not be used") || !hasNote(res, "never evaluated") {
		t.Fatalf("notes %q", res.Notes)
	}
}

func TestLookupLimits(t *testing.T) {
	// n includes in a chain plus their own a terms.
	chain := func(n int) map[string][]string {
		m := map[string][]string{}
		for i := 0; i < n; i++ {
			m[fmt.Sprintf("d%d.example", i)] = []string{fmt.Sprintf("v=spf1 include:d%d.example", i+1)}
		}
		m[fmt.Sprintf("d%d.example", n)] = []string{"v=spf1 -all"}
		return m
	}
	for _, tc := range []struct {
		name        string
		txt         map[string][]string
		opts        Options
		lookups     int
		void        int
		errs        []error
		notErrs     []error
		truncated   bool
		errContains string
	}{
		{name: "ten is fine", txt: chain(10), lookups: 10, notErrs: []error{ErrTooManyLookups}},
		{name: "eleven is too many", txt: chain(11), lookups: 11, errs: []error{ErrTooManyLookups}, errContains: "11, limit 10"},
		{
			name:    "flat eleven",
			txt:     map[string][]string{"d0.example": {"v=spf1 a a a a a mx mx mx exists:x.example ptr ptr -all"}},
			lookups: 11, errs: []error{ErrTooManyLookups},
		},
		{
			name:    "redirect ignored with all",
			txt:     map[string][]string{"d0.example": {"v=spf1 a a a a a mx mx mx exists:x.example ptr ?all redirect=x.example"}},
			lookups: 10,
		},
		{
			name: "void lookups",
			txt: map[string][]string{
				"d0.example":    {"v=spf1 include:nx1.example include:nx2.example include:empty.example include:other.example -all"},
				"empty.example": {},
				"other.example": {"hello"},
			},
			lookups: 4, void: 3,
			errs:        []error{ErrTooManyVoidLookups, ErrNoRecord},
			errContains: "void DNS lookups: 3, limit 2",
		},
		{
			name: "two voids are fine",
			txt: map[string][]string{
				"d0.example": {"v=spf1 include:nx1.example redirect=nx2.example"},
			},
			lookups: 2, void: 2, errs: []error{ErrNoRecord}, notErrs: []error{ErrTooManyVoidLookups},
		},
		{
			name: "loop",
			txt: map[string][]string{
				"d0.example": {"v=spf1 include:d1.example -all"},
				"d1.example": {"v=spf1 redirect=D0.example."},
			},
			lookups: 2, errs: []error{ErrLoop}, errContains: "d0.example → d1.example",
		},
		{
			name:    "self include",
			txt:     map[string][]string{"d0.example": {"v=spf1 include:d0.example -all"}},
			lookups: 1, errs: []error{ErrLoop},
		},
		{
			name: "broken included records",
			txt: map[string][]string{
				"d0.example":   {"v=spf1 include:bad.example include:two.example include:fail.example include:b.example"},
				"bad.example":  {"v=spf1 ip4:300.1.1.1"},
				"two.example":  {"v=spf1 -all", "v=spf1 +all"},
				"fail.example": {"SERVFAIL"},
				"b.example":    {"v=spf1 include:x..example"},
			},
			lookups: 5, errs: []error{ErrSyntax, ErrMultipleRecords, ErrDNS, errServ, ErrInvalidDomain},
			errContains: `"include:bad.example" in d0.example`,
		},
		{
			name: "depth bound",
			txt:  chain(20), opts: Options{MaxDepth: 3},
			lookups: 4, truncated: true, errs: []error{ErrBound},
		},
		{
			name: "record bound",
			txt: map[string][]string{
				"d0.example": {"v=spf1 " + strings.Repeat("include:x.example ", 5) + "-all"},
				"x.example":  {"v=spf1 a -all"},
			},
			opts:    Options{MaxRecords: 2},
			lookups: 7, truncated: true, errs: []error{ErrBound},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.NotFound = testOpts.NotFound
			res, err := lookup(t, newZone(tc.txt), "d0.example", opts)
			if res.Lookups != tc.lookups || res.VoidLookups != tc.void || res.Truncated != tc.truncated {
				t.Fatalf("lookups %d void %d truncated %v, want %d %d %v; errors %v",
					res.Lookups, res.VoidLookups, res.Truncated, tc.lookups, tc.void, tc.truncated, res.Errors)
			}
			if (err == nil) != (len(res.Errors) == 0) {
				t.Fatalf("error %v with Errors %v", err, res.Errors)
			}
			for _, want := range tc.errs {
				if !errors.Is(err, want) {
					t.Errorf("error %v is not %v", err, want)
				}
			}
			for _, want := range tc.notErrs {
				if errors.Is(err, want) {
					t.Errorf("error %v is %v", err, want)
				}
			}
			if tc.errs == nil && err != nil {
				t.Errorf("unexpected error %v", err)
			}
			if err != nil && !strings.Contains(err.Error(), tc.errContains) {
				t.Errorf("error %q does not say %q", err, tc.errContains)
			}
		})
	}
}

func TestLookupTopLevel(t *testing.T) {
	z := newZone(map[string][]string{
		"none.example":  {"v=DMARC1; p=none"},
		"empty.example": {},
		"two.example":   {"v=spf1 -all", "v=spf1 ~all"},
		"bad.example":   {"v=spf1 include"},
		"fail.example":  {"SERVFAIL"},
	})
	for _, tc := range []struct {
		domain string
		err    error
	}{
		{"none.example", ErrNoRecord},
		{"empty.example", ErrNoRecord},
		{"nx.example", ErrNoRecord},
		{"two.example", ErrMultipleRecords},
		{"bad.example", ErrSyntax},
		{"fail.example", ErrDNS},
		{"fail.example", errServ},
		{"", ErrInvalidDomain},
		{"a..example", ErrInvalidDomain},
		{strings.Repeat("a", 64) + ".example", ErrInvalidDomain},
		{strings.Repeat("abcdefghi.", 26) + "example", ErrInvalidDomain},
		{"bücher.example", ErrInvalidDomain},
	} {
		res, err := Lookup(context.Background(), z.lookup, tc.domain, testOpts)
		if !errors.Is(err, tc.err) || res == nil || res.Record != nil {
			t.Errorf("%q: %+v, %v; want %v", tc.domain, res, err, tc.err)
		}
	}
}

func TestLookupDefaultNotFound(t *testing.T) {
	nx := func(ctx context.Context, name string) ([]string, error) {
		if name == "d.example" {
			return []string{"v=spf1 include:gone.example -all"}, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	res, err := Lookup(context.Background(), nx, "d.example", Options{})
	if !errors.Is(err, ErrNoRecord) || res.VoidLookups != 1 {
		t.Fatalf("%+v %v", res, err)
	}
}

func TestLookupCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	f := func(ctx context.Context, name string) ([]string, error) {
		calls++
		cancel()
		return []string{"v=spf1 include:a.example include:b.example -all"}, nil
	}
	res, err := Lookup(ctx, f, "d.example", Options{})
	if !errors.Is(err, ErrDNS) || !errors.Is(err, context.Canceled) || !res.Truncated || calls != 1 {
		t.Fatalf("%+v %v (calls %d)", res, err, calls)
	}
}

func hasNote(res *Result, s string) bool {
	for _, n := range res.Notes {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}
