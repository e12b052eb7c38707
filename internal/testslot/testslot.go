// Package testslot names the test slots: reusable names under the test
// zones A and B that belong to one test at a time (docs/dns.md "Test
// slots"). Slot n is the label "s" followed by n in three digits; under it
// lie the slot's recipient domain (s001.A, s001.B), its MX hosts
// (mx3.s001.A … mx6.s001.A, mx7.s001.B) and its MTA-STS names
// (mta-sts.s001.A, _mta-sts.s001.A). Every DNS look-up, policy fetch and
// TLS-RPT report for those names carries the slot, and through it the test
// that holds the slot.
//
// The package only makes and reads names; which test holds a slot is the
// store's (store.CreateTest with slot rules).
package testslot

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/persona"
)

// MaxCount is the largest pool. One certificate then covers a host across
// all slots and the shared name: Let's Encrypt accepts at most 100 names
// per certificate (docs/certificates.md "Test slots").
const MaxCount = 99

// PolicyHostLabel is the first label of an MTA-STS policy host (RFC 8461
// §3.3: https://mta-sts.<domain>/.well-known/mta-sts.txt).
const PolicyHostLabel = "mta-sts"

// Pool is a pool of test slots under the zones A and B.
type Pool struct {
	ZoneA, ZoneB string // the test zones, any case, with or without the root dot
	Count        int    // slots 1..Count; 0: no slots
}

// Label returns the first label of slot n: "s001".
func Label(n int) string { return fmt.Sprintf("s%03d", n) }

// Slots returns the slot numbers of the pool, 1..Count.
func (p Pool) Slots() []int {
	out := make([]int, 0, p.Count)
	for n := 1; n <= p.Count; n++ {
		out = append(out, n)
	}
	return out
}

// zone returns the canonical name (RFC 4343 lower case, no root dot) of z.
func (p Pool) zone(z persona.Zone) string {
	if z == persona.ZoneB {
		return dnsname.Canonical(p.ZoneB)
	}
	return dnsname.Canonical(p.ZoneA)
}

// Domain returns the recipient domain of slot n in zone z: "s001.<zone>";
// slot 0 is the shared name, the zone itself.
func (p Pool) Domain(n int, z persona.Zone) string {
	if n == 0 {
		return p.zone(z)
	}
	return Label(n) + "." + p.zone(z)
}

// Host returns host label's name in slot n of zone z ("mx4.s001.<zone>");
// slot 0 gives the shared name ("mx4.<zone>").
func (p Pool) Host(label string, n int, z persona.Zone) string {
	return label + "." + p.Domain(n, z)
}

// Address returns the address of the test with token id in slot n (0: the
// shared names) of zone z: "t-<id>@s001.<zone>".
func (p Pool) Address(id string, n int, z persona.Zone) string {
	return "t-" + id + "@" + p.Domain(n, z)
}

// Exhausted is what a test without a slot is told: it uses the shared
// names, whose look-ups cannot be told apart from other tests'.
const Exhausted = "every test slot is in use: this test uses the shared names, so DNS look-ups and policy fetches are tied to it by the sender's network only"

// Addresses are the addresses of a test as the API and the command line
// show them.
type Addresses struct {
	A, B             string // where to send the test mail: the slot's domains, else the shared names
	SharedA, SharedB string // the shared names' addresses, which reach the test too
	Slot             string // the slot's label ("s001"), "" for none
	Note             string // why a test without a slot has none (Exhausted)
}

// AddressesOf returns the addresses of the test with token id holding slot
// n (0: none). A token test without a slot in a pool that has slots found
// them all in use; a fixed-address test never holds one.
func (p Pool) AddressesOf(id string, n int, token bool) Addresses {
	a := Addresses{A: p.Address(id, n, persona.ZoneA), B: p.Address(id, n, persona.ZoneB),
		SharedA: p.Address(id, 0, persona.ZoneA), SharedB: p.Address(id, 0, persona.ZoneB)}
	switch {
	case n != 0:
		a.Slot = Label(n)
	case p.Count > 0 && token:
		a.Note = Exhausted
	}
	return a
}

// TLSANames returns the TLSA name of host label in slot n of zone z and
// the empty-or-absent "_tcp" name above it, fully qualified as the query
// log stores them: "_25._tcp.mx7.s001.<zone>." (RFC 7672 §2.2.3) and
// "_tcp.mx7.s001.<zone>.", which a resolver minimising query names asks
// first (RFC 9156).
func (p Pool) TLSANames(label string, n int, z persona.Zone) []string {
	host := p.Host(label, n, z) + "."
	return []string{"_25._tcp." + host, "_tcp." + host}
}

