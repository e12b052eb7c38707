package dnszone

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/testslot"
)

// TestZoneSpec is what a test zone (A or B of DESIGN.md §2) is made of.
type TestZoneSpec struct {
	Zone   persona.Zone
	Origin string // fully qualified
	// NSAddrs are the addresses of the name servers, all ns1.<origin>'s
	// unless NSNames names each one's server.
	NSAddrs []netip.Addr
	// NSNames: the first label of the name server of each of NSAddrs
	// (zones.ns_names; same length, names may repeat). Empty: ns1.
	NSNames []string
	// MXAddrs is the address set every MX host shares, unless HostAddrs
	// gives a host (by first label: "mx4", "mta-sts") addresses of its own.
	MXAddrs   []netip.Addr
	HostAddrs map[string][]netip.Addr
	// PolicyAddrs are the addresses of mta-sts.<origin> (zone A).
	PolicyAddrs []netip.Addr
	TTL         uint32 // ordinary records
	MXTTL       uint32 // MX records: short, so resolvers follow the rotation
	NegativeTTL uint32 // SOA MINIMUM
	SPF         string // TXT at the apex
	TLSRPT      string // rua mailbox of _smtp._tls (zone A)
	// TLSRPTHTTPS is the https: rua of _smtp._tls (zone A; RFC 8460
	// §3), published after the mailbox; "" for none.
	TLSRPTHTTPS string
	// Keys give the TLSA data of the personas (zone A).
	Keys *persona.Keys
	// Policy is zone A's MTA-STS policy; its id goes into _mta-sts.
	Policy mtasts.Policy
	// Slots is the number of test slots (testslot): s001 … below the
	// apex, each with the zone's MX hosts; in zone A each with its own
	// MTA-STS policy, SlotPolicies[n-1] for slot n (its mx lines name the
	// slot's hosts).
	Slots        int
	SlotPolicies []mtasts.Policy
	// DNSKEY is published at the apex when the zone is signed (nil: unsigned).
	DNSKEY *dns.DNSKEY
	// BrokenHosts are host labels of zone A published with an address and a
	// corrupted signature (DESIGN.md §4: does the sender's resolver
	// validate?). A broken host with addresses of its own in HostAddrs is
	// an MX host of A and of every slot, the most preferred
	// (BrokenPreference); one without is published at the apex only, on
	// the MX addresses, and is in no MX set.
	BrokenHosts []string
	// Rotation is the MX rotation interval (zone A).
	Rotation time.Duration
	// DKIM maps selectors to DKIM key records (RFC 6376 §3.6.1),
	// published at <selector>._domainkey: the key of the result mails.
	DKIM map[string]string
}

// mxPreferences are the MX preferences handed out in rotation order.
var mxPreferences = [...]uint16{10, 20, 30, 40}

// BrokenPreference is the MX preference of a broken host: before every
// host of the rotation, so that a sender tries it first (RFC 5321 §5.1).
// A sender whose resolver validates DNSSEC cannot resolve it and goes on
// to the next host; one that connects proves its resolver does not
// validate, and is answered 421 before the greeting so that it goes on
// too (docs/dns.md "Broken host").
const BrokenPreference = 5

// IPv6Preference is the MX preference of the IPv6-only host (docs/dns.md
// "IPv6-only host"): after the broken host, whose placement and findings
// stay as they were (its look-up comes first for every sender), and
// before every host of the rotation, so that every sender meets it in
// every attempt (RFC 5321 §5.1) and a connection to a rotation host
// proves it went past it.
const IPv6Preference = 7

// IPv6HostBase returns the address of the IPv6-only host of spec (its
// first address in HostAddrs, of slot 0; slot n's is testslot.HostAddr),
// and whether it has one (zone A only).
func IPv6HostBase(spec TestZoneSpec) (netip.Addr, bool) {
	list := spec.HostAddrs[testslot.IPv6HostLabel]
	if spec.Zone != persona.ZoneA || len(list) == 0 {
		return netip.Addr{}, false
	}
	return list[0], true
}

// BrokenMXHosts returns the broken hosts of spec that are MX hosts: those
// with addresses of their own.
func BrokenMXHosts(spec TestZoneSpec) []string {
	if spec.Zone != persona.ZoneA {
		return nil
	}
	var out []string
	for _, b := range spec.BrokenHosts {
		if len(spec.HostAddrs[b]) > 0 {
			out = append(out, b)
		}
	}
	return out
}

// RotationStep returns the rotation step at time t: steps are counted from
// the Unix epoch, so every node of a cluster, and the verdict replaying a
// stored history, agree on which MX was first at any moment.
func RotationStep(t time.Time, interval time.Duration) int64 {
	return t.Unix() / int64(interval/time.Second)
}

// StepStart returns when rotation step s began.
func StepStart(s int64, interval time.Duration) time.Time {
	return time.Unix(s*int64(interval/time.Second), 0)
}

