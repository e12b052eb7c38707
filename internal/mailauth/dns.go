package mailauth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/resolver"
)

// DNS is what the evaluation asks: the service's own resolver
// (*resolver.Resolver implements it), never the system's.
type DNS interface {
	Query(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// LookupTXT gives go-msgauth's look-up callback (DKIM keys, RFC 6376
// §3.6.2.2; DMARC records, RFC 7489 §6.1) through dnsc under ctx. Its
// errors are net.Error as go-msgauth reads them: not found (NXDOMAIN or no
// TXT record: permerror, "no key for signature", or no DMARC policy), and
// temporary for every other failure (temperror, RFC 6376 §6.1.2). dnsc nil
// (no resolver configured) fails temporarily.
func LookupTXT(ctx context.Context, dnsc DNS) func(name string) ([]string, error) {
	return func(name string) ([]string, error) {
		if dnsc == nil {
			return nil, &net.DNSError{Err: resolver.ErrNoResolver.Error(), Name: name, IsTemporary: true}
		}
		return spfResolver{dnsc}.LookupTXT(ctx, name)
	}
}

// spfResolver adapts mailsec's resolver to the SPF library, which expects
// net.Resolver's errors: *net.DNSError with IsNotFound for NXDOMAIN and
// empty answers (void look-ups, RFC 7208 §4.6.4) and IsTemporary for
// failures (temperror, §2.6.6).
type spfResolver struct{ r DNS }

func (s spfResolver) query(ctx context.Context, name string, qtype uint16) ([]dns.RR, error) {
	a, err := s.r.Query(ctx, name, qtype)
	switch {
	case errors.Is(err, resolver.ErrNXDomain):
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	case err != nil:
		return nil, &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
	}
	var out []dns.RR
	for _, rr := range a.Msg.Answer {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	if len(out) == 0 {
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return out, nil
}

func (s spfResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, err := s.query(ctx, dns.Fqdn(name), dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, nil
}

func (s spfResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	rrs, err := s.query(ctx, dns.Fqdn(name), dns.TypeMX)
	if err != nil {
		return nil, err
	}
	var out []*net.MX
	for _, rr := range rrs {
		mx := rr.(*dns.MX)
		out = append(out, &net.MX{Host: mx.Mx, Pref: mx.Preference})
	}
	return out, nil
}

func (s spfResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	var out []net.IPAddr
	var errs []error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		rrs, err := s.query(ctx, dns.Fqdn(host), t)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range rrs {
			switch v := rr.(type) {
			case *dns.A:
				out = append(out, net.IPAddr{IP: v.A})
			case *dns.AAAA:
				out = append(out, net.IPAddr{IP: v.AAAA})
			}
		}
	}
	if len(out) == 0 && len(errs) > 0 {
		return nil, errs[0]
	}
	return out, nil
}

func (s spfResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, err
	}
	rev, err := dns.ReverseAddr(a.String())
	if err != nil {
		return nil, err
	}
	rrs, err := s.query(ctx, rev, dns.TypePTR)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range rrs {
		out = append(out, rr.(*dns.PTR).Ptr)
	}
	return out, nil
}
