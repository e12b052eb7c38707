// Package kvrecord holds the grammar that the "key=value; ..." TXT records
// of MTA-STS (RFC 8461 §3.1) and TLS-RPT (RFC 8460 §3) share: the field
// delimiter, extension names and extension values. RFC 8460 took the
// productions from RFC 8461 word for word, so one implementation serves both.
package kvrecord

import "strings"

// MaxExtNameLength bounds an extension name: (ALPHA / DIGIT) *31(ALPHA /
// DIGIT / "_" / "-" / ".") (RFC 8461 §3.1 sts-ext-name, RFC 8460 §3
// tlsrpt-ext-name).
const MaxExtNameLength = 32

// Field is one name "=" value field of a record; the records' extensions
// (sts-extension, tlsrpt-extension) are Fields.
type Field struct {
	Name, Value string
}

// Format writes fields as a record is published: "name=value" joined by
// "; " (the field delimiter without optional white space), in order. The
// version field comes first, as a Field like the others ({"v", "STSv1"}).
func Format(fields ...Field) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(f.Name)
		b.WriteByte('=')
		b.WriteString(f.Value)
	}
	return b.String()
}

// CutDelim removes a leading field delimiter (*WSP ";" *WSP) and tells
// whether there was one.
func CutDelim(s string) (string, bool) {
	s = strings.TrimLeft(s, " \t")
	s, ok := strings.CutPrefix(s, ";")
	if !ok {
		return s, false
	}
	return strings.TrimLeft(s, " \t"), true
}

// ValueChar tells whether c may appear in an extension value: 1*(%x21-3A /
// %x3C / %x3E-7E), visible ASCII without "=" and ";".
func ValueChar(c byte) bool {
	return c >= 0x21 && c <= 0x7e && c != '=' && c != ';'
}

// CutValue splits s after its longest prefix of ValueChar bytes: an
// extension value (empty if s does not start with one) and the rest.
func CutValue(s string) (value, rest string) {
	n := 0
	for n < len(s) && ValueChar(s[n]) {
		n++
	}
	return s[:n], s[n:]
}

// ValidExtName tells whether s is an extension name (see MaxExtNameLength).
func ValidExtName(s string) bool {
	if s == "" || len(s) > MaxExtNameLength || !IsAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !IsAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// IsAlnum tells whether c is an ASCII letter or digit (ALPHA / DIGIT).
func IsAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
