// Package resolver is the DNS client mailsec uses for its own look-ups:
// DKIM keys and SPF records of test mails (the result mail's
// anti-backscatter check), MX, TLSA and MTA-STS records for the
// policy-aware sender (result mails, demo senders), the inbound check and
// bulk scans.
//
// mailsec normally does not validate DNSSEC itself: it asks a validating
// resolver and reads the AD bit (validate.go adds self-validation under
// configured trust anchors, for zones no validating resolver knows). The AD bit is trusted only from a resolver on
// loopback (DESIGN.md §5; RFC 6698 §4.1 and RFC 7672 §2.2 require the path
// to the validator to be secure, which only loopback guarantees without
// TSIG or DoT).
package resolver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Errors callers tell apart.
var (
	ErrNXDomain   = errors.New("resolver: no such domain")
	ErrServFail   = errors.New("resolver: server failure (bogus DNSSEC or broken zone)")
	ErrNoResolver = errors.New("resolver: no nameserver configured")
)

// Resolver asks one recursive resolver.
type Resolver struct {
	addr    netip.AddrPort
	timeout time.Duration
	anchors []*anchor // zones validated here (validate.go)
	now     func() time.Time
	pool    *udpPool // reused UDP sockets; nil off loopback (pool.go)
}

// New returns a resolver for addr ("ip:port"); an empty addr takes the first
// nameserver of /etc/resolv.conf.
func New(addr string) (*Resolver, error) {
	if addr == "" {
		var err error
		if addr, err = systemNameserver("/etc/resolv.conf"); err != nil {
			return nil, err
		}
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("resolver address %q: %w", addr, err)
	}
	r := &Resolver{addr: ap, timeout: 5 * time.Second, now: time.Now}
	if ap.Addr().IsLoopback() {
		r.pool = newUDPPool(ap.String())
	}
	return r, nil
}

// Addr returns the resolver's address (the inbound check asks it again
// with Checking Disabled to tell a bogus answer from a broken zone).
func (r *Resolver) Addr() netip.AddrPort { return r.addr }

// TrustsAD tells whether the AD bit from this resolver is believed (for
// names outside the trust anchors, which are validated here).
func (r *Resolver) TrustsAD() bool { return r.addr.Addr().IsLoopback() }

// Answer is the result of one query.
type Answer struct {
	Msg *dns.Msg
	// Secure is the AD bit, if the resolver is trusted (TrustsAD).
	Secure bool
}

// Query asks name/qtype with DNSSEC OK, over UDP with a retry over TCP when
// the answer is truncated. NXDOMAIN and SERVFAIL are returned as errors
// wrapping ErrNXDomain and ErrServFail, with the answer.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (Answer, error) {
	in, err := r.exchange(ctx, name, qtype)
	if err != nil {
		return Answer{}, err
	}
	a := Answer{Msg: in, Secure: in.AuthenticatedData && r.TrustsAD()}
	if an := r.anchorFor(name); an != nil && (in.Rcode == dns.RcodeSuccess || in.Rcode == dns.RcodeNameError) {
		// Under a trust anchor we validate ourselves and ignore AD.
		if err := r.validate(ctx, an, name, qtype, in, r.now()); err != nil {
			return Answer{Msg: in}, err
		}
		a.Secure = true
	}
	switch in.Rcode {
	case dns.RcodeSuccess:
		return a, nil
	case dns.RcodeNameError:
		return a, fmt.Errorf("%s: %w", name, ErrNXDomain)
	case dns.RcodeServerFailure:
		return a, fmt.Errorf("%s %s: %w", name, dns.TypeToString[qtype], ErrServFail)
	}
	return a, fmt.Errorf("resolver: %s %s: rcode %s", name, dns.TypeToString[qtype], dns.RcodeToString[in.Rcode])
}

// LookupTXT returns the TXT records at name, each record's strings joined
// (RFC 7208 §3.3, RFC 6376 §3.6.2.2). A missing name or type gives no
// records and no error wrapping anything but ErrNXDomain.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	a, err := r.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, rr := range a.Msg.Answer {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out, nil
}

// systemNameserver returns the first nameserver of a resolv.conf as ip:53.
func systemNameserver(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoResolver, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "nameserver" {
			a, err := netip.ParseAddr(fields[1])
			if err != nil {
				continue
			}
			return net.JoinHostPort(a.String(), "53"), nil
		}
	}
	return "", fmt.Errorf("%w in %s", ErrNoResolver, path)
}
