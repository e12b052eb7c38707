package mtasts

import (
	"reflect"
	"testing"
)

// FuzzParsePolicy: ParsePolicy never panics, and a parsed policy formats
// (Policy.String, what the policy host serves) to a text that parses to
// the same policy.
func FuzzParsePolicy(f *testing.F) {
	for _, s := range []string{
		testPolicy,
		"version: STSv1\nmode: none\nmax_age: 0",
		"version: STSv1\r\nmode: testing\r\nmx: *.example.net\r\nmx: A.example.\r\nmax_age: 31557600\r\nx: y\r\n",
		"version: STSv1\nmode: enforce\nmode: none\nmx: a\nmax_age: 1\nmax_age: x\n\n",
		"version: STSv1\nmode: enforce\nmx: a..b\nmax_age: 1",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePolicy(s)
		if err != nil {
			return
		}
		again, err := ParsePolicy(p.String())
		if err != nil {
			t.Fatalf("formatted policy %q does not parse: %v", p.String(), err)
		}
		if !reflect.DeepEqual(again, p) {
			t.Fatalf("round trip changed the policy: %+v → %+v", p, again)
		}
		for _, mx := range p.MX {
			if !p.Matches(mx) && mx[0] != '*' {
				t.Fatalf("policy does not match its own mx %q", mx)
			}
		}
	})
}

// FuzzParseRecord: ParseRecord and PickRecord never panic, and a parsed
// record formats to a text that parses to the same record.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=STSv1; id=20160831085700Z;",
		"v=STSv1;id=a;x=y;",
		"v=STSv1 ; id=a ; ext.x-y_z=!\"#$%&'()*+,-./0123456789:<>?@",
		"v=STSv1; id=1; id=2",
		"v=STSv1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = PickRecord([]string{s, "v=spf1 -all"})
		r, err := ParseRecord(s)
		if err != nil {
			return
		}
		again, err := ParseRecord(r.String())
		if err != nil {
			t.Fatalf("formatted record %q does not parse: %v", r.String(), err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed the record: %+v → %+v", r, again)
		}
	})
}
