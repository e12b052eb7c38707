package resolver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnssec"
)

// fuzzZone is the signed zone FuzzValidate checks answers against: an
// apex, a CNAME, a TLSA record, an empty non-terminal (b) and a wildcard
// with a name of its own beside it (RFC 4592 §2.2.1).
const fuzzZone = "zone.example."

var fuzzZoneText = []string{
	"zone.example. 300 IN SOA ns.zone.example. hostmaster.zone.example. 1 3600 600 86400 300",
	"zone.example. 300 IN NS ns.zone.example.",
	"zone.example. 300 IN MX 10 mx.zone.example.",
	"zone.example. 300 IN A 192.0.2.1",
	"ns.zone.example. 300 IN A 192.0.2.3",
	"mx.zone.example. 300 IN A 192.0.2.2",
	"_25._tcp.mx.zone.example. 300 IN TLSA 3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6",
	"www.zone.example. 300 IN CNAME mx.zone.example.",
	"a.b.zone.example. 300 IN TXT \"below an empty non-terminal\"",
	"*.w.zone.example. 300 IN TXT \"wild\"",
	"x.w.zone.example. 300 IN TXT \"real\"",
}

// fuzzNow lies inside the signatures' validity period.
var fuzzNow = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

// signedZone is fuzzZone with its key, NSEC chain and signatures.
type signedZone struct {
	key  *dns.DNSKEY
	sets map[rrsetKey][]dns.RR // every RRset, RRSIGs aside
	sigs map[rrsetKey]*dns.RRSIG
}

type rrsetKey struct {
	name  string
	rtype uint16
}

// newSignedZone signs fuzzZone with a fixed P-256 key (RFC 6605), so that
// every fuzzing process signs with the same key and the corpus verifies
// in all of them.
func newSignedZone(tb testing.TB) *signedZone {
	tb.Helper()
	scalar := make([]byte, 32)
	copy(scalar[20:], "mailsec fuzz")
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar)
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := priv.PublicKey.Bytes()
	if err != nil {
		tb.Fatal(err)
	}
	key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: fuzzZone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 300},
		Flags: dns.ZONE | dns.SEP, Protocol: 3, Algorithm: dns.ECDSAP256SHA256, PublicKey: base64.StdEncoding.EncodeToString(pub[1:])}
	z := &signedZone{key: key, sets: map[rrsetKey][]dns.RR{}, sigs: map[rrsetKey]*dns.RRSIG{}}
	add := func(rr dns.RR) {
		h := rr.Header()
		k := rrsetKey{dns.CanonicalName(h.Name), h.Rrtype}
		z.sets[k] = append(z.sets[k], rr)
	}
	add(key)
	for _, s := range fuzzZoneText {
		rr, err := dns.NewRR(s)
		if err != nil {
			tb.Fatal(err)
		}
		add(rr)
	}
	// The NSEC chain (RFC 4034 §4): each name to the next in canonical
	// order, the last back to the apex.
	types := map[string][]uint16{}
	for k := range z.sets {
		types[k.name] = append(types[k.name], k.rtype)
	}
	var names []string
	for n := range types {
		names = append(names, n)
	}
	slices.SortFunc(names, dnssec.CompareCanonical)
	for i, n := range names {
		bitmap := append(types[n], dns.TypeNSEC, dns.TypeRRSIG)
		slices.Sort(bitmap)
		add(&dns.NSEC{Hdr: dns.RR_Header{Name: n, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: 300},
			NextDomain: names[(i+1)%len(names)], TypeBitMap: bitmap})
	}
	for k, set := range z.sets {
		sig := &dns.RRSIG{Hdr: dns.RR_Header{Name: set[0].Header().Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: 300},
			Algorithm: dns.ECDSAP256SHA256, KeyTag: key.KeyTag(), SignerName: fuzzZone,
			Inception:  uint32(fuzzNow.Add(-24 * time.Hour).Unix()),
			Expiration: uint32(fuzzNow.Add(30 * 24 * time.Hour).Unix())}
		if err := sig.Sign(priv, set); err != nil {
			tb.Fatal(err)
		}
		z.sigs[k] = sig
	}
	return z
}

// signed returns the RRset and its signature, with the owner name
// replaced by name if given (a wildcard's expansion, RFC 4035 §5.3.4).
func (z *signedZone) signed(k rrsetKey, name string) []dns.RR {
	var out []dns.RR
	for _, rr := range append(slices.Clone(z.sets[k]), z.sigs[k]) {
		rr = dns.Copy(rr)
		if name != "" {
			rr.Header().Name = name
		}
		out = append(out, rr)
	}
	return out
}

