// Package netguard keeps the service's outgoing connections away from
// addresses that are not public: loopback, private (RFC 1918, RFC 4193),
// CGNAT, link-local, multicast, unspecified, documentation and the other
// special-purpose ranges of the IANA registries (RFC 6890), IPv4-mapped
// forms included.
//
// The result-mail sender and the inbound check go wherever a tester's or
// a user's DNS points them (MX hosts, mta-sts.<domain>). Without a guard
// a public service could be made to probe or talk to the operator's own
// network (server-side request forgery, issue 16). The guard judges the
// address actually connected to: Guard.Control runs in net.Dialer after
// name resolution, so a name that answers a public address to one look-up
// and a private one to the next (DNS rebinding) is still refused.
//
// Guard.Allow names ranges that are contacted although not public: the
// lab and tests, which run everything on 127.0.0.0/8
// (network.allow_destinations).
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// ErrNotPublic is wrapped by the error for a refused destination.
var ErrNotPublic = errors.New("not a public address")

// Guard refuses connections to addresses that are neither public nor in
// Allow. The zero Guard allows public addresses only.
type Guard struct {
	// Allow are ranges contacted although not public (a lab on loopback).
	Allow []netip.Prefix
}

// Check returns nil if a may be contacted, else an error wrapping
// ErrNotPublic that names a ("destination 10.0.0.1 is not a public
// address").
func (g Guard) Check(a netip.Addr) error {
	a = a.Unmap()
	if IsPublic(a) {
		return nil
	}
	for _, p := range g.Allow {
		if p.Contains(a) {
			return nil
		}
	}
	return fmt.Errorf("destination %s is %w", a, ErrNotPublic)
}

// CheckAddress is Check of an "ip:port" or "ip" string, as a dialer or
// net.Dialer.Control sees it. A host that is not an IP address is
// refused: the guard cannot judge a name.
func (g Guard) CheckAddress(address string) error {
	host := address
	if h, _, err := net.SplitHostPort(address); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("destination %q is not an IP address: %w", host, ErrNotPublic)
	}
	return g.Check(a)
}

// Control is a net.Dialer Control function: it runs after name
// resolution, just before the socket connects, with the address in
// numeric form.
func (g Guard) Control(_, address string, _ syscall.RawConn) error {
	return g.CheckAddress(address)
}

// DialFunc opens a connection, as net.Dialer.DialContext.
type DialFunc = func(ctx context.Context, network, address string) (net.Conn, error)

// Dial wraps dial so that a destination the guard refuses is not dialled.
// Use it around dial hooks that are not a net.Dialer with Control (they
// may connect somewhere else, as tests do, but are asked for the address
// the caller means).
func (g Guard) Dial(dial DialFunc) DialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if err := g.CheckAddress(address); err != nil {
			return nil, err
		}
		return dial(ctx, network, address)
	}
}

// Dialer returns d with the guard as its Control function (d's own
// Control, if any, runs after it).
func (g Guard) Dialer(d net.Dialer) *net.Dialer {
	prev := d.Control
	d.Control = func(network, address string, c syscall.RawConn) error {
		if err := g.Control(network, address, c); err != nil {
			return err
		}
		if prev != nil {
			return prev(network, address, c)
		}
		return nil
	}
	return &d
}

// reserved are special-purpose ranges beyond what net/netip's predicates
// cover (IANA IPv4 and IPv6 Special-Purpose Address Registries, RFC 6890
// and its updates). None of them holds a public mail server.
var reserved = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",       // "this network" (RFC 791)
		"100.64.0.0/10",   // shared address space, CGNAT (RFC 6598)
		"192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
		"192.0.2.0/24",    // TEST-NET-1 (RFC 5737)
		"192.31.196.0/24", // AS112-v4 (RFC 7535)
		"192.52.193.0/24", // AMT (RFC 7450)
		"192.88.99.0/24",  // 6to4 relay anycast, deprecated (RFC 7526)
		"192.175.48.0/24", // direct delegation AS112 (RFC 7534)
		"198.18.0.0/15",   // benchmarking (RFC 2544)
		"198.51.100.0/24", // TEST-NET-2 (RFC 5737)
		"203.0.113.0/24",  // TEST-NET-3 (RFC 5737)
		"240.0.0.0/4",     // reserved (RFC 1112), and 255.255.255.255
		"::/128",          // unspecified
		"::ffff:0:0/96",   // IPv4-mapped: checked as IPv4 after Unmap
		"64:ff9b:1::/48",  // local-use IPv4/IPv6 translation (RFC 8215)
		"100::/64",        // discard-only (RFC 6666)
		"2001::/23",       // IETF protocol assignments (RFC 2928), Teredo, ORCHIDv2 …
		"2001:db8::/32",   // documentation (RFC 3849)
		"2002::/16",       // 6to4: tunnels to any IPv4 address (RFC 3056)
		"3fff::/20",       // documentation (RFC 9637)
		"5f00::/16",       // SRv6 SIDs (RFC 9602)
		"fc00::/7",        // unique local (RFC 4193)
		"fe80::/10",       // link-local
		"fec0::/10",       // site-local, deprecated (RFC 3879)
		"ff00::/8",        // multicast
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// IsPublic tells whether a is a public unicast address: not
// unspecified, loopback, private (RFC 1918, RFC 4193), link-local,
// multicast, CGNAT, documentation or another special-purpose range.
// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
func IsPublic(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsPrivate() || a.IsMulticast() ||
		a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsInterfaceLocalMulticast() {
		return false
	}
	if a.Zone() != "" {
		return false // a scoped address names a local link
	}
	if nat64.Contains(a) {
		// RFC 6052: the well-known NAT64 prefix carries an IPv4 address
		// in its last 32 bits; a NAT64 gateway would reach that one.
		b := a.As16()
		return IsPublic(netip.AddrFrom4([4]byte(b[12:])))
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
