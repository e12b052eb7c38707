// Package untrusted bounds text that comes from the other side — a
// client's envelope, a server's banner, a DNS record, an error quoting
// either — before mailsec stores it or prints it, so that a peer cannot
// make a record or a message arbitrarily long or garble a terminal.
package untrusted

import (
	"fmt"
	"log/slog"
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

// Printable is Truncate of Terminal(s): bounded and safe to print.
func Printable(s string, n int) string {
	return Truncate(Terminal(s), n)
}

// Terminal returns s safe to print on a terminal: invalid UTF-8 and the
// control characters — C0 (line breaks and tabs included), DEL and C1
// (U+0080–U+009F; U+009B is CSI to some terminals) — become '?', so that
// text from a peer can neither move the cursor, recolour, retitle or
// clear the operator's terminal (ECMA-48 escape sequences) nor forge
// lines or table columns.
func Terminal(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || 0x80 <= r && r <= 0x9f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// LogAttr is a slog.HandlerOptions.ReplaceAttr that passes every string
// the log is given through Terminal: the message, string values, errors,
// Stringers and string lists. Log lines quote peers (EHLO names, MAIL
// FROM, SNI, HTTP headers, DNS names, their errors); the text and JSON
// handlers escape C0 control characters but the JSON handler writes C1
// ones (U+009B is CSI to some terminals) as they are, so nothing a peer
// sends may reach the operator's terminal unfiltered.
func LogAttr(_ []string, a slog.Attr) slog.Attr {
	switch v := a.Value; v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(Terminal(v.String()))
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			a.Value = slog.StringValue(Terminal(x.Error()))
		case fmt.Stringer:
			a.Value = slog.StringValue(Terminal(x.String()))
		case []string:
			out := make([]string, len(x))
			for i, s := range x {
				out[i] = Terminal(s)
			}
			a.Value = slog.AnyValue(out)
		}
	}
	return a
}
