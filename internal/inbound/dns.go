package inbound

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/resolver"
)

// ErrResolver is wrapped by Check's error when the resolver itself cannot
// be used (no answer at all, refused): the check then says nothing about
// the domain.
var ErrResolver = errors.New("inbound: resolver unusable")

// maxCNAMEs bounds the alias chain followed for one name (RFC 1034 §3.6.2
// discourages chains; resolvers cut them at 8–16).
const maxCNAMEs = 12

// lookup is the outcome of one DNS question, after the CNAME chain.
type lookup struct {
	rrs    []dns.RR // records of the asked type at the end of the chain
	cnames []string // the alias chain from the name asked, targets in order
	state  checkreport.DNSSEC
	nx     bool  // NXDOMAIN (at the end of the chain)
	err    error // a failure other than NXDOMAIN or NODATA
	// resolverDown: the resolver did not answer at all.
	resolverDown bool
	// zone is the apex named by the SOA of a negative answer ("" otherwise).
	zone string
}

// target is the name the records are at: the last CNAME target, or name.
func (l lookup) target(name string) string {
	if len(l.cnames) > 0 {
		return l.cnames[len(l.cnames)-1]
	}
	return canon(name)
}

// canon lower-cases a name and drops the trailing dot.
func canon(name string) string { return dnsname.Canonical(name) }

// dnsClient asks the resolver and grades the DNSSEC state of answers.
type dnsClient struct {
	res      *resolver.Resolver
	addr     netip.AddrPort
	trustsAD bool
}

// query asks name/qtype and follows the CNAME chain in the answer (asking
// again where the resolver stopped), detecting loops. The DNSSEC state is
// that of the whole chain: secure only if every answer was.
func (d *dnsClient) query(ctx context.Context, name string, qtype uint16) lookup {
	var l lookup
	cur := canon(name)
	seen := map[string]bool{cur: true}
	state := checkreport.Secure
	for round := 0; ; round++ {
		a, err := d.res.Query(ctx, cur, qtype)
		st := d.grade(a, err)
		if st == checkreport.Insecure && state == checkreport.Secure {
			state = checkreport.Insecure
		}
		switch {
		case err != nil && errors.Is(err, resolver.ErrNXDomain):
			l.nx = true
		case err != nil && errors.Is(err, resolver.ErrServFail):
			l.state, l.err = d.servfail(ctx, cur, qtype, a.Msg)
			return l
		case err != nil:
			l.state, l.err, l.resolverDown = checkreport.Indeterminate, err, ctx.Err() == nil
			return l
		}
		if a.Msg == nil {
			l.state, l.err = checkreport.Indeterminate, fmt.Errorf("%s %s: no answer", cur, dns.TypeToString[qtype])
			return l
		}
		// Walk the chain inside this answer.
		for range maxCNAMEs + 1 {
			next := ""
			for _, rr := range a.Msg.Answer {
				if c, ok := rr.(*dns.CNAME); ok && canon(c.Hdr.Name) == cur && qtype != dns.TypeCNAME {
					next = canon(c.Target)
					break
				}
			}
			if next == "" {
				break
			}
			l.cnames = append(l.cnames, next)
			if seen[next] {
				l.state, l.err = checkreport.Indeterminate, fmt.Errorf("CNAME loop: %s → %s", canon(name), strings.Join(l.cnames, " → "))
				return l
			}
			if len(l.cnames) > maxCNAMEs {
				l.state, l.err = checkreport.Indeterminate, fmt.Errorf("CNAME chain of %s longer than %d", canon(name), maxCNAMEs)
				return l
			}
			seen[next] = true
			cur = next
		}
		for _, rr := range a.Msg.Answer {
			h := rr.Header()
			if h.Rrtype == qtype && canon(h.Name) == cur {
				l.rrs = append(l.rrs, rr)
			}
		}
		for _, rr := range a.Msg.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				l.zone = canon(soa.Hdr.Name)
			}
		}
		// The resolver answered the whole chain, or the end is NXDOMAIN or
		// NODATA of the last name asked. Ask again only when the chain
		// ends in a name this answer says nothing about.
		if len(l.rrs) > 0 || l.nx || round >= maxCNAMEs || !endsUnanswered(a.Msg, cur) {
			break
		}
	}
	if !d.trustsAD {
		state = checkreport.Indeterminate
	}
	l.state = state
	return l
}

