package spf

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func mech(q Qualifier, k Kind, domain string) Mechanism {
	return Mechanism{Qualifier: q, Kind: k, Domain: domain}
}

func cidr(k Kind, domain string, p4, p6 int) Mechanism {
	return Mechanism{Qualifier: Pass, Kind: k, Domain: domain, Prefix4: p4, Prefix6: p6}
}

func ipnet(q Qualifier, k Kind, p string) Mechanism {
	return Mechanism{Qualifier: q, Kind: k, Net: netip.MustParsePrefix(p)}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		txt  string
		want *Record
		// canon is the String form when it differs from txt.
		canon string
	}{
		{txt: "v=spf1", want: &Record{}},
		{txt: "v=spf1 -all", want: &Record{Mechanisms: []Mechanism{mech(Fail, All, "")}}},
		{
			txt: "v=spf1 +a mx ~ptr ?exists:%{i}.bl.example.org include:_spf.example.net -all",
			want: &Record{Mechanisms: []Mechanism{
				cidr(A, "", 32, 128), cidr(MX, "", 32, 128),
				mech(SoftFail, PTR, ""), mech(Neutral, Exists, "%{i}.bl.example.org"),
				mech(Pass, Include, "_spf.example.net"), mech(Fail, All, ""),
			}},
			canon: "v=spf1 a mx ~ptr ?exists:%{i}.bl.example.org include:_spf.example.net -all",
		},
		{
			txt: "v=spf1 a/24 mx//64 a:mail.example.org/24//64 mx:example.org. ptr:example.org",
			want: &Record{Mechanisms: []Mechanism{
				cidr(A, "", 24, 128), cidr(MX, "", 32, 64), cidr(A, "mail.example.org", 24, 64),
				cidr(MX, "example.org.", 32, 128), mech(Pass, PTR, "example.org"),
			}},
		},
		{
			txt: "v=spf1 ip4:192.0.2.0/24 ip4:192.0.2.1 -ip6:2001:db8::/32 ip6:::1 ip4:0.0.0.0/0 ip6:2001:db8::1/128",
			want: &Record{Mechanisms: []Mechanism{
				ipnet(Pass, IP4, "192.0.2.0/24"), ipnet(Pass, IP4, "192.0.2.1/32"),
				ipnet(Fail, IP6, "2001:db8::/32"), ipnet(Pass, IP6, "::1/128"),
				ipnet(Pass, IP4, "0.0.0.0/0"), ipnet(Pass, IP6, "2001:db8::1/128"),
			}},
			canon: "v=spf1 ip4:192.0.2.0/24 ip4:192.0.2.1 -ip6:2001:db8::/32 ip6:::1 ip4:0.0.0.0/0 ip6:2001:db8::1",
		},
		{
			// Upper case names and version, extra spaces, modifiers in the
			// middle (RFC 7208 §6), an unknown modifier with macros.
			txt: "V=SPF1  redirect=_spf.example.org   MX   exp=explain._spf.%{d} moo=%{c}x%%y.z foo.bar-1= ",
			want: &Record{
				Mechanisms: []Mechanism{cidr(MX, "", 32, 128)},
				Redirect:   "_spf.example.org",
				Exp:        "explain._spf.%{d}",
				Modifiers:  []Modifier{{"moo", "%{c}x%%y.z"}, {"foo.bar-1", ""}},
			},
			canon: "v=spf1 mx redirect=_spf.example.org exp=explain._spf.%{d} moo=%{c}x%%y.z foo.bar-1=",
		},
		{
			// Macros of §7.1: transformers, delimiters, escapes, upper case.
			txt: "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d2} include:%{D}%%%_%- a:x.%{o}/0 exists:%{s128r.-+,/_=}.example",
			want: &Record{Mechanisms: []Mechanism{
				mech(Pass, Exists, "%{ir}.%{l1r+-}._spf.%{d2}"), mech(Pass, Include, "%{D}%%%_%-"),
				cidr(A, "x.%{o}", 0, 128), mech(Pass, Exists, "%{s128r.-+,/_=}.example"),
			}},
		},
		{
			// A domain-spec may contain '=' and '/'; top labels with a
			// hyphen may be all digits.
			txt:  "v=spf1 a:x=y.example include:a/b.1-2 mx:c.d/8",
			want: &Record{Mechanisms: []Mechanism{cidr(A, "x=y.example", 32, 128), mech(Pass, Include, "a/b.1-2"), cidr(MX, "c.d", 8, 128)}},
		},
	} {
		t.Run(tc.txt, func(t *testing.T) {
			r, err := Parse(tc.txt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, tc.want) {
				t.Fatalf("got  %#v\nwant %#v", r, tc.want)
			}
			canon := tc.canon
			if canon == "" {
				canon = tc.txt
			}
			if r.String() != canon {
				t.Fatalf("String() = %q, want %q", r.String(), canon)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		txt    string
		err    error
		substr string // in the message: the term or the reason
	}{
		{"", ErrNotSPF, ""},
		{"v=spf10 -all", ErrNotSPF, ""},
		{"v=spf2.0/pra -all", ErrNotSPF, ""},
		{" v=spf1 -all", ErrNotSPF, ""},
		{"v=DMARC1; p=none", ErrNotSPF, ""},
		{"v=spf1 foo", ErrSyntax, `unknown mechanism "foo"`},
		{"v=spf1 -foo:bar.example", ErrSyntax, `"-foo:bar.example"`},
		{"v=spf1 include", ErrSyntax, "include needs"},
		{"v=spf1 include:", ErrSyntax, "empty domain-spec"},
		{"v=spf1 include:localhost", ErrSyntax, "top-level label"},
		{"v=spf1 include:192.0.2.1", ErrSyntax, "bad top-level label"},
		{"v=spf1 include:example.-com", ErrSyntax, "top-level label"},
		{"v=spf1 exists:%{i}.example.org.%", ErrSyntax, "'%' at the end"},
		{"v=spf1 exists:%{x}.example.org", ErrSyntax, "unknown macro letter"},
		{"v=spf1 exists:%{c}.example.org", ErrSyntax, "only allowed in explanation"},
		{"v=spf1 exists:%{i0}.example.org", ErrSyntax, "nonzero"},
		{"v=spf1 exists:%{ir;}.example.org", ErrSyntax, "delimiter"},
		{"v=spf1 exists:%{i.example.org", ErrSyntax, "without '}'"},
		{"v=spf1 exists:%{}.example.org", ErrSyntax, "empty macro"},
		{"v=spf1 exists:%x.example.org", ErrSyntax, "bad macro"},
		{"v=spf1 all:example.org", ErrSyntax, "all takes no argument"},
		{"v=spf1 -all/24", ErrSyntax, "all takes no argument"},
		{"v=spf1 ptr/24", ErrSyntax, "ptr takes no CIDR"},
		{"v=spf1 a/33", ErrSyntax, "longer than 32"},
		{"v=spf1 mx//129", ErrSyntax, "longer than 128"},
		{"v=spf1 a/024", ErrSyntax, "bad CIDR"},
		{"v=spf1 a/", ErrSyntax, "bad CIDR"},
		{"v=spf1 a//", ErrSyntax, "bad CIDR"},
		{"v=spf1 a/x", ErrSyntax, "bad CIDR"},
		{"v=spf1 a:", ErrSyntax, "empty domain-spec"},
		{"v=spf1 ip4", ErrSyntax, "needs ':'"},
		{"v=spf1 ip4:192.0.2.1/33", ErrSyntax, "longer than 32"},
		{"v=spf1 ip4:192.0.2/24", ErrSyntax, "bad ip4 address"},
		{"v=spf1 ip4:192.0.2.01", ErrSyntax, "bad ip4 address"},
		{"v=spf1 ip4:2001:db8::1", ErrSyntax, "not an IPv4"},
		{"v=spf1 ip6:192.0.2.1", ErrSyntax, "not an IPv6"},
		{"v=spf1 ip6:fe80::1%eth0", ErrSyntax, "not an IPv6"},
		{"v=spf1 ip6:2001:db8::/129", ErrSyntax, "longer than 128"},
		{"v=spf1 ip6:2001:db8::/", ErrSyntax, "bad CIDR"},
		{"v=spf1 redirect=a.example redirect=b.example", ErrSyntax, "redirect given twice"},
		{"v=spf1 exp=a.example EXP=b.example", ErrSyntax, "exp given twice"},
		{"v=spf1 redirect=", ErrSyntax, "empty domain-spec"},
		{"v=spf1 redirect=%{c}.example", ErrSyntax, "explanation"},
		{"v=spf1 -redirect=a.example", ErrSyntax, "unknown mechanism"},
		{"v=spf1 foo=%", ErrSyntax, "'%' at the end"},
		{"v=spf1 -", ErrSyntax, "qualifier without"},
		{"v=spf1 \t-all", ErrSyntax, "not allowed"},
		{"v=spf1 a:ex\u00e4mple.org", ErrSyntax, "not allowed"},
	} {
		t.Run(tc.txt, func(t *testing.T) {
			r, err := Parse(tc.txt)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Parse = %v, %v; want %v", r, err, tc.err)
			}
			if r != nil {
				t.Fatalf("record %v with an error", r)
			}
			if !strings.Contains(err.Error(), tc.substr) {
				t.Fatalf("error %q does not say %q", err, tc.substr)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		name string
		txts []string
		want string // String of the record
		err  error
	}{
		{"none", nil, "", ErrNoRecord},
		{"others only", []string{"google-site-verification=x", "v=spf10 -all", "v=spf2.0/mfrom -all"}, "", ErrNoRecord},
		{"one among others", []string{"v=DMARC1; p=none", "v=spf1 mx -all", "hello"}, "v=spf1 mx -all", nil},
		{"bare version", []string{"v=spf1"}, "v=spf1", nil},
		{"two", []string{"v=spf1 -all", "v=spf1 mx -all"}, "", ErrMultipleRecords},
		{"two, one broken", []string{"v=spf1 -all", "v=spf1 foo"}, "", ErrMultipleRecords},
		{"one broken", []string{"v=spf1 ip4:1.2.3.4/40"}, "", ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Select(tc.txts)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Select = %v; want %v", err, tc.err)
			}
			if tc.err == nil && r.String() != tc.want {
				t.Fatalf("selected %q, want %q", r.String(), tc.want)
			}
		})
	}
}

func TestQualifierAndKind(t *testing.T) {
	for q, want := range map[Qualifier]string{Pass: "pass", Fail: "fail", SoftFail: "softfail", Neutral: "neutral", 'x': `Qualifier('x')`} {
		if q.String() != want {
			t.Errorf("%c: %q, want %q", q, q.String(), want)
		}
	}
	for k, want := range map[Kind]bool{All: false, Include: true, A: true, MX: true, PTR: true, IP4: false, IP6: false, Exists: true} {
		if k.QueriesDNS() != want {
			t.Errorf("%s.QueriesDNS() = %v", k, !want)
		}
	}
	r, err := Parse("v=spf1 include:%{d}.x.example a:b.example")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Mechanisms[0].HasMacro() || r.Mechanisms[1].HasMacro() {
		t.Fatalf("HasMacro wrong: %+v", r.Mechanisms)
	}
}
