// Package dnszone holds the service's authoritative zones in memory and
// answers queries against them, with authenticated denial of existence.
//
// A Zone is an immutable snapshot: the MX rotation builds a new one per
// rotation step instead of editing records in place, so a query never sees
// half a change. Denial of existence uses a full NSEC chain (RFC 4034 §4,
// RFC 4035 §3.1.3) computed when the snapshot is built. NSEC rather than
// NSEC3 because the zones hold nothing secret (their content is what every
// test sender is meant to see) and NSEC keeps `mailsec dns dump` verifiable
// by any tool; the zone is walkable on purpose.
package dnszone

import (
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnssec"
)

// ErrBadZone is wrapped by every error about zone content.
var ErrBadZone = errors.New("bad zone data")

// Zone is one authoritative zone snapshot. Its methods are safe for
// concurrent use; nothing in it changes after New.
type Zone struct {
	origin string   // canonical (lower-case, fully qualified)
	soa    *dns.SOA // apex SOA
	negSOA *dns.SOA // the SOA as sent in negative answers (TTL: NegativeTTL)
	names  []string // owners with data, canonical order (RFC 4034 §6.1)
	nodes  map[string]*node
	ents   map[string]bool // empty non-terminals (RFC 4592 §2.2.2)
	signed bool
	broken map[string]bool // owners whose signatures are made invalid on purpose
}

type node struct {
	name   string
	types  []uint16 // sorted
	rrsets map[uint16][]dns.RR
	nsec   *dns.NSEC
}

// Options adjusts how a zone snapshot is built.
type Options struct {
	// Signed adds the NSEC chain; the caller signs answers with a
	// dnssec.Signer and publishes the DNSKEY among the records.
	Signed bool
	// Broken lists owner names whose RRSIGs are to be corrupted.
	Broken []string
}

// New builds a zone from its records. Every record must lie in origin, the
// apex must hold exactly one SOA and at least one NS, and CNAMEs may not
// share an owner with other data (RFC 1034 §3.6.2). Records of one owner and
// type form an RRset and must share one TTL (RFC 2181 §5.2).
func New(origin string, records []dns.RR, opt Options) (*Zone, error) {
	origin = dns.CanonicalName(origin)
	z := &Zone{origin: origin, nodes: map[string]*node{}, ents: map[string]bool{}, signed: opt.Signed, broken: map[string]bool{}}
	for _, b := range opt.Broken {
		z.broken[dns.CanonicalName(b)] = true
	}
	for _, rr := range records {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if !dns.IsSubDomain(origin, name) {
			return nil, fmt.Errorf("%w: %s is outside %s", ErrBadZone, h.Name, origin)
		}
		if h.Class != dns.ClassINET {
			return nil, fmt.Errorf("%w: %s has class %d", ErrBadZone, h.Name, h.Class)
		}
		rr = dns.Copy(rr)
		rr.Header().Name = name
		n := z.nodes[name]
		if n == nil {
			n = &node{name: name, rrsets: map[uint16][]dns.RR{}}
			z.nodes[name] = n
		}
		set := n.rrsets[h.Rrtype]
		if len(set) > 0 && set[0].Header().Ttl != h.Ttl {
			return nil, fmt.Errorf("%w: %s/%s has differing TTLs", ErrBadZone, name, dns.TypeToString[h.Rrtype])
		}
		n.rrsets[h.Rrtype] = append(set, rr)
	}
	apex := z.nodes[origin]
	if apex == nil || len(apex.rrsets[dns.TypeSOA]) != 1 || len(apex.rrsets[dns.TypeNS]) == 0 {
		return nil, fmt.Errorf("%w: %s needs one SOA and an NS set at its apex", ErrBadZone, origin)
	}
	z.soa = apex.rrsets[dns.TypeSOA][0].(*dns.SOA)
	// RFC 2308 §3: the SOA of a negative answer carries the negative TTL,
	// the lesser of its own TTL and MINIMUM, so resolvers cache the
	// negative answer no longer than that.
	z.negSOA = dns.Copy(z.soa).(*dns.SOA)
	z.negSOA.Hdr.Ttl = z.NegativeTTL()
	for name, n := range z.nodes {
		if _, ok := n.rrsets[dns.TypeCNAME]; ok && len(n.rrsets) > 1 {
			return nil, fmt.Errorf("%w: %s has a CNAME and other data", ErrBadZone, name)
		}
		for t := range n.rrsets {
			n.types = append(n.types, t)
		}
		slices.Sort(n.types)
		z.names = append(z.names, name)
		// Every ancestor between the owner and the apex exists, as an
		// empty non-terminal if it has no data of its own.
		for p := parent(name); p != "" && p != origin && dns.IsSubDomain(origin, p); p = parent(p) {
			if _, ok := z.nodes[p]; !ok {
				z.ents[p] = true
			}
		}
	}
	for p := range z.ents {
		if _, ok := z.nodes[p]; ok {
			delete(z.ents, p)
		}
	}
	sort.Slice(z.names, func(i, j int) bool { return CompareCanonical(z.names[i], z.names[j]) < 0 })
	if opt.Signed {
		z.buildNSECChain()
	}
	return z, nil
}

