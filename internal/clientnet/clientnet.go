// Package clientnet makes a client address into its network: the unit in
// which mailsec counts "one client" (smtp.client_prefix_v4/v6), because a
// provider's MTAs and resolvers share a network and spoofed or rotating
// addresses of one attacker mostly do too.
package clientnet

import "net/netip"

// The default client network sizes (smtp.client_prefix_v4/v6): a /24 is
// the smallest IPv4 block routed on the Internet, a /48 the usual IPv6
// site assignment (RFC 6177).
const (
	DefaultBitsV4 = 24
	DefaultBitsV6 = 48
)

// Prefix returns the network of a: its first bitsV4 bits for IPv4 (an
// IPv4-mapped IPv6 address counts as IPv4), bitsV6 for IPv6. ok is false
// for an invalid address or a bit count out of range.
func Prefix(a netip.Addr, bitsV4, bitsV6 int) (p netip.Prefix, ok bool) {
	a = a.Unmap()
	bits := bitsV6
	if a.Is4() {
		bits = bitsV4
	}
	p, err := a.Prefix(bits)
	return p, err == nil && a.IsValid()
}

// Key is Prefix in text form ("192.0.2.0/24"), for counting; "unknown"
// for an address Prefix cannot take.
func Key(a netip.Addr, bitsV4, bitsV6 int) string {
	p, ok := Prefix(a, bitsV4, bitsV6)
	if !ok {
		return "unknown"
	}
	return p.String()
}