// MXOrder returns the MX hosts of zone A in preference order at rotation
// step s. The hosts take turns at the top: at step s the host at index
// s mod n of mx3, mx4, mx5, mx6 is first, the others follow in cyclic order.
// Over n consecutive steps each persona is first exactly once, so a sender
// that tries only its first MX reaches every persona within one cycle.
func MXOrder(hosts []string, s int64) []string {
	n := int64(len(hosts))
	if n == 0 {
		return nil
	}
	first := ((s % n) + n) % n
	out := make([]string, 0, n)
	for i := int64(0); i < n; i++ {
		out = append(out, hosts[(first+i)%n])
	}
	return out
}

// BuildTestZone builds the snapshot of a test zone at rotation step s.
func BuildTestZone(spec TestZoneSpec, s int64) (*Zone, error) {
	return buildTestZone(spec, s, nil)
}

// buildTestZone is BuildTestZone with extra records added to the zone's own:
// the ACME challenge TXT records an Authority publishes (challenge.go).
func buildTestZone(spec TestZoneSpec, s int64, extra []dns.RR) (*Zone, error) {
	origin := dns.CanonicalName(spec.Origin)
	name := func(label string) string { return label + "." + origin }
	var rrs []dns.RR
	add := func(rr dns.RR, ttl uint32) {
		h := rr.Header()
		h.Class, h.Ttl = dns.ClassINET, ttl
		rrs = append(rrs, rr)
	}
	hdr := func(owner string, t uint16) dns.RR_Header { return dns.RR_Header{Name: owner, Rrtype: t} }
	addrs := func(owner string, list []netip.Addr) {
		for _, a := range list {
			if a.Is4() {
				add(&dns.A{Hdr: hdr(owner, dns.TypeA), A: a.AsSlice()}, spec.TTL)
			} else {
				add(&dns.AAAA{Hdr: hdr(owner, dns.TypeAAAA), AAAA: a.AsSlice()}, spec.TTL)
			}
		}
	}
	hostAddrs := func(label string, fallback []netip.Addr) []netip.Addr {
		if a, ok := spec.HostAddrs[label]; ok && len(a) > 0 {
			return a
		}
		return fallback
	}
	txt := func(owner, text string) {
		add(&dns.TXT{Hdr: hdr(owner, dns.TypeTXT), Txt: splitTXT(text)}, spec.TTL)
	}

	var stepStart time.Time
	if spec.Rotation > 0 {
		stepStart = StepStart(s, spec.Rotation)
	}
	// The name servers: ns1 with every address, or each named one with
	// its own (RFC 1034 §4.1: a zone should have at least two).
	nsNames, nsAddrs := []string{"ns1"}, map[string][]netip.Addr{"ns1": spec.NSAddrs}
	if len(spec.NSNames) > 0 && len(spec.NSNames) != len(spec.NSAddrs) {
		// config checks this for the service; any other caller learns it here.
		return nil, fmt.Errorf("%w: %d NS names for %d addresses", ErrBadZone, len(spec.NSNames), len(spec.NSAddrs))
	}
	if len(spec.NSNames) > 0 {
		nsNames, nsAddrs = nil, map[string][]netip.Addr{}
		for i, n := range spec.NSNames {
			if _, ok := nsAddrs[n]; !ok {
				nsNames = append(nsNames, n)
			}
			nsAddrs[n] = append(nsAddrs[n], spec.NSAddrs[i])
		}
	}
	add(&dns.SOA{
		Hdr: hdr(origin, dns.TypeSOA), Ns: name(nsNames[0]), Mbox: name("hostmaster"),
		// The serial is the start of the rotation step: it grows with
		// every change of the MX set.
		Serial: uint32(stepStart.Unix()), Refresh: 3600, Retry: 600, Expire: 604800,
		Minttl: spec.NegativeTTL,
	}, spec.TTL)
	for _, n := range nsNames {
		add(&dns.NS{Hdr: hdr(origin, dns.TypeNS), Ns: name(n)}, spec.TTL)
		addrs(name(n), hostAddrs(n, nsAddrs[n]))
	}
	if spec.DNSKEY != nil {
		k := dns.Copy(spec.DNSKEY).(*dns.DNSKEY)
		k.Hdr.Name = origin
		add(k, spec.TTL)
	}
	if spec.SPF != "" {
		txt(origin, spec.SPF)
	}
	// DMARC for the result mails the service sends from A and B (RFC 7489).
	txt(name("_dmarc"), "v=DMARC1; p=reject; adkim=s; aspf=s")
	for sel, rec := range spec.DKIM {
		txt(name(sel+"._domainkey"), rec)
	}

	// The MX hosts of a domain (the zone itself, or a test slot below it):
	// their addresses, TLSA and the MX RRset in rotation order, after the
	// broken hosts.
	var broken []string
	brokenMX := BrokenMXHosts(spec)
	tlsa := func(owner string, p persona.Persona) error {
		data, err := tlsaData(spec, p)
		if err != nil {
			return err
		}
		add(&dns.TLSA{
			Hdr:   hdr("_25._tcp."+owner, dns.TypeTLSA),
			Usage: 3, Selector: 1, MatchingType: 1, // DANE-EE SPKI SHA2-256 (RFC 7671 §5.1)
			Certificate: data,
		}, spec.TTL)
		return nil
	}
	v6Base, v6 := IPv6HostBase(spec)
	mxHosts := func(domain string, slot int) error {
		for _, b := range brokenMX {
			owner := b + "." + domain
			addrs(owner, spec.HostAddrs[b])
			broken = append(broken, owner)
			add(&dns.MX{Hdr: hdr(domain, dns.TypeMX), Preference: BrokenPreference, Mx: owner}, spec.MXTTL)
		}
		if v6 {
			// The IPv6-only host: only an AAAA record, its own per slot
			// (the address names the test), and persona 6's TLSA record
			// (CA-signed, TLSA correct, in the MTA-STS policy), so that
			// no sender skips it for want of DANE or policy: it is
			// skipped only for want of IPv6.
			owner := testslot.IPv6HostLabel + "." + domain
			a, ok := testslot.HostAddr(v6Base, slot)
			if !ok || !a.Is6() || a.Is4In6() {
				return fmt.Errorf("%w: IPv6-only host of slot %d: %s plus %d is no IPv6 address", ErrBadZone, slot, v6Base, slot)
			}
			addrs(owner, []netip.Addr{a})
			add(&dns.MX{Hdr: hdr(domain, dns.TypeMX), Preference: IPv6Preference, Mx: owner}, spec.MXTTL)
			p6, _ := persona.ByNumber(6)
			if err := tlsa(owner, p6); err != nil {
				return err
			}
		}
		var hosts []string
		for _, p := range persona.MXHosts(spec.Zone) {
			owner := p.Host + "." + domain
			hosts = append(hosts, owner)
			addrs(owner, hostAddrs(p.Host, spec.MXAddrs))
			if p.TLSA == persona.TLSANone {
				continue
			}
			if err := tlsa(owner, p); err != nil {
				return err
			}
		}
		order := hosts
		if spec.Rotation > 0 {
			order = MXOrder(hosts, s)
		}
		for i, h := range order {
			add(&dns.MX{Hdr: hdr(domain, dns.TypeMX), Preference: mxPreferences[i%len(mxPreferences)] + uint16(10*(i/len(mxPreferences))), Mx: h}, spec.MXTTL)
		}
		return nil
	}
	// The MTA-STS (RFC 8461 §3) and TLS-RPT (RFC 8460 §3) names of a
	// domain of zone A.
	rua := spec.TLSRPT
	if rua == "" {
		rua = "tlsrpt@" + origin[:len(origin)-1]
	}
	rua = "mailto:" + rua
	if spec.TLSRPTHTTPS != "" {
		rua += "," + spec.TLSRPTHTTPS
	}
	policyNames := func(domain string, policy mtasts.Policy) {
		addrs("mta-sts."+domain, hostAddrs("mta-sts", spec.PolicyAddrs))
		txt("_mta-sts."+domain, policy.Record())
		txt("_smtp._tls."+domain, "v=TLSRPTv1; rua="+rua)
	}

	if err := mxHosts(origin, 0); err != nil {
		return nil, err
	}
	if spec.Zone == persona.ZoneA {
		policyNames(origin, spec.Policy)
		for _, b := range spec.BrokenHosts {
			if slices.Contains(brokenMX, b) {
				continue // published with the MX hosts
			}
			addrs(name(b), spec.MXAddrs)
			broken = append(broken, name(b))
		}
	}
	// The test slots (docs/dns.md "Test slots"): each a domain of its own
	// with the zone's MX hosts and, in A, its own MTA-STS policy. They are
	// part of the zone, not delegated, so one NSEC chain covers them.
	for n := 1; n <= spec.Slots; n++ {
		domain := testslot.Label(n) + "." + origin
		if err := mxHosts(domain, n); err != nil {
			return nil, err
		}
		if spec.Zone == persona.ZoneA {
			if n > len(spec.SlotPolicies) {
				return nil, fmt.Errorf("%w: no MTA-STS policy for slot %d", ErrBadZone, n)
			}
			policyNames(domain, spec.SlotPolicies[n-1])
		}
	}
	rrs = append(rrs, extra...)
	return New(origin, rrs, Options{Signed: spec.DNSKEY != nil, Broken: broken})
}

// tlsaData returns the certificate association data of persona p: the
// SHA-256 of its key for a correct record; for a wrong one, a digest of a
// fixed text that no key we serve can match.
func tlsaData(spec TestZoneSpec, p persona.Persona) (string, error) {
	if p.TLSA == persona.TLSAWrong {
		sum := sha256.Sum256([]byte("mailsec: deliberately wrong TLSA for " + p.Host + "." + spec.Origin))
		return hex.EncodeToString(sum[:]), nil
	}
	if spec.Keys == nil {
		return "", fmt.Errorf("%w: no persona keys for the TLSA of %s", ErrBadZone, p.Host)
	}
	d, err := spec.Keys.SPKISHA256(p.Number)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(d), nil
}

// splitTXT cuts text into character-strings of at most 255 octets
// (RFC 1035 §3.3.14); receivers join them (RFC 7208 §3.3).
func splitTXT(s string) []string {
	var out []string
	for len(s) > 255 {
		out = append(out, s[:255])
		s = s[255:]
	}
	return append(out, s)
}
