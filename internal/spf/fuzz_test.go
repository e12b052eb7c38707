package spf

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse: Parse never panics; a parsed record formats (Record.String)
// to a text that parses to the same record, and the formatted text is
// stable; errors wrap ErrNotSPF or ErrSyntax.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"v=spf1",
		"v=spf1 -all",
		"v=spf1 +a mx ~ptr ?exists:%{i}.bl.example.org include:_spf.example.net -all",
		"v=spf1 a/24 mx//64 a:mail.example.org/24//64 mx:example.org. ptr:example.org",
		"v=spf1 ip4:192.0.2.0/24 ip4:192.0.2.1 -ip6:2001:db8::/32 ip6:::ffff:1.2.3.4",
		"V=SPF1  redirect=_spf.example.org   MX   exp=explain._spf.%{d} moo=%{c}x%%y.z foo=",
		"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d2} include:%{D}%%%_%- a:x.%{o}/0",
		"v=spf1 a:x=y.example include:a/b.1-2 mx:c.d/8 a:x.y//0",
		"v=spf1 redirect=a.example redirect=b.example",
		"v=spf1 ip4:192.0.2.1/33 a/024 %{",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if r != nil {
				t.Fatalf("record with error %v", err)
			}
			if !errors.Is(err, ErrNotSPF) && !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		text := r.String()
		again, err := Parse(text)
		if err != nil {
			t.Fatalf("formatted record %q (from %q) does not parse: %v", text, s, err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed the record: %q → %q", s, text)
		}
		if again.String() != text {
			t.Fatalf("String not stable: %q → %q", text, again.String())
		}
	})
}

// FuzzLookup: for any record text at the top and at one include target,
// Lookup never panics, always returns a Result, and its error agrees with
// Result.Errors.
func FuzzLookup(f *testing.F) {
	f.Add("v=spf1 include:b.example redirect=a.example", "v=spf1 include:a.example mx a ptr exists:x.example -all")
	f.Add("v=spf1 include:b.example include:b.example include:b.example", "v=spf1 include:c.example")
	f.Add("v=spf1 include:%{d}.b.example -all", "")
	f.Fuzz(func(t *testing.T, top, inc string) {
		z := newZone(map[string][]string{"a.example": {top}, "b.example": {inc}})
		res, err := Lookup(context.Background(), z.lookup, "a.example", testOpts)
		if res == nil {
			t.Fatal("no Result")
		}
		if res.Record != nil && (err == nil) != (len(res.Errors) == 0) {
			t.Fatalf("error %v but Errors %v", err, res.Errors)
		}
		// Queries: the top record plus each include/redirect target
		// followed once, whether it exists or not (the fuzzer found a
		// record with includes of two absent names: 4 queries, 2 void);
		// at most MaxRecords (40 by default) targets are followed.
		if res.Queries > 1+40 || res.Lookups < 0 || res.VoidLookups > res.Lookups {
			t.Fatalf("odd counts %+v", res)
		}
		if err != nil && strings.TrimSpace(err.Error()) == "" {
			t.Fatal("empty error text")
		}
	})
}
