package sender

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/mailsec/mailsec/internal/dane"
	"github.com/mailsec/mailsec/internal/mtasts"
)

// tlsMode is what a host's policy asks of STARTTLS.
type tlsMode int

const (
	tlsNever   tlsMode = iota // level none
	tlsTry                    // may: use it if offered, plaintext otherwise
	tlsRequire                // never plaintext
)

// hostPolicy is the effective policy toward one MX host (see the table in
// the package documentation).
type hostPolicy struct {
	name   string // "dane", "mta-sts", "may", "encrypt (dane: ...)", ...
	reason string
	tls    tlsMode
	pkix   bool        // enforce PKIX validity for the MX host name
	dane   []dane.TLSA // non-nil: DANE decides (usable, secure records)
	sni    string
	// sts is the MTA-STS policy that applies to the host (enforce or
	// testing); stsEnforce makes its verdict binding.
	sts        *mtasts.Policy
	stsEnforce bool
	addrs      []netip.Addr
	// skip, when set, says why the host is not contacted.
	skip error
}

// planHost decides the policy toward host h and looks up its addresses.
// sts is the MTA-STS policy in force for the domain (nil: none, or mode
// none).
func (s *Sender) planHost(ctx context.Context, h MXHost, mx MXSet, sts *mtasts.Policy) hostPolicy {
	level := s.opts.Level
	var p hostPolicy
	switch level {
	case LevelNone:
		p = hostPolicy{name: "none", reason: "level none: no STARTTLS", tls: tlsNever}
	case LevelMay:
		p = hostPolicy{name: "may", reason: "level may: STARTTLS if offered", tls: tlsTry}
	case LevelEncrypt:
		p = hostPolicy{name: "encrypt", reason: "level encrypt: STARTTLS mandatory, no authentication", tls: tlsRequire}
	case LevelVerify:
		p = hostPolicy{name: "verify", reason: "level verify: STARTTLS mandatory, PKIX for the MX host name", tls: tlsRequire, pkix: true}
	case LevelDANE, LevelDANEOnly:
		// RFC 7672 §2.2: DANE applies only when the MX RRset, the host's
		// address records and its TLSA RRset are all DNSSEC-secure.
		var why string
		if !mx.Secure {
			why = "MX RRset is not DNSSEC-secure"
		} else {
			addrs, secure, err := s.lookupAddrs(ctx, h.Name)
			if err != nil {
				return hostPolicy{name: string(level), skip: err}
			}
			p.addrs = addrs
			if !secure {
				why = "address records are not DNSSEC-secure"
			} else {
				ans, err := s.lookupTLSA(ctx, h.Name)
				switch {
				case err != nil:
					// RFC 7672 §2.1.1: a failed TLSA look-up may hide an
					// attack; defer, never fall back.
					return hostPolicy{name: string(level), skip: err}
				case !ans.secure:
					why = "TLSA answer is not DNSSEC-secure"
				case len(ans.records) == 0:
					why = "no TLSA records (securely denied)"
				default:
					usable := dane.Usable(ans.records)
					if len(usable) > 0 {
						return hostPolicy{
							name: "dane", tls: tlsRequire, dane: usable, sni: h.Name, addrs: addrs,
							reason: fmt.Sprintf("%d usable DNSSEC-secure TLSA record(s): STARTTLS mandatory, DANE authentication, SNI %s", len(usable), h.Name),
						}
					}
					why = fmt.Sprintf("%d TLSA record(s), none usable", len(ans.records))
					if level == LevelDANE {
						// RFC 7672 §2.2: TLSA records exist, so TLS is
						// mandatory, but they cannot authenticate.
						p = hostPolicy{name: "encrypt (dane)", reason: "dane: " + why + ": STARTTLS mandatory, no authentication",
							tls: tlsRequire, addrs: addrs}
						why = ""
					}
				}
			}
		}
		if why != "" {
			if level == LevelDANEOnly {
				return hostPolicy{name: "dane-only", skip: fmt.Errorf("%w: %s", ErrNoDANE, why)}
			}
			addrs := p.addrs
			p = hostPolicy{name: "may (dane)", reason: "dane: " + why + ": opportunistic TLS", tls: tlsTry, addrs: addrs}
		}
	}
	if s.opts.SendSNI {
		p.sni = h.Name
	}

	// MTA-STS for hosts DANE did not decide (RFC 8461 §2).
	if sts != nil {
		switch sts.Mode {
		case mtasts.ModeEnforce:
			if !sts.Matches(h.Name) {
				return hostPolicy{name: "mta-sts", skip: fmt.Errorf("%w: %s", ErrSTSMismatch, h.Name)}
			}
			p.name = "mta-sts"
			if p.tls == tlsNever || p.tls == tlsTry {
				p.reason = "MTA-STS enforce: STARTTLS mandatory, PKIX for the MX host name"
			} else {
				p.reason += "; MTA-STS enforce: PKIX for the MX host name"
			}
			p.tls, p.pkix, p.sni, p.sts, p.stsEnforce = tlsRequire, true, h.Name, sts, true
		case mtasts.ModeTesting:
			p.name += " (mta-sts testing)"
			p.reason += "; MTA-STS testing: checked and reported, not enforced"
			p.sni, p.sts = h.Name, sts
			if p.tls == tlsNever {
				// Testing needs a TLS session to report on; delivery
				// still never depends on it.
				p.tls = tlsTry
			}
		}
	}
	if p.addrs == nil {
		addrs, _, err := s.lookupAddrs(ctx, h.Name)
		if err != nil {
			p.skip = err
			return p
		}
		p.addrs = addrs
	}
	return p
}
