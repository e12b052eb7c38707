// Package untrusted bounds text that comes from the other side — a
// client's envelope, a server's banner, a DNS record, an error quoting
// either — before mailsec stores it or prints it, so that a peer cannot
// make a record or a message arbitrarily long or garble a terminal.
package untrusted

import (
	"strings"
	"unicode/utf8"
)

// Ellipsis marks text that Truncate or Printable cut.
const Ellipsis = "…"

// Truncate returns s if it is at most n bytes long, and otherwise its first
// n bytes or fewer, cut at the start of a UTF-8 sequence so that no rune is
// split, followed by Ellipsis (so the result may be up to len(Ellipsis)
// bytes longer than n). The bytes kept are not changed.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + Ellipsis
}

// Printable is Truncate of s made safe to print: invalid UTF-8 and the
// control characters (C0 and DEL), line breaks included, become '?'.
func Printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	return Truncate(s, n)
}