// exists tells whether name owns records or has a descendant that does.
func (z *signedZone) exists(name string) bool {
	for k := range z.sets {
		if dns.IsSubDomain(name, k.name) {
			return true
		}
	}
	return false
}

// truth is the zone's answer to name/qtype, RRSIGs aside: the RRset (or
// the CNAME) at name, or what the wildcard at its closest encloser
// synthesises (RFC 4592 §3.3.1), owned by name. Empty means no data.
func (z *signedZone) truth(name string, qtype uint16) (set []dns.RR, wildcard string) {
	owner := name
	if !z.exists(name) {
		ce := name
		for !z.exists(ce) {
			ce = parentName(ce)
		}
		owner = "*." + ce
	}
	for _, t := range []uint16{qtype, dns.TypeCNAME} {
		if s := z.sets[rrsetKey{owner, t}]; s != nil {
			if owner != name {
				return s, owner
			}
			return s, ""
		}
	}
	return nil, owner
}

// answer is what an authoritative server for the zone says to
// name/qtype (RFC 4035 §3.1): the signed answer or the NSEC proof.
func (z *signedZone) answer(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Response, m.Authoritative = true, true
	set, wild := z.truth(name, qtype)
	covering := func(n string) {
		for k := range z.sets {
			if k.rtype == dns.TypeNSEC && covers(z.sets[k][0].(*dns.NSEC), n) {
				m.Ns = append(m.Ns, z.signed(k, "")...)
			}
		}
	}
	switch {
	case set != nil && wild != "":
		m.Answer = z.signed(rrsetKey{wild, set[0].Header().Rrtype}, name)
		covering(name)
	case set != nil:
		m.Answer = z.signed(rrsetKey{name, set[0].Header().Rrtype}, "")
	case z.exists(name):
		if z.sets[rrsetKey{name, dns.TypeNSEC}] != nil {
			m.Ns = z.signed(rrsetKey{name, dns.TypeNSEC}, "")
		} else {
			covering(name) // an empty non-terminal
		}
	default:
		m.Rcode = dns.RcodeNameError
		covering(name)
		covering(wild)
	}
	return m
}

// sameRR tells whether a and b are one record, TTL and case aside (the
// TTL is not signed, RFC 4034 §3.1.4; names compare in canonical form).
func sameRR(a, b dns.RR) bool {
	a, b = dns.Copy(a), dns.Copy(b)
	a.Header().Ttl, b.Header().Ttl = 0, 0
	return strings.EqualFold(a.String(), b.String())
}

// zoneQuestions are questions to the signed zone with every kind of
// answer: data, a CNAME, the apex, NODATA, an empty non-terminal,
// NXDOMAIN, wildcard expansions one and two labels deep, and the name
// beside the wildcard.
var zoneQuestions = []struct {
	name  string
	qtype uint16
}{
	{"mx.zone.example.", dns.TypeA},
	{"_25._tcp.mx.zone.example.", dns.TypeTLSA},
	{"zone.example.", dns.TypeMX},
	{"www.zone.example.", dns.TypeA},
	{"mx.zone.example.", dns.TypeMX},
	{"b.zone.example.", dns.TypeTXT},
	{"nope.zone.example.", dns.TypeTLSA},
	{"y.w.zone.example.", dns.TypeTXT},
	{"x.w.zone.example.", dns.TypeTXT},
	{"deep.y.w.zone.example.", dns.TypeTXT},
}

// maxFuzzMessage bounds a fuzzed answer (a UDP answer is at most 1232
// octets as the resolver asks; over TCP more, but size is no property).
const maxFuzzMessage = 4 << 10