// PolicyHost returns the MTA-STS policy host of slot n in zone A
// ("mta-sts.s001.<zone A>"); slot 0 gives zone A's own.
func (p Pool) PolicyHost(n int) string { return p.Host(PolicyHostLabel, n, persona.ZoneA) }

// Hosts returns host label's name in every slot of the pool, in slot order
// (the shared name not included).
func (p Pool) Hosts(label string, z persona.Zone) []string {
	out := make([]string, 0, p.Count)
	for _, n := range p.Slots() {
		out = append(out, p.Host(label, n, z))
	}
	return out
}

// Parse tells whether name (any case, root dot optional) is the domain of
// a slot of the pool, and which slot and zone.
func (p Pool) Parse(name string) (n int, z persona.Zone, ok bool) {
	name = dnsname.Canonical(name)
	label, rest, found := strings.Cut(name, ".")
	if !found {
		return 0, 0, false
	}
	switch rest {
	case p.zone(persona.ZoneA):
		z = persona.ZoneA
	case p.zone(persona.ZoneB):
		z = persona.ZoneB
	default:
		return 0, 0, false
	}
	n, ok = ParseLabel(label)
	if !ok || n > p.Count {
		return 0, 0, false
	}
	return n, z, true
}

// ParseHost splits a host name below a slot ("mx4.s001.<zone>") into its
// first label, slot and zone.
func (p Pool) ParseHost(name string) (label string, n int, z persona.Zone, ok bool) {
	label, domain, found := strings.Cut(dnsname.Canonical(name), ".")
	if !found || label == "" {
		return "", 0, 0, false
	}
	n, z, ok = p.Parse(domain)
	return label, n, z, ok
}

// Names returns the names a sender's resolver looks up for a test in slot
// n, fully qualified and lower-case as the query log stores them: the
// slot's domains in A and B (MX), their MX hosts (A/AAAA), the hosts' TLSA
// names (_25._tcp, RFC 7672 §2.2.3) and the empty non-terminals above them
// (_tcp, which a resolver minimising query names asks, RFC 9156), the
// MTA-STS and TLS-RPT names of both domains (_mta-sts, mta-sts,
// _smtp._tls; B's do not exist, and a look-up there is still the test's).
// Every name lies below the slot's label, so a look-up of one belongs to
// the test holding the slot.
func (p Pool) Names(n int) []string {
	var out []string
	for _, z := range []persona.Zone{persona.ZoneA, persona.ZoneB} {
		domain := p.Domain(n, z) + "."
		out = append(out, domain, "_mta-sts."+domain, PolicyHostLabel+"."+domain, "_tls."+domain, "_smtp._tls."+domain)
		for _, h := range persona.MXHosts(z) {
			out = append(out, h.Host+"."+domain)
			out = append(out, p.TLSANames(h.Host, n, z)...)
		}
	}
	return out
}

// ParseLabel reads a test slot's label "sNNN" (exactly three digits, 001..999).
func ParseLabel(label string) (int, bool) {
	if len(label) != 4 || label[0] != 's' {
		return 0, false
	}
	n := 0
	for _, c := range []byte(label[1:]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n > 0
}

// IPv6HostLabel is the first label of zone A's IPv6-only MX host
// (zones.host_addresses.mx-v6; docs/dns.md "IPv6-only host"):
// "mx-v6.s001.<zone A>".
const IPv6HostLabel = "mx-v6"

// HostAddr returns the address of slot n of a host that has one address
// per slot (the IPv6-only MX host, docs/dns.md "IPv6-only host"): base
// plus n, slot 0 (the shared names) being base itself. A connection to
// that address names the slot, and so the test holding it, although the
// connection names no recipient. ok is false when base+n leaves base's
// family (an overflow past the last address).
func HostAddr(base netip.Addr, n int) (netip.Addr, bool) {
	a := base
	for range n {
		if a = a.Next(); !a.IsValid() {
			return netip.Addr{}, false
		}
	}
	return a, true
}

// HostAddrs returns the addresses of slots 0..Count of a host with one
// address per slot (HostAddr), those that exist.
func (p Pool) HostAddrs(base netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, p.Count+1)
	for n := 0; n <= p.Count; n++ {
		if a, ok := HostAddr(base, n); ok {
			out = append(out, a)
		}
	}
	return out
}
