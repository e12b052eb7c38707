package dnsname

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"

	"github.com/mailsec/mailsec/internal/untrusted"
)

// ErrBadDomain is wrapped by the error for an input that is not a domain
// name that can be looked up (the inbound check, the web form and API,
// scan lists).
var ErrBadDomain = errors.New("dnsname: not a domain name")

// lookupProfile converts user input to the A-label form used in DNS
// (RFC 5890 §2.3.2.1, UTS #46 mapping as browsers do): case folded,
// non-transitional, LDH labels of at most 63 octets, at most 253 in all.
var lookupProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.BidiRule(),
	idna.StrictDomainName(true),
	idna.VerifyDNSLength(true),
)

// NormalizeDomain turns the domain as a user typed it — an IDN in
// U-labels, upper case, one trailing dot — into the A-label form without
// the trailing dot: "Bücher.Example." → "xn--bcher-kva.example". Address
// literals, mail addresses, empty labels and over-long names wrap
// ErrBadDomain.
func NormalizeDomain(input string) (string, error) {
	s := strings.TrimSpace(input)
	// The input quoted in the error is bounded and printable (%q alone
	// would turn 80 bytes of garbage into 320 characters).
	show := untrusted.Printable(s, 60)
	fail := func(why string) (string, error) {
		// why may quote the input (the idna errors do): bounded too, so
		// that the error a web page or API shows stays short.
		return "", fmt.Errorf("%w: %q: %s", ErrBadDomain, show, untrusted.Printable(why, 120))
	}
	switch {
	case s == "":
		return fail("empty")
	case len(s) > 1024:
		return fail("too long")
	case !utf8.ValidString(s):
		return fail("not valid UTF-8")
	case strings.Contains(s, "@"):
		return fail("a mail address; give its domain (the part after @)")
	case strings.ContainsAny(s, "/:[] \t"):
		if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
			return fail("an IP address, not a domain")
		}
		return fail("contains characters that cannot be in a host name")
	}
	// One trailing dot is the absolute form (RFC 1034 §3.1); more leave an
	// empty label.
	s = strings.TrimSuffix(s, ".")
	// "。" and the other full stops become "." in the mapping: trim those too.
	for _, dot := range []string{"\u3002", "\uff0e", "\uff61"} {
		s = strings.TrimSuffix(s, dot)
	}
	if s == "" {
		return fail("the root is not a mail domain")
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return fail("an IP address, not a domain")
	}
	a, err := lookupProfile.ToASCII(s)
	if err != nil {
		return fail(err.Error())
	}
	a = strings.ToLower(a)
	// The A-labels must decode again (the mapping can produce labels
	// that are not valid IDNA, e.g. from U+FFFD).
	if _, err := lookupProfile.ToUnicode(a); err != nil {
		return fail(err.Error())
	}
	if a == "" || strings.HasSuffix(a, ".") || strings.HasPrefix(a, ".") || strings.Contains(a, "..") {
		return fail("empty label")
	}
	if len(a) > 253 {
		return fail("longer than 253 octets")
	}
	// An all-numeric top-level label would make the name look like an
	// IPv4 address to other software (RFC 3696 §2).
	if last := a[strings.LastIndexByte(a, '.')+1:]; strings.Trim(last, "0123456789") == "" {
		return fail("the last label is numeric")
	}
	return a, nil
}
