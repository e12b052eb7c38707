package resultmail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"

	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/store"
)

// DNS is what the SPF evaluation asks; *resolver.Resolver implements it.
type DNS interface {
	Query(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Auth is whether the test mail authenticated its envelope sender, which
// decides whether a result mail may go to it (no backscatter: DESIGN.md §4).
type Auth struct {
	OK     bool
	Method string // "spf" or "dkim" when OK
	Reason string // why (not): one sentence, no full address
}

// Authenticate decides from a test's connections whether the envelope
// sender was authenticated: SPF pass for the envelope sender's domain from
// the client address of a connection that carried the mail (RFC 7208
// §2.4), or a DKIM signature that verified (smtpd verified it with
// go-msgauth when the mail came) whose d= is aligned with that domain in
// DMARC's relaxed sense (RFC 7489 §3.1.1: the same organizational domain).
//
// SPF is evaluated now, not when the mail came: a record changed since
// gives today's answer. DNS failures are temporary: Authenticate then
// returns an error and the caller tries again later. With dnsc nil only
// DKIM is looked at.
func Authenticate(ctx context.Context, dnsc DNS, sender string, conns []store.SMTPConnection) (Auth, error) {
	domain := SenderDomain(sender)
	if domain == "" {
		return Auth{Reason: "the test mail had no envelope sender"}, nil
	}
	org := orgDomain(domain)
	var (
		spfResults []string
		tempErr    error
		tried      = map[string]bool{}
	)
	for _, c := range conns {
		if c.State.Rank() < store.StateMail.Rank() || SenderDomain(c.MailFrom) != domain {
			continue
		}
		for _, sig := range c.Signatures {
			if sig.Type == "dkim" && sig.Result == "pass" && sig.Domain != "" && orgDomain(sig.Domain) == org {
				return Auth{OK: true, Method: "dkim", Reason: fmt.Sprintf("a valid DKIM signature of %s, aligned with the envelope sender's domain %s", sig.Domain, domain)}, nil
			}
		}
		ip := c.Client.Addr().Unmap()
		key := ip.String()
		if dnsc == nil || tried[key] || !ip.IsValid() {
			continue
		}
		tried[key] = true
		res, err := spf.CheckHostWithSender(net.IP(ip.AsSlice()), c.EHLO, c.MailFrom,
			spf.WithContext(ctx), spf.WithResolver(spfResolver{dnsc}))
		switch res {
		case spf.Pass:
			return Auth{OK: true, Method: "spf", Reason: fmt.Sprintf("SPF pass for %s from %s", domain, ip)}, nil
		case spf.TempError:
			tempErr = errors.Join(tempErr, fmt.Errorf("SPF of %s: %w", domain, err))
		}
		spfResults = append(spfResults, fmt.Sprintf("SPF %s for %s from %s", res, domain, ip))
	}
	if tempErr != nil {
		return Auth{}, tempErr
	}
	if len(spfResults) == 0 {
		if dnsc == nil {
			return Auth{Reason: "no valid DKIM signature aligned with " + domain + ", and SPF was not evaluated (no resolver)"}, nil
		}
		return Auth{Reason: "no mail of the test came with the envelope sender's domain " + domain}, nil
	}
	return Auth{Reason: "the test mail's sender was not authenticated: " + strings.Join(spfResults, "; ") +
		", and no valid DKIM signature aligned with " + domain}, nil
}

// orgDomain is the organizational domain (RFC 7489 §3.2) by the public
// suffix list.
func orgDomain(d string) string {
	d = strings.TrimSuffix(strings.ToLower(d), ".")
	if o, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return o
	}
	return d
}

// SenderDomain is the lower-case domain of an envelope address, without
// angle brackets or a trailing dot; "" for the null sender or an address
// without a domain.
func SenderDomain(addr string) string {
	addr = strings.Trim(addr, "<> ")
	if at := strings.LastIndexByte(addr, '@'); at >= 0 && at < len(addr)-1 {
		return strings.TrimSuffix(strings.ToLower(addr[at+1:]), ".")
	}
	return ""
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
