package mtasts

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseRecord(t *testing.T) {
	tests := []struct {
		in   string
		want Record
		err  error
	}{
		{in: "v=STSv1; id=20160831085700Z", want: Record{ID: "20160831085700Z"}},
		{in: "v=STSv1;id=abc;", want: Record{ID: "abc"}},
		{in: "v=STSv1 ;\tid=abc ; ", want: Record{ID: "abc"}},
		{in: "v=STSv1; id=" + strings.Repeat("a", 32), want: Record{ID: strings.Repeat("a", 32)}},
		{in: "v=STSv1; x-ext=a:b/c; id=1; y.z=%41", want: Record{ID: "1", Extensions: []Extension{{Name: "x-ext", Value: "a:b/c"}, {Name: "y.z", Value: "%41"}}}},
		{in: "v=STSv1; id=first; id=second", want: Record{ID: "first"}},
		{in: "v=STSv1; ID=x; id=y", want: Record{ID: "y", Extensions: []Extension{{Name: "ID", Value: "x"}}}},

		{in: "", err: ErrRecordSyntax},
		{in: "v=STSv1", err: ErrRecordSyntax},
		{in: "v=STSv1;", err: ErrRecordSyntax},
		{in: "v=STSv1; ", err: ErrRecordSyntax},
		{in: "v=STSv2; id=1", err: ErrRecordSyntax},
		{in: "V=STSv1; id=1", err: ErrRecordSyntax},
		{in: " v=STSv1; id=1", err: ErrRecordSyntax},
		{in: "v=STSv1 id=1", err: ErrRecordSyntax},
		{in: "v=STSv1; id=" + strings.Repeat("a", 33), err: ErrRecordSyntax},
		{in: "v=STSv1; id=a-b", err: ErrRecordSyntax},
		{in: "v=STSv1; id=", err: ErrRecordSyntax},
		{in: "v=STSv1; ext=1", err: ErrRecordSyntax},      // no id
		{in: "v=STSv1; id=1; =x", err: ErrRecordSyntax},   // empty name
		{in: "v=STSv1; id=1; _x=1", err: ErrRecordSyntax}, // name must start with a letter or digit
		{in: "v=STSv1; id=1; x=a=b", err: ErrRecordSyntax},
		{in: "v=STSv1; id=1; x=a b", err: ErrRecordSyntax},
		{in: "v=STSv1; id=1;; id=2", err: ErrRecordSyntax},
		{in: "v=STSv1; id=1\x00", err: ErrRecordSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRecord(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParseRecord = %+v, %v; want %v", got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseRecord = %+v, %v; want %+v", got, err, tc.want)
			}
			again, err := ParseRecord(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestPickRecord(t *testing.T) {
	tests := []struct {
		name string
		txts []string
		id   string
		err  error
	}{
		{"one", []string{"v=STSv1; id=a"}, "a", nil},
		{"others discarded", []string{"v=spf1 -all", "v=STSv1; id=a", "hello"}, "a", nil},
		{"none", nil, "", ErrNoRecord},
		{"only others", []string{"v=spf1 -all", "v=STSv10; id=1"}, "", ErrNoRecord},
		{"two", []string{"v=STSv1; id=a", "v=STSv1; id=b"}, "", ErrMultipleRecords},
		{"two, one malformed", []string{"v=STSv1; id=a", "v=STSv1; id=!"}, "", ErrMultipleRecords},
		{"malformed", []string{"v=STSv1; id=a-b"}, "", ErrRecordSyntax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := PickRecord(tc.txts)
			if !errors.Is(err, tc.err) || tc.err == nil && r.ID != tc.id {
				t.Fatalf("PickRecord = %+v, %v; want id %q, err %v", r, err, tc.id, tc.err)
			}
		})
	}
}

func TestParsePolicy(t *testing.T) {
	good := func(mode Mode, maxAge int, mx ...string) Policy {
		return Policy{Mode: mode, MX: mx, MaxAge: time.Duration(maxAge) * time.Second}
	}
	tests := []struct {
		name string
		in   string
		want Policy
		err  error
	}{
		{"rfc example", "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n",
			good(ModeEnforce, 604800, "mail.example.com", "*.example.net", "backupmx.example.com"), nil},
		{"LF, no final newline", "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 0",
			good(ModeTesting, 0, "a.example"), nil},
		{"white space, case, trailing dot", "version:STSv1  \nmode:\tenforce\t\nmx:   MX.Example.ORG.  \nmax_age: 86400 \n\n",
			good(ModeEnforce, 86400, "mx.example.org"), nil},
		{"none without mx", "version: STSv1\nmode: none\nmax_age: 1\n", good(ModeNone, 1), nil},
		{"unknown keys ignored", "version: STSv1\nmode: enforce\nx-vendor: some thing!\nmx: a.example\nmax_age: 5\n",
			good(ModeEnforce, 5, "a.example"), nil},
		{"first of duplicates counts", "version: STSv1\nmode: testing\nmode: enforce\nmax_age: 5\nmax_age: bogus\nmx: a.example\n",
			good(ModeTesting, 5, "a.example"), nil},
		{"max max_age", "version: STSv1\nmode: none\nmax_age: 31557600\n", good(ModeNone, 31557600), nil},
		{"blank lines", "version: STSv1\r\n\r\nmode: none\r\n \r\nmax_age: 1\r\n", good(ModeNone, 1), nil},

		{"empty", "", Policy{}, ErrPolicySyntax},
		{"version not first", "mode: enforce\nversion: STSv1\nmx: a.example\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"leading blank line", "\nversion: STSv1\nmode: none\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"wrong version", "version: STSv2\nmode: none\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"bad mode", "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"no mode", "version: STSv1\nmx: a.example\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"no max_age", "version: STSv1\nmode: enforce\nmx: a.example\n", Policy{}, ErrPolicySyntax},
		{"max_age too big", "version: STSv1\nmode: none\nmax_age: 31557601\n", Policy{}, ErrPolicySyntax},
		{"max_age 11 digits", "version: STSv1\nmode: none\nmax_age: 00000000001\n", Policy{}, ErrPolicySyntax},
		{"max_age negative", "version: STSv1\nmode: none\nmax_age: -1\n", Policy{}, ErrPolicySyntax},
		{"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"testing without mx", "version: STSv1\nmode: testing\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"bad mx", "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"mx wildcard in the middle", "version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"mx bare wildcard", "version: STSv1\nmode: enforce\nmx: *\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"mx U-label", "version: STSv1\nmode: enforce\nmx: bücher.example\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"line without colon", "version: STSv1\nmode none\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"leading space", "version: STSv1\n mode: none\nmax_age: 5\n", Policy{}, ErrPolicySyntax},
		{"too large", "version: STSv1\nmode: none\nmax_age: 5\n" + strings.Repeat("x: y\n", MaxPolicySize/5), Policy{}, ErrPolicyTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePolicy(tc.in)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("ParsePolicy = %+v, %v; want %v", got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParsePolicy = %+v, %v; want %+v", got, err, tc.want)
			}
			again, err := ParsePolicy(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip %q: %+v, %v", got.String(), again, err)
			}
		})
	}
}

// TestZonePolicyParses: the policy zone A serves (Policy.String) is
// accepted by our own parser, and its record by ParseRecord.
func TestZonePolicyParses(t *testing.T) {
	p := Policy{Mode: ModeEnforce, MX: []string{"mx4.a.example", "mx5.a.example", "mx6.a.example"}, MaxAge: 7 * 24 * time.Hour}
	got, err := ParsePolicy(p.String())
	if err != nil || !reflect.DeepEqual(got, p) {
		t.Fatalf("ParsePolicy(String()) = %+v, %v", got, err)
	}
	r, err := ParseRecord(p.Record())
	if err != nil || r.ID != p.ID() {
		t.Fatalf("ParseRecord(Record()) = %+v, %v; want id %s", r, err, p.ID())
	}
}

func TestMatches(t *testing.T) {
	p := Policy{Mode: ModeEnforce, MX: []string{"mail.example.com", "*.example.net", "Upper.Example.ORG."}}
	tests := []struct {
		host string
		want bool
	}{
		{"mail.example.com", true},
		{"MAIL.Example.Com.", true},
		{"upper.example.org", true},
		{"mx1.example.net", true},
		{"MX1.EXAMPLE.NET.", true},
		{"example.net", false},       // the wildcard needs one label
		{"a.b.example.net", false},   // and only one
		{".example.net", false},      // an empty label is no label
		{"xmail.example.com", false}, // no suffix matching of exact names
		{"example.com", false},
		{"", false},
		{".", false},
	}
	for _, tc := range tests {
		if got := p.Matches(tc.host); got != tc.want {
			t.Errorf("Matches(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	if (Policy{Mode: ModeNone}).Matches("a.example") {
		t.Error("a policy without mx patterns matches nothing")
	}
}
