package checkreport

import (
	"fmt"
	"strings"

	"github.com/mailsec/mailsec/internal/colour"
)

// summary condenses the addresses for the colour, the qualification and
// the sentences.
type summary struct {
	tested         int // addresses with status ok
	notTestable    []string
	bogus          []string // what failed DNSSEC validation
	tlsaFailed     []string // hosts whose TLSA look-up failed on a secure path
	noTLS          []string // tested addresses without STARTTLS or with a failed handshake
	untrusted      []string // tested addresses whose certificate is not trusted or does not match
	daneMismatch   []string // tested addresses with TLS whose secure TLSA records match nothing
	daneValid      int
	withTLS        int      // tested addresses with a TLS session
	legacyTLS      []string // of those, addresses accepting TLS 1.0 or 1.1
	weakCiphers    []string // of those, addresses accepting a weak suite
	versionsKnown  int      // of those, addresses whose every version probe answered
	weakKnown      int      // of those, addresses where "no weak suite" is known
	tlsaPresent    bool
	tlsaAllSecure  bool
	addrAllSecure  bool
	qualified      bool
	unqualifiedWhy string
}

func label(h *Host, a *Address) string {
	if a == nil {
		return h.Name
	}
	return fmt.Sprintf("%s (%s)", h.Name, a.IP)
}

func summarize(r *Report) summary {
	s := summary{tlsaAllSecure: true, addrAllSecure: len(r.MX.Hosts) > 0}
	if r.MX.DNSSEC == Bogus {
		s.bogus = append(s.bogus, "MX of "+r.Domain)
	}
	for i := range r.MX.Hosts {
		h := &r.MX.Hosts[i]
		if h.AddressDNSSEC == Bogus {
			s.bogus = append(s.bogus, "addresses of "+h.Name)
		}
		if h.AddressDNSSEC != Secure {
			s.addrAllSecure = false
		}
		if h.TLSA.DNSSEC == Bogus {
			s.bogus = append(s.bogus, "TLSA of "+h.Name)
		}
		if h.TLSA.DNSSEC == Indeterminate && h.TLSA.Error != "" && r.MX.DNSSEC == Secure && h.AddressDNSSEC == Secure {
			s.tlsaFailed = append(s.tlsaFailed, h.Name)
		}
		if len(h.TLSA.Records) > 0 {
			s.tlsaPresent = true
			if h.TLSA.DNSSEC != Secure {
				s.tlsaAllSecure = false
			}
		}
		for j := range h.Addresses {
			a := &h.Addresses[j]
			switch a.Status {
			case StatusOK:
			case StatusNotTestable, StatusRefused, StatusError:
				s.notTestable = append(s.notTestable, label(h, a))
				continue
			default:
				continue
			}
			s.tested++
			if !a.STARTTLS || a.TLS == nil {
				s.noTLS = append(s.noTLS, label(h, a))
				continue
			}
			if a.Cert == nil || !a.Cert.PKIXValid || !a.Cert.NameMatch {
				s.untrusted = append(s.untrusted, label(h, a))
			}
			s.withTLS++
			if len(a.TLS.LegacyVersions()) > 0 {
				s.legacyTLS = append(s.legacyTLS, label(h, a))
			}
			if len(a.TLS.Weak()) > 0 {
				s.weakCiphers = append(s.weakCiphers, label(h, a))
			}
			if a.TLS.versionsKnown() {
				s.versionsKnown++
			}
			if a.TLS.weakKnown() {
				s.weakKnown++
			}
			if ok, _ := SecureTLSAPath(r.MX.DNSSEC, h); ok {
				switch a.DANE.State {
				case DANEValid:
					s.daneValid++
				case DANEMismatch:
					s.daneMismatch = append(s.daneMismatch, label(h, a))
				}
			}
		}
	}
	// Qualified transport encryption (DESIGN.md §1, after the DSK
	// guidance): DNSSEC-secure MX and address records, STARTTLS everywhere
	// and trusted certificates that match.
	switch {
	case r.MX.Kind != MXKindMX && r.MX.Kind != MXKindImplicit:
		s.unqualifiedWhy = "the domain has no mail server"
	case r.MX.DNSSEC != Secure:
		s.unqualifiedWhy = "the MX answer is not DNSSEC-secure"
	case !s.addrAllSecure:
		s.unqualifiedWhy = "not every MX host's address records are DNSSEC-secure"
	case s.tested == 0:
		s.unqualifiedWhy = "no mail server could be tested"
	case len(s.notTestable) > 0:
		s.unqualifiedWhy = "not every mail server could be tested"
	case len(s.noTLS) > 0:
		s.unqualifiedWhy = "not every mail server offers working STARTTLS"
	case len(s.untrusted) > 0:
		s.unqualifiedWhy = "not every certificate is trusted and matches the MX host name"
	default:
		s.qualified = true
	}
	return s
}

// grade applies the colour rule of docs/inbound.md, in its order, and says
// which part of it applied.
func grade(r *Report, s summary) (colour.Colour, string) {
	switch {
	case r.MX.Kind == MXKindNull:
		return colour.Grey, "The domain accepts no mail (null MX, RFC 7505)."
	case r.MX.Kind == MXKindNone && r.MX.Error != "":
		return colour.Grey, "The MX records could not be looked up: " + r.MX.Error + "."
	case r.MX.Kind == MXKindNone:
		return colour.Grey, "The domain has no mail server: neither MX nor address records."
	case len(s.bogus) > 0:
		return colour.Grey, "DNSSEC validation fails (bogus) for " + strings.Join(s.bogus, ", ") + ": validating senders cannot deliver."
	case len(s.tlsaFailed) > 0:
		return colour.Grey, "The TLSA look-up fails for " + strings.Join(s.tlsaFailed, ", ") + ": DANE senders defer mail (RFC 7672 §2.1.1)."
	case len(s.notTestable) > 0:
		return colour.Grey, "Not testable now: " + strings.Join(s.notTestable, ", ") + "."
	case s.tested == 0:
		return colour.Grey, "No mail server of the domain could be reached."
	case len(s.noTLS) > 0:
		return colour.Red, "No encryption: " + strings.Join(s.noTLS, ", ") + " without working STARTTLS."
	case len(s.daneMismatch) > 0:
		// RFC 7672 §2.2: a DANE sender refuses a server whose usable,
		// secure TLSA records match nothing: whatever the certificate,
		// mail from such senders does not get through.
		return colour.Grey, "The TLSA records of " + strings.Join(s.daneMismatch, ", ") + " match nothing: DANE senders do not deliver there."
	case s.daneValid == s.tested:
		return colour.Green, "Every mail server is authenticated by DNSSEC-secure TLSA records (RFC 7672 DANE)."
	case s.qualified:
		return colour.Green, "Qualified transport encryption: DNSSEC-secure MX and address records, STARTTLS everywhere, trusted certificates matching the MX names."
	case len(s.untrusted) == 0:
		return colour.White, "Encryption with valid certificates everywhere, but neither DANE nor DNSSEC-secure MX and address records."
	}
	return colour.Yellow, "Encryption, but the certificate of " + strings.Join(s.untrusted, ", ") + " is not trusted or does not match the MX name."
}
