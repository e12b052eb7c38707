package untrusted

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 0, ""},
		{"abc", 3, "abc"},
		{"abcd", 3, "abc…"},
		{"abc", 0, "…"},
		{"abc", -1, "…"},
		{"aé", 2, "a…"},                 // é is two bytes: not split
		{"a€b", 3, "a…"},                // € is three bytes
		{"a€b", 4, "a€…"},               // cut after the whole rune
		{"a\x00\xffb", 3, "a\x00\xff…"}, // bytes kept as they are
		{"\x80\x80\x80x", 2, "…"},       // no rune start before n: nothing kept
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"250 ok", 10, "250 ok"},
		{"a\r\nb\x1b[31m\x7f", 20, "a??b?[31m?"},
		{"bad \xff utf-8", 20, "bad ? utf-8"},
		{"héllo wörld", 2, "h…"},
		{"\t", 1, "?"},
	} {
		if got := Printable(tc.in, tc.n); got != tc.want {
			t.Errorf("Printable(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// FuzzTruncate checks the promises: a prefix of s, at most n bytes of it,
// never a split rune that was whole in s, and Printable's result valid
// UTF-8 without control characters.
func FuzzTruncate(f *testing.F) {
	f.Add("a€b\x00\xff", 3)
	f.Fuzz(func(t *testing.T, s string, n int) {
		got := Truncate(s, n)
		if got == s {
			return
		}
		kept := strings.TrimSuffix(got, Ellipsis)
		if !strings.HasPrefix(s, kept) || len(kept) > max(n, 0) {
			t.Fatalf("Truncate(%q, %d) = %q", s, n, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(kept) {
			t.Fatalf("Truncate(%q, %d) = %q splits a rune", s, n, got)
		}
		p := Printable(s, n)
		if !utf8.ValidString(p) || strings.IndexFunc(p, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
			t.Fatalf("Printable(%q, %d) = %q", s, n, p)
		}
	})
}

func TestTerminal(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"mx.example.org", "mx.example.org"},
		{"grüße €", "grüße €"},
		{"a\x1b[2Jb", "a?[2Jb"},
		{"a\u009b31mb", "a?31mb"}, // C1 CSI
		{"a\u0085b", "a?b"},       // C1 NEL
		{"line\r\nforged\tcol", "line??forged?col"},
		{"\x7f\x00", "??"},
		{"bad\xffutf8", "bad?utf8"},
	} {
		if got := Terminal(tc.in); got != tc.want {
			t.Errorf("Terminal(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
