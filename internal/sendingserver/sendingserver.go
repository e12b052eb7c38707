// Package sendingserver reads the sending server a user may name when
// creating a test (web form, API, `mailsec test new -sending-server`): an
// IP address or a host name, which is resolved once, at creation, through
// the service's own resolver (internal/resolver) to its addresses. The
// untied connections from those addresses are the test's evidence
// (internal/evidence, docs/smtp.md "Tying connections to a test"): a
// sender that refuses every certificate before RCPT TO never names its
// test, and this is how a user tells which connections are theirs.
package sendingserver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// Errors callers tell apart.
var (
	// ErrInvalid is wrapped by the error for an input that names no
	// sending server: not an address or host name, an address no server
	// can have, or a name without addresses. It is the user's to fix
	// (HTTP 400).
	ErrInvalid = errors.New("sendingserver: not a sending server")
	// ErrLookup is wrapped when the name could not be resolved for a
	// reason that is not the user's (a failing resolver, a timeout).
	ErrLookup = errors.New("sendingserver: could not resolve")
)

// Timeout bounds the resolution of a host name (both look-ups together).
const Timeout = 5 * time.Second

// MaxAddrs bounds the addresses kept of one host name: the first, A
// records before AAAA.
const MaxAddrs = store.MaxSendingAddrs

// Querier asks DNS questions: internal/resolver.Resolver, the service's
// own resolver.
type Querier interface {
	Query(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
}

// Server is a sending server as stored with a test (store.Test
// SendingServer and SendingAddrs).
type Server struct {
	Name  string       // the address or the host name (A-labels, lower case), normalised
	Addrs []netip.Addr // unmapped; the address itself for an address
}

// Resolve reads input as a sending server. An empty input (after white
// space) is no sending server: the zero Server and no error. An IP address
// stands for itself; a host name is resolved through q to its A and AAAA
// records, at most MaxAddrs of them, within Timeout.
func Resolve(ctx context.Context, q Querier, input string) (Server, error) {
	s := strings.TrimSpace(input)
	if s == "" {
		return Server{}, nil
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		a = a.Unmap()
		if err := usable(a); err != nil {
			return Server{}, err
		}
		return Server{Name: a.String(), Addrs: []netip.Addr{a}}, nil
	}
	name, err := dnsname.NormalizeDomain(s)
	if err != nil {
		return Server{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if q == nil {
		return Server{}, fmt.Errorf("%w %s: %w", ErrLookup, name, resolver.ErrNoResolver)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var addrs []netip.Addr
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		found, err := lookup(ctx, q, name, qtype)
		if errors.Is(err, resolver.ErrNXDomain) {
			return Server{}, fmt.Errorf("%w: the host name %s does not exist", ErrInvalid, name)
		}
		if err != nil {
			return Server{}, fmt.Errorf("%w %s: %w", ErrLookup, name, err)
		}
		for _, a := range found {
			if len(addrs) < MaxAddrs && usable(a) == nil && !slices.Contains(addrs, a) {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		return Server{}, fmt.Errorf("%w: the host name %s has no IP address (A or AAAA record)", ErrInvalid, name)
	}
	return Server{Name: name, Addrs: addrs}, nil
}

// lookup returns the addresses of type qtype in the answer for name (at
// the end of a CNAME chain the resolver followed).
func lookup(ctx context.Context, q Querier, name string, qtype uint16) ([]netip.Addr, error) {
	ans, err := q.Query(ctx, dns.Fqdn(name), qtype)
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, rr := range ans.Msg.Answer {
		var ip []byte
		switch r := rr.(type) {
		case *dns.A:
			ip = r.A
		case *dns.AAAA:
			ip = r.AAAA
		default:
			continue
		}
		if a, ok := netip.AddrFromSlice(ip); ok && rr.Header().Rrtype == qtype {
			out = append(out, a.Unmap())
		}
	}
	return out, nil
}

// usable refuses the addresses no mail server connects from.
func usable(a netip.Addr) error {
	switch {
	case a.Zone() != "":
		return fmt.Errorf("%w: %s: an address with a zone is only meaningful on one host", ErrInvalid, untrusted.Printable(a.String(), 60))
	case a.IsUnspecified(), a.IsMulticast():
		return fmt.Errorf("%w: %s is not the address of a mail server", ErrInvalid, a)
	}
	return nil
}