// FuzzValidate feeds the self-validation under a trust anchor (RFC 4035
// §5) arbitrary answers — packed DNS messages, the signed zone's own
// answers as seeds — to arbitrary questions in the zone. Whatever it
// accepts must be true of the signed zone: every record of the answer
// and authority sections is a record of the zone (or the expansion of its
// wildcard at a name that does not exist), a name called non-existent
// does not exist, and a type called absent is absent.
func FuzzValidate(f *testing.F) {
	z := newSignedZone(f)
	for _, q := range zoneQuestions {
		wire, err := z.answer(q.name, q.qtype).Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, q.name, q.qtype)
		// The same answer to a question it does not answer.
		f.Add(wire, "x.w.zone.example.", dns.TypeTXT)
	}
	ds := z.key.ToDS(dns.SHA256)
	f.Fuzz(func(t *testing.T, wire []byte, name string, qtype uint16) {
		if len(wire) > maxFuzzMessage {
			t.Skip()
		}
		name = dns.CanonicalName(name)
		m := new(dns.Msg)
		if _, ok := dns.IsDomainName(name); !ok || !dns.IsSubDomain(fuzzZone, name) || m.Unpack(wire) != nil ||
			m.Rcode != dns.RcodeSuccess && m.Rcode != dns.RcodeNameError || qtype == dns.TypeRRSIG {
			// Query validates only these rcodes under an anchor; an
			// RRSIG query has no RRset to verify (RFC 4035 §3.2.1).
			t.Skip()
		}
		r := &Resolver{}
		a := &anchor{zone: fuzzZone, ds: ds, keys: []*dns.DNSKEY{z.key}, exp: fuzzNow.Add(time.Hour)}
		if r.validate(context.Background(), a, name, qtype, m, fuzzNow) != nil {
			return
		}
		for _, rr := range append(slices.Clone(m.Answer), m.Ns...) {
			h := rr.Header()
			if h.Rrtype == dns.TypeRRSIG || h.Rrtype == dns.TypeOPT {
				continue
			}
			owner := dns.CanonicalName(h.Name)
			set, wild := z.truth(owner, h.Rrtype)
			if set == nil && wild == "" {
				set = z.sets[rrsetKey{owner, h.Rrtype}]
			}
			if !slices.ContainsFunc(set, func(want dns.RR) bool {
				w := dns.Copy(want)
				w.Header().Name = h.Name
				return sameRR(w, rr)
			}) {
				t.Fatalf("%s %s: accepted a record the zone does not have: %v", name, dns.TypeToString[qtype], rr)
			}
		}
		hasCNAME := false
		for _, rr := range m.Answer {
			if dns.CanonicalName(rr.Header().Name) == name && rr.Header().Rrtype == dns.TypeCNAME {
				hasCNAME = true
			}
		}
		set, _ := z.truth(name, qtype)
		switch {
		case hasCNAME:
		case m.Rcode == dns.RcodeNameError && (z.exists(name) || set != nil):
			t.Fatalf("%s %s: accepted NXDOMAIN for a name that exists", name, dns.TypeToString[qtype])
		case m.Rcode == dns.RcodeSuccess && set != nil && !slices.ContainsFunc(m.Answer, func(rr dns.RR) bool {
			return dns.CanonicalName(rr.Header().Name) == name && rr.Header().Rrtype == qtype
		}):
			t.Fatalf("%s %s: accepted NODATA for a type the name has", name, dns.TypeToString[qtype])
		}
	})
}

// TestValidateSignedZone: the signed zone's own answers (FuzzValidate's
// seeds) validate, and replayed ones for another name do not — among them
// the wildcard's signed record shown as the answer of a name that exists
// (RFC 4035 §5.3.4: an expansion needs proof that the name does not
// exist).
func TestValidateSignedZone(t *testing.T) {
	z := newSignedZone(t)
	a := &anchor{zone: fuzzZone, ds: z.key.ToDS(dns.SHA256), keys: []*dns.DNSKEY{z.key}, exp: fuzzNow.Add(time.Hour)}
	r := &Resolver{}
	for _, tc := range zoneQuestions {
		m := z.answer(tc.name, tc.qtype)
		if err := r.validate(context.Background(), a, tc.name, tc.qtype, m, fuzzNow); err != nil {
			t.Errorf("%s %s: %v\n%v", tc.name, dns.TypeToString[tc.qtype], err, m)
		}
		if tc.name == "x.w.zone.example." {
			continue
		}
		if err := r.validate(context.Background(), a, "x.w.zone.example.", dns.TypeTXT, m, fuzzNow); err == nil {
			t.Errorf("the answer to %s %s validates for x.w.zone.example. TXT", tc.name, dns.TypeToString[tc.qtype])
		}
	}
	// The wildcard's record, expanded at x.w, which exists.
	forged := new(dns.Msg)
	forged.SetQuestion("x.w.zone.example.", dns.TypeTXT)
	forged.Answer = z.signed(rrsetKey{"*.w.zone.example.", dns.TypeTXT}, "x.w.zone.example.")
	if err := r.validate(context.Background(), a, "x.w.zone.example.", dns.TypeTXT, forged, fuzzNow); err == nil {
		t.Errorf("a wildcard expansion without NSEC proof validates:\n%v", forged)
	}
}
