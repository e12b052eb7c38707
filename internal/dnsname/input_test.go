package dnsname

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

func TestNormalizeDomain(t *testing.T) {
	tests := []struct {
		in, want string // want "" means ErrBadDomain
	}{
		{"example.org", "example.org"},
		{"Example.ORG.", "example.org"},
		{"  example.org  ", "example.org"},
		{"Bücher.example", "xn--bcher-kva.example"},
		{"xn--bcher-kva.example", "xn--bcher-kva.example"},
		{"BÜCHER.example.", "xn--bcher-kva.example"},
		{"例え.テスト", "xn--r8jz45g.xn--zckzah"},
		{"example。org", "example.org"},
		{"mail-1.example.org", "mail-1.example.org"},
		{"localhost", "localhost"},
		{"", ""},
		{".", ""},
		{"example.org..", ""},
		{"..example.org", ""},
		{"a..b", ""},
		{"user@example.org", ""},
		{"192.0.2.1", ""},
		{"[2001:db8::1]", ""},
		{"2001:db8::1", ""},
		{"exa mple.org", ""},
		{"under_score.example", ""},
		{"-lead.example", ""},
		{"example.123", ""},
		{strings.Repeat("a", 64) + ".example", ""},
		{strings.Repeat("abcdefghi.", 26) + "example", ""},
		{"http://example.org/", ""},
		{"\x00.example", ""},
	}
	for _, tc := range tests {
		got, err := NormalizeDomain(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrBadDomain) {
				t.Errorf("%q: got %q, %v; want ErrBadDomain", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzNormalizeDomain(f *testing.F) {
	for _, s := range []string{"example.org", "Bücher.example.", "a..b", "xn--", "xn--zz.example", "例え.テスト", "1.2.3.4", "@", "。"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeDomain(in)
		if err != nil {
			if !errors.Is(err, ErrBadDomain) {
				t.Fatalf("%q: error %v does not wrap ErrBadDomain", in, err)
			}
			return
		}
		if out == "" || len(out) > 253 || strings.HasSuffix(out, ".") || out != strings.ToLower(out) {
			t.Fatalf("%q → %q", in, out)
		}
		for i := 0; i < len(out); i++ {
			if out[i] >= 0x80 {
				t.Fatalf("%q → %q: not ASCII", in, out)
			}
		}
		if _, ok := dns.IsDomainName(out); !ok {
			t.Fatalf("%q → %q: not a DNS name", in, out)
		}
		if _, err := netip.ParseAddr(out); err == nil {
			t.Fatalf("%q → %q: an address", in, out)
		}
		again, err := NormalizeDomain(out)
		if err != nil || again != out {
			t.Fatalf("%q → %q → %q, %v: not idempotent", in, out, again, err)
		}
	})
}
