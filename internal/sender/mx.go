package sender

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dane"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/smtpclient"
)

// resolveMX looks up the MX RRset of domain (RFC 5321 §5.1): sorted by
// preference, equal preferences shuffled, duplicates removed. A null MX
// (RFC 7505 §3: a single MX with target ".") is ErrNullMX; NXDOMAIN is
// ErrNoSuchDomain; no MX records give the implicit MX, the domain itself.
// Secure reports the AD bit of the answer, including a denial of MX.
func (s *Sender) resolveMX(ctx context.Context, domain string) (MXSet, error) {
	a, err := s.opts.Resolver.Query(ctx, domain, dns.TypeMX)
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return MXSet{}, fmt.Errorf("%w: %s", ErrNoSuchDomain, domain)
	case err != nil:
		return MXSet{}, fmt.Errorf("%w: MX of %s: %w", ErrDNS, domain, err)
	}
	set := MXSet{Secure: a.Secure}
	// RFC 5321 §5.1 order; a "." beside real hosts breaks RFC 7505 §3,
	// and the real hosts are used.
	hosts, null := smtpclient.MXHosts(a.Msg.Answer)
	if len(hosts) == 0 {
		if null {
			return MXSet{}, fmt.Errorf("%w: %s", ErrNullMX, domain)
		}
		// RFC 5321 §5.1: no MX records, the domain is its own host.
		set.Implicit = true
		set.Hosts = []MXHost{{Name: canonName(domain)}}
		return set, nil
	}
	// Equal preferences in random order (RFC 5321 §5.1).
	for i := 0; i < len(hosts); {
		j := i
		for j < len(hosts) && hosts[j].Preference == hosts[i].Preference {
			j++
		}
		group := hosts[i:j]
		s.opts.Shuffle(len(group), func(x, y int) { group[x], group[y] = group[y], group[x] })
		i = j
	}
	for _, h := range hosts {
		set.Hosts = append(set.Hosts, MXHost{Name: h.Host, Preference: h.Preference})
	}
	return set, nil
}

// lookupAddrs returns the addresses of host in the order they are tried,
// and whether every address answer was DNSSEC-secure (RFC 7672 §2.2.2:
// TLSA is looked up only for hosts with secure address records).
// NXDOMAIN or no addresses at all is ErrNoAddress; a failed look-up is
// ErrDNS.
func (s *Sender) lookupAddrs(ctx context.Context, host string) ([]netip.Addr, bool, error) {
	var v4, v6 []netip.Addr
	secure := true
	types := []uint16{dns.TypeA, dns.TypeAAAA}
	if l := s.opts.LocalAddr; l.IsValid() {
		// Only the family of the source address can be reached.
		if l.Is4() {
			types = types[:1]
		} else {
			types = types[1:]
		}
	}
	for _, t := range types {
		a, err := s.opts.Resolver.Query(ctx, host, t)
		if errors.Is(err, resolver.ErrNXDomain) {
			return nil, a.Secure, fmt.Errorf("%w: %s does not exist", ErrNoAddress, host)
		}
		if err != nil {
			return nil, false, fmt.Errorf("%w: %s %s: %w", ErrDNS, host, dns.TypeToString[t], err)
		}
		secure = secure && a.Secure
		for _, rr := range a.Msg.Answer {
			switch rr := rr.(type) {
			case *dns.A:
				if ip, ok := netip.AddrFromSlice(rr.A.To4()); ok {
					v4 = append(v4, ip)
				}
			case *dns.AAAA:
				if ip, ok := netip.AddrFromSlice(rr.AAAA); ok && ip.Is6() && !ip.Is4In6() {
					v6 = append(v6, ip)
				}
			}
		}
	}
	var addrs []netip.Addr
	if s.opts.PreferIPv6 {
		addrs = append(append(addrs, v6...), v4...)
	} else {
		addrs = append(append(addrs, v4...), v6...)
	}
	if len(addrs) == 0 {
		return nil, secure, fmt.Errorf("%w: %s has no A/AAAA records", ErrNoAddress, host)
	}
	return addrs, secure, nil
}

// tlsaAnswer is the outcome of a TLSA look-up.
type tlsaAnswer struct {
	records []dane.TLSA
	secure  bool // the answer (or the denial) was validated
}

// lookupTLSA asks for _25._tcp.<host> TLSA (RFC 7672 §2.2.3; always port
// 25, whatever SMTPPort maps the connection to). NXDOMAIN and
// NODATA give no records (secure if the denial was validated); any other
// failure (SERVFAIL: bogus or broken) wraps ErrTLSALookup, and the host
// must then be deferred (RFC 7672 §2.1.1).
func (s *Sender) lookupTLSA(ctx context.Context, host string) (tlsaAnswer, error) {
	name := smtpclient.TLSAName(host)
	a, err := s.opts.Resolver.Query(ctx, name, dns.TypeTLSA)
	if errors.Is(err, resolver.ErrNXDomain) {
		return tlsaAnswer{secure: a.Secure}, nil
	}
	if err != nil {
		return tlsaAnswer{}, fmt.Errorf("%w: %s: %w", ErrTLSALookup, name, err)
	}
	records, _ := dane.FromRRs(a.Msg.Answer)
	return tlsaAnswer{records: records, secure: a.Secure}, nil
}

// canonName lower-cases a DNS name and drops the trailing dot ("." gives "").
func canonName(n string) string { return dnsname.Canonical(n) }
