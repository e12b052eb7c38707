package dnsname

import "testing"

func TestCanonical(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{".", ""},
		{"example", "example"},
		{"MX4.A.Example.", "mx4.a.example"},
		{"mx4.a.example.", "mx4.a.example"},
		{`a\.`, `a\.`},  // escaped dot is part of the label
		{`a\\.`, `a\\`}, // escaped backslash, then the root
		{"\xff\xfeA.", "\xff\xfea"},
		{"\u212Aexample", "\u212Aexample"}, // KELVIN SIGN is not "k" (RFC 4343: ASCII only)
		{"B\u00dcCHER.example", "b\u00dccher.example"},
		{"a..", "a."}, // only the root dot goes
	} {
		if got := Canonical(tc.in); got != tc.want {
			t.Errorf("Canonical(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCanonicalFQDN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{".", "."},
		{"example", "example."},
		{"MX4.A.Example.", "mx4.a.example."},
		{`a\.`, `a\..`},  // escaped dot is part of the label
		{`a\\.`, `a\\.`}, // escaped backslash, then the root
		{"\xff\xfeA", "\xff\xfea."},
	} {
		if got := CanonicalFQDN(tc.in); got != tc.want {
			t.Errorf("CanonicalFQDN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIsFQDN(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", false}, {".", true}, {"a", false}, {"a.", true},
		{`a\.`, false}, {`a\\.`, true}, {`a\\\.`, false},
	} {
		if got := IsFQDN(tc.in); got != tc.want {
			t.Errorf("IsFQDN(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