// endsUnanswered tells whether the answer to a question stopped at a CNAME
// whose target cur it does not cover (no records, no negative answer for
// it): then the resolver must be asked for cur itself.
func endsUnanswered(m *dns.Msg, cur string) bool {
	if len(m.Question) == 0 || canon(m.Question[0].Name) == cur {
		return false // cur was the question: this is its NODATA
	}
	return m.Rcode == dns.RcodeSuccess
}

// grade is the DNSSEC state of one answer that did not fail.
func (d *dnsClient) grade(a resolver.Answer, err error) checkreport.DNSSEC {
	if err != nil && !errors.Is(err, resolver.ErrNXDomain) {
		return checkreport.Indeterminate
	}
	if a.Secure {
		return checkreport.Secure
	}
	return checkreport.Insecure
}

// Extended DNS Error codes that mean a validation failure (RFC 8914 §4):
// 1, 2 unsupported algorithm or digest, 6 bogus, 7 expired, 8 not yet
// valid, 9 DNSKEY missing, 10 RRSIGs missing, 11 no zone key bit, 12 NSEC
// missing.
var bogusEDE = map[uint16]bool{6: true, 7: true, 8: true, 9: true, 10: true, 11: true, 12: true}

// servfail tells a validation failure (bogus) from a broken or unreachable
// zone. A validating resolver answers SERVFAIL to both; an Extended DNS
// Error (RFC 8914) may say which, and otherwise the same question with
// Checking Disabled (RFC 4035 §3.2.2) succeeds only when the data is there
// and fails validation.
func (d *dnsClient) servfail(ctx context.Context, name string, qtype uint16, m *dns.Msg) (checkreport.DNSSEC, error) {
	what := fmt.Sprintf("%s %s", name, dns.TypeToString[qtype])
	if info, ok := ede(m); ok {
		if bogusEDE[info.InfoCode] {
			return d.bogus(fmt.Errorf("%s: DNSSEC validation fails (SERVFAIL, extended error %d %s%s)", what, info.InfoCode, dns.ExtendedErrorCodeToString[info.InfoCode], edeText(info)))
		}
	}
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.SetEdns0(1232, true)
	q.CheckingDisabled = true
	in, _, err := c.ExchangeContext(ctx, q, d.addr.String())
	if err == nil && in.Truncated {
		c.Net = "tcp"
		in, _, err = c.ExchangeContext(ctx, q, d.addr.String())
	}
	if err == nil && (in.Rcode == dns.RcodeSuccess || in.Rcode == dns.RcodeNameError) {
		if loop := cnameLoop(in, name); loop != "" {
			return checkreport.Indeterminate, fmt.Errorf("%s: SERVFAIL: CNAME loop: %s", what, loop)
		}
		return d.bogus(fmt.Errorf("%s: DNSSEC validation fails (SERVFAIL; with checking disabled the answer is %s)", what, dns.RcodeToString[in.Rcode]))
	}
	if err == nil {
		if loop := cnameLoop(in, name); loop != "" {
			return checkreport.Indeterminate, fmt.Errorf("%s: SERVFAIL: CNAME loop: %s", what, loop)
		}
	}
	return checkreport.Indeterminate, fmt.Errorf("%s: SERVFAIL: the domain's name servers fail or cannot be reached", what)
}

// bogus is Bogus from a trusted resolver; an untrusted one may lie, so
// its verdict stays indeterminate.
func (d *dnsClient) bogus(err error) (checkreport.DNSSEC, error) {
	if !d.trustsAD {
		return checkreport.Indeterminate, err
	}
	return checkreport.Bogus, err
}