// buildNSECChain links every owner to the next in canonical order, the last
// back to the apex, each with the bitmap of its types plus RRSIG and NSEC
// (RFC 4034 §4.1). Empty non-terminals get no NSEC of their own: the NSEC
// before them, whose next name lies below them, proves they exist
// (RFC 4035 §3.1.3.2 and Unbound's ENT handling).
func (z *Zone) buildNSECChain() {
	ttl := z.NegativeTTL()
	for i, name := range z.names {
		n := z.nodes[name]
		next := z.names[(i+1)%len(z.names)]
		types := append(slices.Clone(n.types), dns.TypeRRSIG, dns.TypeNSEC)
		slices.Sort(types)
		n.nsec = &dns.NSEC{
			Hdr:        dns.RR_Header{Name: name, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
			NextDomain: next,
			TypeBitMap: types,
		}
	}
}

// Origin returns the zone's apex name, canonical.
func (z *Zone) Origin() string { return z.origin }

// SOA returns the apex SOA record.
func (z *Zone) SOA() *dns.SOA { return z.soa }

// Signed tells whether the zone carries DNSSEC denial records.
func (z *Zone) Signed() bool { return z.signed }

// SignatureBroken tells whether RRSIGs over owner name are to be corrupted.
func (z *Zone) SignatureBroken(name string) bool { return z.broken[name] }

// NegativeTTL is the TTL of negative answers and NSEC records: the lesser
// of the SOA's TTL and its MINIMUM field (RFC 2308 §5, RFC 9077 §3).
func (z *Zone) NegativeTTL() uint32 { return min(z.soa.Hdr.Ttl, z.soa.Minttl) }

// RRsets returns every RRset of the zone, NSEC records included, in
// canonical order of owner and then type: the zone file order of
// `mailsec dns dump`.
func (z *Zone) RRsets() [][]dns.RR {
	var out [][]dns.RR
	for _, name := range z.names {
		n := z.nodes[name]
		// SOA first at the apex, as zone files expect.
		if set, ok := n.rrsets[dns.TypeSOA]; ok {
			out = append(out, set)
		}
		for _, t := range n.types {
			if t != dns.TypeSOA {
				out = append(out, n.rrsets[t])
			}
		}
		if n.nsec != nil {
			out = append(out, []dns.RR{n.nsec})
		}
	}
	return out
}

// Result is the content of an answer, in RRsets so that the caller can sign
// each one. Records are shared with the zone: callers must copy before
// changing them.
type Result struct {
	Rcode     int
	Answer    [][]dns.RR
	Authority [][]dns.RR
	// Additional holds the addresses of the name servers an NS answer
	// names, where they lie in the zone: optional data a server drops
	// when it does not fit (RFC 2181 §9).
	Additional [][]dns.RR
}

// Lookup answers qname/qtype from the zone. qname must lie in the zone (see
// Contains). With dnssec set, negative answers carry their NSEC proofs; the
// caller adds RRSIGs to every RRset.
func (z *Zone) Lookup(qname string, qtype uint16, dnssec bool) Result {
	qname = dns.CanonicalName(qname)
	withProof := dnssec && z.signed
	n, exists := z.nodes[qname]
	switch {
	case exists:
		if qtype == dns.TypeANY || qtype == dns.TypeRRSIG {
			// RFC 8482 §4.1: answer ANY with one RRset rather than all.
			// An RRSIG query gets the same: the caller adds the RRSIG.
			return Result{Rcode: dns.RcodeSuccess, Answer: [][]dns.RR{n.rrsets[n.types[0]]}}
		}
		if set, ok := n.rrsets[qtype]; ok {
			r := Result{Rcode: dns.RcodeSuccess, Answer: [][]dns.RR{set}}
			if qtype == dns.TypeNS {
				r.Additional = z.nameServerAddresses(set)
			}
			return r
		}
		if qtype == dns.TypeNSEC && n.nsec != nil && dnssec {
			return Result{Rcode: dns.RcodeSuccess, Answer: [][]dns.RR{{n.nsec}}}
		}
		if cname, ok := n.rrsets[dns.TypeCNAME]; ok {
			// No chasing: the target may lie outside our zones.
			return Result{Rcode: dns.RcodeSuccess, Answer: [][]dns.RR{cname}}
		}
		// NODATA: the name's own NSEC shows the type is absent (RFC 4035 §3.1.3.1).
		r := Result{Rcode: dns.RcodeSuccess, Authority: [][]dns.RR{{z.negSOA}}}
		if withProof {
			r.Authority = append(r.Authority, []dns.RR{n.nsec})
		}
		return r
	case z.ents[qname]:
		// NODATA at an empty non-terminal: the covering NSEC, whose next
		// name lies below qname, proves the name exists without data.
		r := Result{Rcode: dns.RcodeSuccess, Authority: [][]dns.RR{{z.negSOA}}}
		if withProof {
			r.Authority = append(r.Authority, []dns.RR{z.covering(qname)})
		}
		return r
	}
	// NXDOMAIN: one NSEC covers qname, one covers the wildcard at the
	// closest encloser, proving no wildcard could have matched
	// (RFC 4035 §3.1.3.2). They may be the same record.
	r := Result{Rcode: dns.RcodeNameError, Authority: [][]dns.RR{{z.negSOA}}}
	if withProof {
		cover := z.covering(qname)
		wild := z.covering("*." + z.closestEncloser(qname))
		r.Authority = append(r.Authority, []dns.RR{cover})
		if wild != cover {
			r.Authority = append(r.Authority, []dns.RR{wild})
		}
	}
	return r
}

// nameServerAddresses returns the A and AAAA RRsets of the NS targets that
// lie in the zone, in the order of the NS RRset: RFC 1035 §3.3.11 and RFC
// 1034 §4.3.2 step 6 (additional section processing). A resolver priming
// the zone (Unbound's stub-prime, a root-to-leaf walk that re-asks the
// apex NS) then learns every server's address from one answer; without
// them it looks each name up on its own and, in the cluster lab, sent its
// next query to the first address that came back, a dead node's, with a
// 25 s time-out (docs/cluster.md "Name servers"). MX answers get no
// additional section on purpose: a test's evidence is the sender's own
// A/AAAA look-ups of the hosts (RFC 2181 §5.4.1 ranks additional data
// below answers, but a resolver is free to use it).
func (z *Zone) nameServerAddresses(set []dns.RR) [][]dns.RR {
	var out [][]dns.RR
	seen := map[string]bool{}
	for _, rr := range set {
		ns, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		// z.nodes holds the zone's own names only: a target elsewhere
		// has no node here.
		target := dns.CanonicalName(ns.Ns)
		n, ok := z.nodes[target]
		if !ok || seen[target] {
			continue
		}
		seen[target] = true
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			if addrs, ok := n.rrsets[t]; ok {
				out = append(out, addrs)
			}
		}
	}
	return out
}

