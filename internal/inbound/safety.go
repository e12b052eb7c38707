package inbound

import (
	"errors"
	"net/netip"
)

// ErrRefused is wrapped by the error for a target the check will not
// contact: a private, loopback, link-local, CGNAT, multicast or otherwise
// reserved address, without Options.AllowPrivate. A public service that
// connected wherever a domain's MX records point could be used to probe
// the operator's own network (issue 6, "Safety").
var ErrRefused = errors.New("inbound: private or reserved address refused")

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

// IsPublic tells whether a may be contacted without AllowPrivate: not
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
