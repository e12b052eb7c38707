// Package dnsname puts DNS names into the one form mailsec compares them
// in, so that a name from a DNS message, an envelope address, a Host header
// or the configuration means the same thing wherever it is looked at.
//
// DNS names compare case-insensitively in ASCII only (RFC 4343 §3): the
// functions fold A-Z by hand and leave every other byte alone. Unlike
// strings.ToLower they neither rewrite non-UTF-8 bytes (names in
// presentation format may carry any octet) nor fold non-ASCII letters onto
// ASCII ones (strings.ToLower maps U+212A KELVIN SIGN to "k", which would
// let a non-ASCII name pass for an ASCII one). Internationalised names are
// compared in their A-label form; converting U-labels is the caller's job
// (see internal/inbound's name check).
package dnsname

import "strings"

// Canonical returns name lower-cased (ASCII) without its trailing root
// dot: "MX1.Example." and "mx1.example" both give "mx1.example"; the root
// "." gives "". A dot that is escaped ("a\.") is part of the last label and
// stays.
func Canonical(name string) string {
	if IsFQDN(name) {
		name = name[:len(name)-1]
	}
	return lowerASCII(name)
}

// CanonicalFQDN returns name lower-cased (ASCII) and fully qualified: the
// form of dns.Msg question names. "" stays "" (no name is not the root).
func CanonicalFQDN(name string) string {
	if name == "" {
		return ""
	}
	if !IsFQDN(name) {
		name += "."
	}
	return lowerASCII(name)
}

// IsFQDN reports whether name ends in an unescaped dot. In presentation
// format "a\." is the one-label name "a." (not fully qualified) while
// "a\\." ends in an escaped backslash and then the root dot.
func IsFQDN(name string) bool {
	if !strings.HasSuffix(name, ".") {
		return false
	}
	backslashes := 0
	for i := len(name) - 2; i >= 0 && name[i] == '\\'; i-- {
		backslashes++
	}
	return backslashes%2 == 0
}

// lowerASCII folds A-Z to a-z and keeps every other byte.
func lowerASCII(s string) string {
	i := strings.IndexFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' })
	if i < 0 {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}