// Contains tells whether qname lies at or below the zone's apex.
func (z *Zone) Contains(qname string) bool {
	return dns.IsSubDomain(z.origin, dns.CanonicalName(qname))
}

// covering returns the NSEC of the last owner that sorts before name: its
// span (owner, next) contains name.
func (z *Zone) covering(name string) *dns.NSEC {
	i := sort.Search(len(z.names), func(i int) bool { return CompareCanonical(z.names[i], name) >= 0 })
	// names[0] is the apex, which sorts before every name below it.
	if i == 0 {
		i = len(z.names)
	}
	return z.nodes[z.names[i-1]].nsec
}

// closestEncloser returns the longest existing ancestor of a name that does
// not exist (RFC 5155 §1.3 terminology; the apex at worst).
func (z *Zone) closestEncloser(name string) string {
	for p := parent(name); p != ""; p = parent(p) {
		if _, ok := z.nodes[p]; ok || z.ents[p] {
			return p
		}
		if p == z.origin {
			return p
		}
	}
	return z.origin
}

// parent returns name without its first label, "" for the root.
func parent(name string) string {
	if name == "." || name == "" {
		return ""
	}
	off, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[off:]
}

// CompareCanonical orders two domain names canonically (RFC 4034 §6.1);
// see dnssec.CompareCanonical.
func CompareCanonical(a, b string) int { return dnssec.CompareCanonical(a, b) }
