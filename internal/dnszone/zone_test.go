package dnszone

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/tlsrpt"
)

const origin = "a.example."

func testZone(t *testing.T) *Zone {
	t.Helper()
	keys, err := persona.LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: 257, Protocol: 3, Algorithm: dns.ECDSAP256SHA256}
	if _, err := key.Generate(256); err != nil {
		t.Fatal(err)
	}
	z, err := BuildTestZone(TestZoneSpec{
		Zone: persona.ZoneA, Origin: origin,
		NSAddrs:     []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		MXAddrs:     []netip.Addr{netip.MustParseAddr("192.0.2.25"), netip.MustParseAddr("2001:db8::25")},
		PolicyAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.80")},
		TTL:         300, MXTTL: 60, NegativeTTL: 30,
		SPF:         "v=spf1 -all",
		Keys:        keys,
		Policy:      mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx4.a.example"}, MaxAge: time.Hour},
		DNSKEY:      key,
		BrokenHosts: []string{"broken"},
		Rotation:    5 * time.Minute,
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

// rrDesc is a compact description of an RRset: "owner TYPE" or, for NSEC,
// "owner NSEC next".
func rrDesc(set []dns.RR) string {
	h := set[0].Header()
	if n, ok := set[0].(*dns.NSEC); ok {
		return h.Name + " NSEC " + n.NextDomain
	}
	return h.Name + " " + dns.TypeToString[h.Rrtype]
}

func descs(sets [][]dns.RR) []string {
	out := []string{}
	for _, s := range sets {
		out = append(out, rrDesc(s))
	}
	return out
}

// TestLookup is the zone's table of query → rcode, answer and authority,
// in the style of CoreDNS's plugin tests.
func TestLookup(t *testing.T) {
	z := testZone(t)
	soa := origin + " SOA"
	tests := []struct {
		qname     string
		qtype     uint16
		do        bool
		rcode     int
		answer    []string
		authority []string
	}{
		{origin, dns.TypeMX, true, dns.RcodeSuccess, []string{origin + " MX"}, []string{}},
		{origin, dns.TypeSOA, false, dns.RcodeSuccess, []string{soa}, []string{}},
		{origin, dns.TypeDNSKEY, true, dns.RcodeSuccess, []string{origin + " DNSKEY"}, []string{}},
		{"MX4.A.Example.", dns.TypeA, false, dns.RcodeSuccess, []string{"mx4.a.example. A"}, []string{}},
		{"mx4.a.example.", dns.TypeAAAA, false, dns.RcodeSuccess, []string{"mx4.a.example. AAAA"}, []string{}},
		{"_25._tcp.mx6.a.example.", dns.TypeTLSA, true, dns.RcodeSuccess, []string{"_25._tcp.mx6.a.example. TLSA"}, []string{}},
		{"_mta-sts.a.example.", dns.TypeTXT, true, dns.RcodeSuccess, []string{"_mta-sts.a.example. TXT"}, []string{}},
		// NODATA at an existing name: SOA plus the name's own NSEC.
		{"mx4.a.example.", dns.TypeTLSA, true, dns.RcodeSuccess, []string{},
			[]string{soa, "mx4.a.example. NSEC _25._tcp.mx4.a.example."}},
		{"mx4.a.example.", dns.TypeTLSA, false, dns.RcodeSuccess, []string{}, []string{soa}},
		// DS belongs to the parent: the child answers NODATA.
		{origin, dns.TypeDS, true, dns.RcodeSuccess, []string{}, []string{soa, origin + " NSEC _dmarc.a.example."}},
		// Empty non-terminals: NODATA proven by the NSEC whose next name
		// lies below them.
		{"_tcp.mx4.a.example.", dns.TypeTLSA, true, dns.RcodeSuccess, []string{},
			[]string{soa, "mx4.a.example. NSEC _25._tcp.mx4.a.example."}},
		{"_tls.a.example.", dns.TypeTXT, true, dns.RcodeSuccess, []string{},
			[]string{soa, "_mta-sts.a.example. NSEC _smtp._tls.a.example."}},
		// NXDOMAIN: NSEC covering the name and NSEC covering the wildcard
		// at the closest encloser.
		{"nope.a.example.", dns.TypeA, true, dns.RcodeNameError, []string{},
			[]string{soa, "_25._tcp.mx6.a.example. NSEC ns1.a.example.", origin + " NSEC _dmarc.a.example."}},
		// '_' (0x5f) sorts before 'x', '*' (0x2a) before '_': two NSECs.
		{"x._tcp.mx4.a.example.", dns.TypeA, true, dns.RcodeNameError, []string{},
			[]string{soa, "_25._tcp.mx4.a.example. NSEC mx5.a.example.", "mx4.a.example. NSEC _25._tcp.mx4.a.example."}},
		{"zzz.a.example.", dns.TypeA, true, dns.RcodeNameError, []string{},
			[]string{soa, "ns1.a.example. NSEC a.example.", origin + " NSEC _dmarc.a.example."}},
		{"nope.a.example.", dns.TypeA, false, dns.RcodeNameError, []string{}, []string{soa}},
		// The broken host's name sorts before "c": its NSEC covers c.
		{"c.a.example.", dns.TypeA, true, dns.RcodeNameError, []string{},
			[]string{soa, "broken.a.example. NSEC mta-sts.a.example.", origin + " NSEC _dmarc.a.example."}},
		// RFC 8482: ANY gets one RRset.
		{origin, dns.TypeANY, false, dns.RcodeSuccess, []string{origin + " NS"}, []string{}},
		{"mx4.a.example.", dns.TypeNSEC, true, dns.RcodeSuccess, []string{"mx4.a.example. NSEC _25._tcp.mx4.a.example."}, []string{}},
	}
	for _, tc := range tests {
		t.Run(tc.qname+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			r := z.Lookup(tc.qname, tc.qtype, tc.do)
			if r.Rcode != tc.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			if got := descs(r.Answer); !slices.Equal(got, tc.answer) {
				t.Errorf("answer %q, want %q", got, tc.answer)
			}
			if got := descs(r.Authority); !slices.Equal(got, tc.authority) {
				t.Errorf("authority %q, want %q", got, tc.authority)
			}
			if len(r.Answer) == 0 && len(r.Authority) > 0 {
				// RFC 2308 §3: negative answers carry the SOA with the negative TTL.
				if ttl := r.Authority[0][0].Header().Ttl; ttl != z.NegativeTTL() {
					t.Errorf("SOA TTL %d in a negative answer, want %d", ttl, z.NegativeTTL())
				}
			}
		})
	}
}

// TestNSECChain: the chain visits every owner once in canonical order and
// closes at the apex; bitmaps list the owner's types plus RRSIG and NSEC.
func TestNSECChain(t *testing.T) {
	z := testZone(t)
	var owners []string
	next := map[string]string{}
	for _, set := range z.RRsets() {
		if n, ok := set[0].(*dns.NSEC); ok {
			owners = append(owners, n.Hdr.Name)
			next[n.Hdr.Name] = n.NextDomain
			if !slices.Contains(n.TypeBitMap, dns.TypeRRSIG) || !slices.Contains(n.TypeBitMap, dns.TypeNSEC) {
				t.Errorf("%s: bitmap %v lacks RRSIG or NSEC", n.Hdr.Name, n.TypeBitMap)
			}
			if n.Hdr.Ttl != z.NegativeTTL() {
				t.Errorf("%s: NSEC TTL %d, want %d", n.Hdr.Name, n.Hdr.Ttl, z.NegativeTTL())
			}
		}
	}
	if !sort.SliceIsSorted(owners, func(i, j int) bool { return CompareCanonical(owners[i], owners[j]) < 0 }) {
		t.Fatalf("owners not in canonical order: %v", owners)
	}
	cur, n := origin, 0
	for {
		cur = next[cur]
		n++
		if cur == origin || n > len(owners) {
			break
		}
	}
	if n != len(owners) {
		t.Fatalf("chain of %d links for %d owners", n, len(owners))
	}
}

// TestCompareCanonical uses the example ordering of RFC 4034 §6.1.
func TestCompareCanonical(t *testing.T) {
	want := []string{
		"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.",
		"zABC.a.EXAMPLE.", "z.example.", `\001.z.example.`, "*.z.example.", `\200.z.example.`,
	}
	got := slices.Clone(want)
	slices.Reverse(got)
	sort.Slice(got, func(i, j int) bool { return CompareCanonical(got[i], got[j]) < 0 })
	if !slices.Equal(got, want) {
		t.Fatalf("order\n%q\nwant\n%q", got, want)
	}
	if CompareCanonical("A.example.", "a.EXAMPLE.") != 0 {
		t.Fatal("comparison must ignore ASCII case")
	}
}

func TestMXOrderRotation(t *testing.T) {
	hosts := []string{"mx3", "mx4", "mx5", "mx6"}
	first := map[string]int{}
	for s := int64(100); s < 104; s++ {
		order := MXOrder(hosts, s)
		if len(order) != 4 {
			t.Fatalf("step %d: %v", s, order)
		}
		sorted := slices.Clone(order)
		slices.Sort(sorted)
		if !slices.Equal(sorted, hosts) {
			t.Fatalf("step %d: %v is not a permutation", s, order)
		}
		first[order[0]]++
	}
	for _, h := range hosts {
		if first[h] != 1 {
			t.Fatalf("over one cycle %s was first %d times: %v", h, first[h], first)
		}
	}
	if got := MXOrder(hosts, -1); got[0] != "mx6" {
		t.Fatalf("negative step: %v", got)
	}
	if RotationStep(time.Unix(600, 0), 5*time.Minute) != 2 || !StepStart(2, 5*time.Minute).Equal(time.Unix(600, 0)) {
		t.Fatal("RotationStep/StepStart disagree")
	}
}

func TestNewRejectsBadZones(t *testing.T) {
	rr := func(s string) dns.RR {
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	soa := rr("a.example. 300 IN SOA ns1.a.example. h.a.example. 1 2 3 4 5")
	ns := rr("a.example. 300 IN NS ns1.a.example.")
	tests := []struct {
		name string
		rrs  []dns.RR
		want string
	}{
		{"no SOA", []dns.RR{ns}, "one SOA"},
		{"outside", []dns.RR{soa, ns, rr("b.example. 300 IN A 192.0.2.1")}, "outside"},
		{"TTL mismatch", []dns.RR{soa, ns, rr("x.a.example. 300 IN A 192.0.2.1"), rr("x.a.example. 30 IN A 192.0.2.2")}, "TTL"},
		{"CNAME and data", []dns.RR{soa, ns, rr("x.a.example. 300 IN A 192.0.2.1"), rr("x.a.example. 300 IN CNAME y.a.example.")}, "CNAME"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(origin, tc.rrs, Options{Signed: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// TestBrokenMXHost: a broken host with an address of its own is the most
// preferred MX host of A and of every slot, published on its own address
// with a broken signature; one without stays out of the MX sets.
func TestBrokenMXHost(t *testing.T) {
	keys, err := persona.LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	own := netip.MustParseAddr("192.0.2.29")
	spec := TestZoneSpec{
		Zone: persona.ZoneA, Origin: origin,
		NSAddrs:   []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		MXAddrs:   []netip.Addr{netip.MustParseAddr("192.0.2.25")},
		HostAddrs: map[string][]netip.Addr{"broken": {own}},
		TTL:       300, MXTTL: 60, NegativeTTL: 30,
		Keys:         keys,
		Policy:       mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx4.a.example"}, MaxAge: time.Hour},
		SlotPolicies: []mtasts.Policy{{Mode: mtasts.ModeEnforce, MX: []string{"mx4.s001.a.example"}, MaxAge: time.Hour}},
		Slots:        1,
		BrokenHosts:  []string{"broken", "other"},
		Rotation:     5 * time.Minute,
	}
	for s := int64(0); s < 4; s++ {
		z, err := BuildTestZone(spec, s)
		if err != nil {
			t.Fatal(err)
		}
		for _, domain := range []string{origin, "s001." + origin} {
			r := z.Lookup(domain, dns.TypeMX, false)
			if len(r.Answer) != 1 {
				t.Fatalf("step %d: MX of %s: %+v", s, domain, r)
			}
			var first *dns.MX
			for _, rr := range r.Answer[0] {
				mx := rr.(*dns.MX)
				if strings.HasPrefix(mx.Mx, "other.") {
					t.Errorf("step %d: %s lists the broken host without an address of its own", s, domain)
				}
				if first == nil || mx.Preference < first.Preference {
					first = mx
				}
			}
			if want := "broken." + domain; first.Mx != want || first.Preference != BrokenPreference || len(r.Answer[0]) != 5 {
				t.Errorf("step %d: most preferred MX of %s is %s (%d of %d), want %s", s, domain, first.Mx, first.Preference, len(r.Answer[0]), want)
			}
			host := "broken." + domain
			a := z.Lookup(host, dns.TypeA, false)
			if len(a.Answer) != 1 || a.Answer[0][0].(*dns.A).A.String() != own.String() {
				t.Errorf("step %d: A of %s: %+v, want %s", s, host, a.Answer, own)
			}
			if !z.SignatureBroken(host) {
				t.Errorf("step %d: %s not published with a broken signature", s, host)
			}
		}
		if !z.SignatureBroken("other." + origin) {
			t.Error("the broken host without an address of its own is no longer published")
		}
	}
}

// TestTLSRPTRecords: zone A and every slot publish one TLS-RPT record
// (RFC 8460 §3) naming the mailbox and, when given, the https: URI after
// it; each parses.
func TestTLSRPTRecords(t *testing.T) {
	keys, err := persona.LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, https := range []string{"", "https://mta-sts.a.example/.well-known/tlsrpt"} {
		spec := TestZoneSpec{
			Zone: persona.ZoneA, Origin: origin,
			NSAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.53")},
			MXAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.25")},
			TTL:     300, MXTTL: 60, NegativeTTL: 30,
			Keys:         keys,
			Policy:       mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx4.a.example"}, MaxAge: time.Hour},
			SlotPolicies: []mtasts.Policy{{Mode: mtasts.ModeEnforce, MX: []string{"mx4.s001.a.example"}, MaxAge: time.Hour}},
			Slots:        1,
			TLSRPTHTTPS:  https,
		}
		z, err := BuildTestZone(spec, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"mailto:tlsrpt@a.example"}
		if https != "" {
			want = append(want, https)
		}
		for _, domain := range []string{origin, "s001." + origin} {
			r := z.Lookup("_smtp._tls."+domain, dns.TypeTXT, false)
			if len(r.Answer) != 1 || len(r.Answer[0]) != 1 {
				t.Fatalf("TXT of _smtp._tls.%s: %+v", domain, r)
			}
			rec, err := tlsrpt.ParseRecord(strings.Join(r.Answer[0][0].(*dns.TXT).Txt, ""))
			if err != nil || !slices.Equal(rec.RUA, want) {
				t.Errorf("%s: rua %v, %v; want %v", domain, rec, err, want)
			}
		}
	}
}

// TestIPv6MXHost: the IPv6-only host is an MX host of A and of every slot,
// after the broken host and before the rotation, with only an AAAA record
// (slot n's: the base address plus n) and persona 6's TLSA record; zone B
// has none.
func TestIPv6MXHost(t *testing.T) {
	keys, err := persona.LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := netip.MustParseAddr("fd00::6:0")
	spec := TestZoneSpec{
		Zone: persona.ZoneA, Origin: origin,
		NSAddrs:   []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		MXAddrs:   []netip.Addr{netip.MustParseAddr("192.0.2.25")},
		HostAddrs: map[string][]netip.Addr{"broken": {netip.MustParseAddr("192.0.2.29")}, "mx-v6": {base}},
		TTL:       300, MXTTL: 60, NegativeTTL: 30,
		Keys:   keys,
		Policy: mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx4.a.example"}, MaxAge: time.Hour},
		SlotPolicies: []mtasts.Policy{
			{Mode: mtasts.ModeEnforce, MX: []string{"mx4.s001.a.example"}, MaxAge: time.Hour},
			{Mode: mtasts.ModeEnforce, MX: []string{"mx4.s002.a.example"}, MaxAge: time.Hour},
		},
		Slots:       2,
		BrokenHosts: []string{"broken"},
		Rotation:    5 * time.Minute,
	}
	for s := int64(0); s < 4; s++ {
		z, err := BuildTestZone(spec, s)
		if err != nil {
			t.Fatal(err)
		}
		for n, domain := range []string{origin, "s001." + origin, "s002." + origin} {
			r := z.Lookup(domain, dns.TypeMX, false)
			if len(r.Answer) != 1 || len(r.Answer[0]) != 6 {
				t.Fatalf("step %d: MX of %s: %+v, want the broken host, the IPv6-only host and 4 of the rotation", s, domain, r.Answer)
			}
			mxs := make([]*dns.MX, 0, 6)
			for _, rr := range r.Answer[0] {
				mxs = append(mxs, rr.(*dns.MX))
			}
			slices.SortFunc(mxs, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })
			host := "mx-v6." + domain
			if mxs[0].Mx != "broken."+domain || mxs[1].Mx != host || mxs[1].Preference != IPv6Preference || mxs[2].Preference <= IPv6Preference {
				t.Errorf("step %d: MX order of %s: %v, want the broken host, then %s at %d, then the rotation", s, domain, mxs, host, IPv6Preference)
			}
			aaaa := z.Lookup(host, dns.TypeAAAA, false)
			want := netip.MustParseAddr(fmt.Sprintf("fd00::6:%d", n))
			if len(aaaa.Answer) != 1 || aaaa.Answer[0][0].(*dns.AAAA).AAAA.String() != want.String() {
				t.Errorf("step %d: AAAA of %s: %+v, want %s", s, host, aaaa.Answer, want)
			}
			if a := z.Lookup(host, dns.TypeA, false); len(a.Answer) != 0 || a.Rcode != dns.RcodeSuccess {
				t.Errorf("step %d: A of %s: %+v, want NODATA", s, host, a)
			}
			tlsa := z.Lookup("_25._tcp."+host, dns.TypeTLSA, false)
			mx6 := z.Lookup("_25._tcp.mx6."+domain, dns.TypeTLSA, false)
			if len(tlsa.Answer) != 1 || len(mx6.Answer) != 1 || tlsa.Answer[0][0].(*dns.TLSA).Certificate != mx6.Answer[0][0].(*dns.TLSA).Certificate {
				t.Errorf("step %d: TLSA of %s: %+v, want persona 6's %+v", s, host, tlsa.Answer, mx6.Answer)
			}
			if z.SignatureBroken(host) {
				t.Errorf("step %d: %s published with a broken signature", s, host)
			}
		}
	}
	specB := spec
	specB.Zone, specB.Origin = persona.ZoneB, "b.example."
	z, err := BuildTestZone(specB, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r := z.Lookup("mx-v6.b.example.", dns.TypeAAAA, false); len(r.Answer) != 0 {
		t.Errorf("zone B has the IPv6-only host: %+v", r.Answer)
	}
}

// TestNameServers: without names every NS address is ns1's (one NS
// record); with zones.ns_names each named server is an NS record of its
// own with its addresses (a name may carry several), and the SOA names the
// first.
func TestNameServers(t *testing.T) {
	keys, err := persona.LoadKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addrs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("192.0.2.3")}
	for _, tc := range []struct {
		names []string
		want  map[string][]string // NS name → its A/AAAA
	}{
		{nil, map[string][]string{"ns1": {"192.0.2.1", "192.0.2.2", "2001:db8::2", "192.0.2.3"}}},
		{[]string{"ns1", "ns2", "ns2", "ns3"}, map[string][]string{"ns1": {"192.0.2.1"}, "ns2": {"192.0.2.2", "2001:db8::2"}, "ns3": {"192.0.2.3"}}},
	} {
		spec := TestZoneSpec{Zone: persona.ZoneA, Origin: origin, NSAddrs: addrs, NSNames: tc.names,
			MXAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.25")}, TTL: 300, MXTTL: 60, NegativeTTL: 30, Keys: keys,
			Policy: mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx4.a.example"}, MaxAge: time.Hour}}
		z, err := BuildTestZone(spec, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := z.Lookup(origin, dns.TypeNS, false)
		if len(r.Answer) != 1 || len(r.Answer[0]) != len(tc.want) {
			t.Fatalf("names %v: NS %+v, want %d records", tc.names, r.Answer, len(tc.want))
		}
		for name, want := range tc.want {
			host := name + "." + origin
			if !slices.ContainsFunc(r.Answer[0], func(rr dns.RR) bool { return rr.(*dns.NS).Ns == host }) {
				t.Errorf("names %v: no NS record for %s in %v", tc.names, host, r.Answer[0])
			}
			var got []string
			for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
				for _, set := range z.Lookup(host, qt, false).Answer {
					for _, rr := range set {
						switch a := rr.(type) {
						case *dns.A:
							got = append(got, a.A.String())
						case *dns.AAAA:
							got = append(got, a.AAAA.String())
						}
					}
				}
			}
			slices.Sort(got)
			w := slices.Clone(want)
			slices.Sort(w)
			if !slices.Equal(got, w) {
				t.Errorf("names %v: %s has %v, want %v", tc.names, host, got, w)
			}
		}
		// The NS answer's additional section: every server's addresses,
		// the same as its own A/AAAA answers (RFC 1035 §3.3.11).
		glue := map[string][]string{}
		for _, set := range r.Additional {
			for _, rr := range set {
				owner := strings.TrimSuffix(rr.Header().Name, "."+origin)
				switch a := rr.(type) {
				case *dns.A:
					glue[owner] = append(glue[owner], a.A.String())
				case *dns.AAAA:
					glue[owner] = append(glue[owner], a.AAAA.String())
				default:
					t.Errorf("names %v: additional %v is no address", tc.names, rr)
				}
			}
		}
		for name := range glue {
			slices.Sort(glue[name])
		}
		for name, want := range tc.want {
			w := slices.Clone(want)
			slices.Sort(w)
			if !slices.Equal(glue[name], w) {
				t.Errorf("names %v: additional addresses of %s %v, want %v", tc.names, name, glue[name], w)
			}
		}
		if len(glue) != len(tc.want) {
			t.Errorf("names %v: additional section names %d servers, want %d", tc.names, len(glue), len(tc.want))
		}
		if other := z.Lookup(origin, dns.TypeMX, false); len(other.Additional) != 0 {
			t.Errorf("names %v: MX answer has an additional section %v", tc.names, other.Additional)
		}
		soa := z.Lookup(origin, dns.TypeSOA, false)
		if len(soa.Answer) != 1 || soa.Answer[0][0].(*dns.SOA).Ns != "ns1."+origin {
			t.Errorf("names %v: SOA %+v, want MNAME ns1.%s", tc.names, soa.Answer, origin)
		}
	}
}