func ede(m *dns.Msg) (*dns.EDNS0_EDE, bool) {
	if m == nil {
		return nil, false
	}
	opt := m.IsEdns0()
	if opt == nil {
		return nil, false
	}
	for _, o := range opt.Option {
		if e, ok := o.(*dns.EDNS0_EDE); ok {
			return e, true
		}
	}
	return nil, false
}

func edeText(e *dns.EDNS0_EDE) string {
	if e.ExtraText == "" {
		return ""
	}
	t := e.ExtraText
	if len(t) > 200 {
		t = t[:200] + "…"
	}
	return ": " + t
}

// cnameLoop returns the loop "a → b → a" if the answer's CNAMEs from name
// lead back to a name already seen.
func cnameLoop(m *dns.Msg, name string) string {
	cur := canon(name)
	seen := map[string]bool{cur: true}
	chain := []string{cur}
	for range maxCNAMEs + 1 {
		next := ""
		for _, rr := range m.Answer {
			if c, ok := rr.(*dns.CNAME); ok && canon(c.Hdr.Name) == cur {
				next = canon(c.Target)
				break
			}
		}
		if next == "" {
			return ""
		}
		chain = append(chain, next)
		if seen[next] {
			return strings.Join(chain, " → ")
		}
		seen[next] = true
		cur = next
	}
	return ""
}

// txt returns the TXT records at name, each record's strings joined
// (RFC 7208 §3.3). NXDOMAIN and NODATA give none and no error.
func (d *dnsClient) txt(ctx context.Context, name string) ([]string, error) {
	l := d.query(ctx, name, dns.TypeTXT)
	if l.err != nil {
		return nil, l.err
	}
	var out []string
	for _, rr := range l.rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// lookupTXT has the signature of mtasts.LookupTXTFunc: NXDOMAIN is an
// error wrapping resolver.ErrNXDomain there.
func (d *dnsClient) lookupTXT(ctx context.Context, name string) ([]string, error) {
	l := d.query(ctx, name, dns.TypeTXT)
	switch {
	case l.err != nil:
		return nil, l.err
	case l.nx:
		return nil, fmt.Errorf("%s: %w", name, resolver.ErrNXDomain)
	}
	var out []string
	for _, rr := range l.rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// addresses asks A and AAAA of host in parallel and combines them.
type addrLookup struct {
	addrs []netip.Addr
	state checkreport.DNSSEC
	cname string // first alias target, "" if host is no alias
	final string // the name the addresses are at
	nx    bool
	err   error
}

func (d *dnsClient) addresses(ctx context.Context, host string) addrLookup {
	var a4, a6 lookup
	done := make(chan struct{})
	go func() {
		a6 = d.query(ctx, host, dns.TypeAAAA)
		close(done)
	}()
	a4 = d.query(ctx, host, dns.TypeA)
	<-done
	out := addrLookup{state: combine(a4.state, a6.state), nx: a4.nx && a6.nx, final: a4.target(host)}
	if len(a4.cnames) > 0 {
		out.cname = a4.cnames[0]
	} else if len(a6.cnames) > 0 {
		out.cname = a6.cnames[0]
	}
	for _, rr := range a4.rrs {
		if ip, ok := netip.AddrFromSlice(rr.(*dns.A).A.To4()); ok {
			out.addrs = append(out.addrs, ip)
		}
	}
	for _, rr := range a6.rrs {
		if ip, ok := netip.AddrFromSlice(rr.(*dns.AAAA).AAAA); ok && ip.Is6() {
			out.addrs = append(out.addrs, ip)
		}
	}
	switch {
	case a4.err != nil && a6.err != nil:
		out.err = fmt.Errorf("%v; %v", a4.err, a6.err)
	case a4.err != nil:
		out.err = a4.err
	case a6.err != nil:
		out.err = a6.err
	}
	return out
}

// combine is the state of two answers together: the worst of them.
func combine(a, b checkreport.DNSSEC) checkreport.DNSSEC {
	rank := map[checkreport.DNSSEC]int{checkreport.Secure: 0, checkreport.Insecure: 1, checkreport.Indeterminate: 2, checkreport.Bogus: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
