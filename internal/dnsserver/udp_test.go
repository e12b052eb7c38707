package dnsserver

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var testClient = netip.MustParseAddrPort("127.0.0.1:5353")

// fullPath answers pkt the slow way: decode, answer, pack.
func fullPath(t testing.TB, srv *Server, now time.Time, pkt []byte) []byte {
	t.Helper()
	r := new(dns.Msg)
	if err := r.Unpack(pkt); err != nil {
		return formErr(pkt, nil)
	}
	m := srv.Answer(now, r, false)
	if m == nil {
		return nil
	}
	wire, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return wire
}

// checkFastPath sends pkt twice through the UDP handler (the first fills
// the answer cache, the second may be served from the wire) and compares
// both with the full path.
func checkFastPath(t testing.TB, srv *Server, now time.Time, pkt []byte) {
	t.Helper()
	want := fullPath(t, srv, now, pkt)
	for i := range 2 {
		got, _ := srv.handleUDP(now, pkt, testClient, nil, nil)
		if !bytes.Equal(got, want) {
			t.Fatalf("pass %d: UDP handler answer differs from the full path\npkt  %x\ngot  %x\nwant %x", i, pkt, got, want)
		}
	}
	if q, ok := parseFastQuery(pkt); ok {
		// What the fast parser accepts, the full decoder must accept
		// with the same question and EDNS flags.
		r := new(dns.Msg)
		if err := r.Unpack(pkt); err != nil {
			t.Fatalf("fast parser accepted what Unpack rejects (%v): %x", err, pkt)
		}
		var name [256]byte
		n, err := dns.PackDomainName(r.Question[0].Name, name[:], 0, nil, false)
		if err != nil || !bytes.Equal(name[:n], q.name) || r.Question[0].Qtype != q.qtype || r.Id != q.id {
			t.Fatalf("fast parser read another question: %x", pkt)
		}
		opt := r.IsEdns0()
		if (opt != nil) != q.edns || (opt != nil && (opt.Do() != q.do || opt.UDPSize() != q.udpSize)) {
			t.Fatalf("fast parser read other EDNS: %x", pkt)
		}
	}
}

func TestFastPathMatchesFullPath(t *testing.T) {
	srv := New(testAuthority(t), Options{UDPSize: 1232})
	now := time.Now()
	type query struct {
		name    string
		qtype   uint16
		edns    bool
		do      bool
		size    uint16
		rd, cd  bool
		ecs     bool
		opcode  int
		mutate  func(*dns.Msg)
		fastHit bool // the second pass must be served from the wire
	}
	tests := []query{
		{name: zoneA, qtype: dns.TypeMX, edns: true, do: true, size: 1232, fastHit: true},
		{name: zoneA, qtype: dns.TypeMX, fastHit: true},
		{name: zoneA, qtype: dns.TypeMX, edns: true, size: 4096, rd: true, cd: true, fastHit: true},
		{name: "MX4.a.EXAMPLE.", qtype: dns.TypeA, edns: true, do: true, size: 1232, fastHit: true},
		{name: "nx-1." + zoneA, qtype: dns.TypeA, edns: true, do: true, size: 1232, fastHit: true},
		{name: "_tcp.mx4." + zoneA, qtype: dns.TypeTLSA, edns: true, do: true, size: 1232, fastHit: true},
		{name: "example.org.", qtype: dns.TypeA, fastHit: true},
		{name: zoneA, qtype: dns.TypeMX, edns: true, do: true, size: 1232, ecs: true, fastHit: true},
		{name: "mx5." + zoneA, qtype: dns.TypeAAAA, edns: true, do: true, size: 4096, fastHit: true},
		{name: "mx5." + zoneA, qtype: dns.TypeAAAA, edns: true, do: true, size: 512}, // truncated: never cached
		{name: "mx5." + zoneA, qtype: dns.TypeAAAA},                                  // no EDNS: 512, truncated
		{name: zoneA, qtype: dns.TypeAXFR, fastHit: true},                            // REFUSED is cached
		{name: zoneA, qtype: dns.TypeMAILB},                                          // NOTIMP: full path
		{name: zoneA, qtype: dns.TypeSOA, opcode: dns.OpcodeNotify},
		{name: zoneA, qtype: dns.TypeSOA, mutate: func(m *dns.Msg) { m.SetEdns0(1232, true); m.IsEdns0().SetVersion(1) }},
		{name: zoneA, qtype: dns.TypeSOA, mutate: func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }},
		{name: zoneA, qtype: dns.TypeSOA, mutate: func(m *dns.Msg) { m.Truncated = true }},
		{name: zoneA, qtype: dns.TypeSOA, mutate: func(m *dns.Msg) { m.Response = true }},
	}
	for _, tc := range tests {
		m := new(dns.Msg)
		m.SetQuestion(tc.name, tc.qtype)
		m.Id = 4711
		m.RecursionDesired, m.CheckingDisabled = tc.rd, tc.cd
		if tc.opcode != 0 {
			m.Opcode = tc.opcode
		}
		if tc.edns {
			m.SetEdns0(tc.size, tc.do)
			if tc.ecs {
				m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: []byte{192, 0, 2, 0}})
			}
		}
		if tc.mutate != nil {
			tc.mutate(m)
		}
		pkt, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tc.name+"/"+dns.TypeToString[tc.qtype], func(t *testing.T) {
			checkFastPath(t, srv, now, pkt)
			if tc.fastHit {
				q, ok := parseFastQuery(pkt)
				if !ok {
					t.Fatal("fast parser rejected a plain query")
				}
				key := appendKey(nil, q.name, q.qtype, q.edns, q.do)
				if _, hit := srv.cacheFor(srv.auth.Snapshot(now)).get(key, now); !hit {
					t.Fatal("second pass was not served from the answer cache")
				}
				if tc.ecs && q.ecs != "192.0.2.0/24" {
					t.Fatalf("ECS read as %q", q.ecs)
				}
			}
		})
	}
}

// FuzzUDP: for any datagram the batched UDP path answers exactly as the
// full decoder path does, cached or not, and never panics.
func FuzzUDP(f *testing.F) {
	for _, mk := range []func() *dns.Msg{
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion(zoneA, dns.TypeMX); m.SetEdns0(1232, true); return m },
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion("nx."+zoneA, dns.TypeA); return m },
		func() *dns.Msg {
			m := new(dns.Msg)
			m.SetQuestion("_tcp.mx4."+zoneA, dns.TypeTLSA)
			m.SetEdns0(512, true)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 2, SourceNetmask: 48, Address: netip.MustParseAddr("2001:db8::").AsSlice()})
			return m
		},
	} {
		wire, err := mk().Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
	}
	srv := New(testAuthority(f), Options{UDPSize: 1232})
	now := time.Now()
	f.Fuzz(func(t *testing.T, pkt []byte) {
		checkFastPath(t, srv, now, pkt)
	})
}
