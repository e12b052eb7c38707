package verdict

import (
	"net/netip"
	"slices"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/store"
)

// splitLocal separates the connections to the local addresses addrs (a
// host that is no persona: the broken host, the IPv6-only host) from the
// rest, keeping the order.
func splitLocal(conns []store.SMTPConnection, addrs []netip.Addr) (rest, at []store.SMTPConnection) {
	if len(addrs) == 0 {
		return conns, nil
	}
	for _, c := range conns {
		if slices.Contains(addrs, c.Local.Addr().Unmap()) {
			at = append(at, c)
		} else {
			rest = append(rest, c)
		}
	}
	return rest, at
}

// ipv6Fact is FactUsesIPv6.
//
// Any connection from an IPv6 address proves "yes". With the IPv6-only MX
// host deployed (obs.IPv6HostAddrs; docs/dns.md "IPv6-only host": only an
// AAAA record, ranked after the broken host and before the rotation), a
// sender that delivers over IPv6 connects there in every attempt toward A
// (RFC 5321 §5.1), and one that does not goes past it to the rotation's
// hosts:
//   - a connection to it (answered 421 before the greeting): yes, proven;
//   - its resolver looked up the host in the test's slot (A, or AAAA), and
//     the sender connected over IPv4 to A's hosts ranked after it since,
//     never to it: no, proven; the evidence is those connections. The
//     look-up is what makes it proof: the sender saw the host and went
//     past it, where a sender that never asked (a policy or MX set cached
//     from before the host) shows nothing about IPv6;
//   - otherwise unknown (a test without a slot included: its connections
//     to the shared host cannot be told from other tests').
func ipv6Fact(obs Observations, conns, v6host []store.SMTPConnection) Fact {
	var v6 []int64
	for _, c := range v6host {
		v6 = append(v6, c.ID)
	}
	for _, c := range conns {
		if c.Client.Addr().Is6() && !c.Client.Addr().Is4In6() {
			v6 = append(v6, c.ID)
		}
	}
	switch {
	case len(v6host) > 0:
		return Fact{Value: true, Confidence: Proven, Why: "connected to the MX host reachable over IPv6 only", Evidence: uniq(v6)}
	case len(v6) > 0:
		return Fact{Value: true, Confidence: Proven, Why: "connected over IPv6", Evidence: uniq(v6)}
	case len(obs.IPv6HostAddrs) == 0:
		return Fact{Confidence: Unknown, Why: "all connections over IPv4", Settle: "an MX reachable over IPv6 only"}
	}
	asked, lookedUp := firstLookUp(obs.DNSLookups, obs.IPv6HostNames)
	_, after := towardA(conns, asked, lookedUp)
	if len(after) > 0 {
		aaaa := slices.ContainsFunc(obs.DNSLookups, func(q store.DNSQuery) bool {
			return q.Type == dns.TypeAAAA && slices.Contains(obs.IPv6HostNames, q.Name)
		})
		f := Fact{Value: false, Confidence: Proven, Evidence: uniq(after),
			Why: "its resolver looked up the MX host reachable over IPv6 only, and the sender went on over IPv4 to the hosts ranked after it without ever connecting to it"}
		if !aaaa {
			f.Why += " (it never asked for the host's AAAA record: IPv4 only)"
		}
		return f
	}
	return Fact{Confidence: Unknown, Why: "no delivery attempt toward A's hosts seen since the MX host reachable over IPv6 only was looked up",
		Settle: "a delivery attempt toward A (a sender with IPv6 connects to the IPv6-only MX host first)"}
}
