package dnsserver

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnssec"
	"github.com/mailsec/mailsec/internal/dnszone"
	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
)

const zoneA, zoneB = "a.example.", "b.example."

// recorder keeps recorded queries for assertions.
type recorder struct {
	mu sync.Mutex
	qs []store.DNSQuery
}

func (r *recorder) Record(q store.DNSQuery) {
	r.mu.Lock()
	r.qs = append(r.qs, q)
	r.mu.Unlock()
}

func (r *recorder) all() []store.DNSQuery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.DNSQuery(nil), r.qs...)
}

func testAuthority(t testing.TB) *dnszone.Authority {
	t.Helper()
	return testAuthorityWith(t, nil, nil)
}

// testAuthorityWith is testAuthority with the name servers' addresses and
// names (zones.ns_addresses, zones.ns_names) given: nil for one server on
// the MX address, named ns1.
func testAuthorityWith(t testing.TB, nsAddrs []netip.Addr, nsNames []string) *dnszone.Authority {
	t.Helper()
	dir := t.TempDir()
	keys, err := persona.LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyA, err := dnssec.LoadOrCreateKey(dir, zoneA, 3600)
	if err != nil {
		t.Fatal(err)
	}
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.20")}
	if nsAddrs == nil {
		nsAddrs = addrs
	}
	// mx5 has 30 IPv6 addresses: an RRset of ~840 octets that exceeds
	// 512 but fits 1232, to exercise truncation.
	var many []netip.Addr
	for i := range 30 {
		many = append(many, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)}))
	}
	hosts := map[string][]netip.Addr{"mx5": many}
	spec := func(z persona.Zone, origin string, key *dns.DNSKEY) dnszone.TestZoneSpec {
		return dnszone.TestZoneSpec{Zone: z, Origin: origin, NSAddrs: nsAddrs, NSNames: nsNames, MXAddrs: addrs, PolicyAddrs: addrs, HostAddrs: hosts,
			TTL: 300, MXTTL: 60, NegativeTTL: 60, SPF: "v=spf1 ip4:127.0.0.20 -all", Keys: keys,
			Policy: mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx4.a.example"}, MaxAge: time.Hour},
			DNSKEY: key, Rotation: time.Minute}
	}
	auth, err := dnszone.NewAuthority(
		[]dnszone.TestZoneSpec{spec(persona.ZoneA, zoneA, keyA.DNSKEY), spec(persona.ZoneB, zoneB, nil)},
		[]*dnssec.Signer{dnssec.NewSigner(keyA, 24*time.Hour, time.Hour, time.Hour), nil},
		time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return auth
}

// startServer runs a server on a free loopback port for the test.
func startServer(t *testing.T) (string, *recorder) {
	t.Helper()
	rec := &recorder{}
	return startServerWith(t, rec), rec
}

// startServerWith runs a server recording to rec on a free loopback port
// for the test and returns its address.
func startServerWith(t *testing.T, rec QueryRecorder) string {
	t.Helper()
	addr, _ := startLimitedServer(t, Options{Recorder: rec})
	return addr
}

func exchange(t *testing.T, addr, net string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: net, Timeout: 2 * time.Second, UDPSize: 65535}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return r
}

func TestServerAnswers(t *testing.T) {
	addr, rec := startServer(t)
	q := func(name string, qtype uint16, mutate func(*dns.Msg)) *dns.Msg {
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		if mutate != nil {
			mutate(m)
		}
		return m
	}
	edns := func(size uint16, do bool) func(*dns.Msg) { return func(m *dns.Msg) { m.SetEdns0(size, do) } }
	tests := []struct {
		name   string
		msg    *dns.Msg
		net    string
		rcode  int
		aa, tc bool
		check  func(t *testing.T, r *dns.Msg)
	}{
		{name: "MX with DO", msg: q(zoneA, dns.TypeMX, edns(1232, true)), rcode: dns.RcodeSuccess, aa: true,
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Answer) != 5 || r.Answer[4].Header().Rrtype != dns.TypeRRSIG {
					t.Fatalf("want 4 MX and an RRSIG\n%s", r)
				}
				if opt := r.IsEdns0(); opt == nil || !opt.Do() || opt.UDPSize() != 1232 {
					t.Fatalf("want OPT with DO and 1232\n%s", r)
				}
			}},
		{name: "MX without DO has no RRSIG", msg: q(zoneA, dns.TypeMX, edns(1232, false)), rcode: dns.RcodeSuccess, aa: true,
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Answer) != 4 {
					t.Fatalf("want 4 MX\n%s", r)
				}
			}},
		{name: "no EDNS: no OPT back", msg: q(zoneA, dns.TypeSOA, nil), rcode: dns.RcodeSuccess, aa: true,
			check: func(t *testing.T, r *dns.Msg) {
				if r.IsEdns0() != nil || r.RecursionAvailable {
					t.Fatalf("unexpected OPT or RA\n%s", r)
				}
			}},
		{name: "RD is echoed, RA never set", msg: q(zoneA, dns.TypeSOA, func(m *dns.Msg) { m.RecursionDesired = true }), rcode: dns.RcodeSuccess, aa: true,
			check: func(t *testing.T, r *dns.Msg) {
				if !r.RecursionDesired || r.RecursionAvailable {
					t.Fatalf("RD/RA wrong\n%s", r)
				}
			}},
		{name: "unsigned zone B ignores DO", msg: q(zoneB, dns.TypeMX, edns(1232, true)), rcode: dns.RcodeSuccess, aa: true,
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Answer) != 1 {
					t.Fatalf("want one MX and no RRSIG\n%s", r)
				}
			}},
		{name: "outside our zones", msg: q("example.com.", dns.TypeA, nil), rcode: dns.RcodeRefused},
		{name: "root", msg: q(".", dns.TypeNS, nil), rcode: dns.RcodeRefused},
		{name: "parent of A", msg: q("example.", dns.TypeSOA, nil), rcode: dns.RcodeRefused},
		{name: "CHAOS class", msg: q("version.bind.", dns.TypeTXT, func(m *dns.Msg) { m.Question[0].Qclass = dns.ClassCHAOS }), rcode: dns.RcodeRefused},
		{name: "AXFR refused", msg: q(zoneA, dns.TypeAXFR, nil), net: "tcp", rcode: dns.RcodeRefused},
		{name: "OPT as qtype", msg: q(zoneA, dns.TypeOPT, nil), rcode: dns.RcodeFormatError},
		{name: "MAILB not implemented", msg: q(zoneA, dns.TypeMAILB, nil), rcode: dns.RcodeNotImplemented},
		{name: "NOTIFY not implemented", msg: q(zoneA, dns.TypeSOA, func(m *dns.Msg) { m.Opcode = dns.OpcodeNotify }), rcode: dns.RcodeNotImplemented},
		{name: "EDNS version 1", msg: q(zoneA, dns.TypeSOA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), rcode: dns.RcodeBadVers,
			check: func(t *testing.T, r *dns.Msg) {
				if r.IsEdns0() == nil || len(r.Answer) != 0 {
					t.Fatalf("BADVERS needs an OPT and no answer\n%s", r)
				}
			}},
		{name: "two OPT records", msg: q(zoneA, dns.TypeSOA, func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra = append(m.Extra, dns.Copy(m.Extra[0])) }), rcode: dns.RcodeFormatError},
		{name: "unknown type is NODATA", msg: q("mx4."+zoneA, 65280, edns(1232, true)), rcode: dns.RcodeSuccess, aa: true,
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Answer) != 0 || len(r.Ns) != 4 {
					t.Fatalf("want SOA+NSEC with RRSIGs\n%s", r)
				}
			}},
		{name: "no EDNS: 512 octets, truncated", msg: q("mx5."+zoneA, dns.TypeAAAA, nil), rcode: dns.RcodeSuccess, aa: true, tc: true},
		{name: "small EDNS buffer truncates", msg: q("mx5."+zoneA, dns.TypeAAAA, edns(400, true)), rcode: dns.RcodeSuccess, aa: true, tc: true},
		{name: "EDNS 1232 fits", msg: q("mx5."+zoneA, dns.TypeAAAA, edns(4096, true)), rcode: dns.RcodeSuccess, aa: true,
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Answer) != 31 {
					t.Fatalf("want 30 AAAA and an RRSIG, got %d", len(r.Answer))
				}
			}},
		{name: "TCP does not truncate", msg: q("nope."+zoneA, dns.TypeA, edns(512, true)), net: "tcp", rcode: dns.RcodeNameError, aa: true,
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Ns) != 6 {
					t.Fatalf("want SOA, 2 NSEC and 3 RRSIGs\n%s", r)
				}
			}},
		{name: "ANY is minimal", msg: q(zoneA, dns.TypeANY, nil), net: "tcp", rcode: dns.RcodeSuccess, aa: true,
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Answer) != 1 {
					t.Fatalf("RFC 8482: want one RRset\n%s", r)
				}
			}},
		{name: "ECS is accepted", msg: q(zoneA, dns.TypeMX, func(m *dns.Msg) {
			m.SetEdns0(1232, false)
			m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: 1, SourceNetmask: 24, Address: net.ParseIP("192.0.2.0").To4()})
		}), rcode: dns.RcodeSuccess, aa: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			network := tc.net
			if network == "" {
				network = "udp"
			}
			r := exchange(t, addr, network, tc.msg)
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s\n%s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r)
			}
			if r.Authoritative != tc.aa || r.Truncated != tc.tc {
				t.Fatalf("AA=%v TC=%v, want %v %v\n%s", r.Authoritative, r.Truncated, tc.aa, tc.tc, r)
			}
			if r.Id != tc.msg.Id {
				t.Fatalf("id %d, want %d", r.Id, tc.msg.Id)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}

	// Every answered query was recorded with its DO bit and client subnet.
	var sawECS, sawDO bool
	for _, q := range rec.all() {
		sawECS = sawECS || q.ECS == "192.0.2.0/24"
		sawDO = sawDO || (q.DO && q.Name == zoneA && q.Type == dns.TypeMX)
		if !q.Client.Addr().IsLoopback() || q.Time.IsZero() || (q.Transport != "udp" && q.Transport != "tcp") {
			t.Errorf("bad record %+v", q)
		}
	}
	if !sawECS || !sawDO {
		t.Errorf("query log lacks ECS (%v) or DO (%v): %+v", sawECS, sawDO, rec.all())
	}
}

// TestMalformedPackets sends raw garbage; the server must answer FORMERR or
// nothing, and keep serving.
func TestMalformedPackets(t *testing.T) {
	addr, _ := startServer(t)
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	good := new(dns.Msg)
	good.SetQuestion(zoneA, dns.TypeSOA)
	wire, _ := good.Pack()
	packets := map[string][]byte{
		"empty":             {},
		"short header":      {0x12, 0x34, 0x01},
		"header only":       {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0},
		"truncated qname":   wire[:15],
		"qdcount 2":         append(append([]byte{}, wire[:5]...), append([]byte{2}, wire[6:]...)...),
		"label too long":    append([]byte{0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 70}, make([]byte, 20)...),
		"compression loop":  {0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1},
		"response bit":      append([]byte{wire[0], wire[1], wire[2] | 0x80}, wire[3:]...),
		"oversized garbage": make([]byte, 4000),
	}
	buf := make([]byte, 65535)
	for name, p := range packets {
		if _, err := conn.Write(p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := conn.Read(buf)
		if err != nil {
			continue // no answer is acceptable for garbage
		}
		r := new(dns.Msg)
		if uerr := r.Unpack(buf[:n]); uerr != nil {
			// A header-only FORMERR is fine; anything else is not.
			if n < 12 || buf[3]&0x0f != dns.RcodeFormatError {
				t.Errorf("%s: unparseable answer %x", name, buf[:n])
			}
			continue
		}
		if r.Rcode != dns.RcodeFormatError && r.Rcode != dns.RcodeNotImplemented {
			t.Errorf("%s: rcode %s, want FORMERR\n%s", name, dns.RcodeToString[r.Rcode], r)
		}
	}
	// Still alive and correct.
	if r := exchange(t, addr, "udp", good); r.Rcode != dns.RcodeSuccess {
		t.Fatalf("after garbage: %s", r)
	}
}

// FuzzAnswer feeds arbitrary packets to the handler logic: it must never
// panic, and every answer must pack and fit the transport.
func FuzzAnswer(f *testing.F) {
	for _, seed := range []func() *dns.Msg{
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion(zoneA, dns.TypeMX); m.SetEdns0(1232, true); return m },
		func() *dns.Msg {
			m := new(dns.Msg)
			m.SetQuestion("nope."+zoneA, dns.TypeA)
			m.SetEdns0(512, true)
			return m
		},
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion("_tcp.mx4."+zoneA, dns.TypeTLSA); return m },
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion(zoneB, dns.TypeANY); return m },
	} {
		wire, err := seed().Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire, false)
	}
	srv := New(testAuthority(f), Options{UDPSize: 1232})
	now := time.Now()
	f.Fuzz(func(t *testing.T, wire []byte, tcp bool) {
		r := new(dns.Msg)
		if err := r.Unpack(wire); err != nil {
			return // the dns library answers these with FORMERR itself
		}
		m := srv.Answer(now, r, tcp)
		if m == nil {
			if !r.Response {
				t.Fatal("no answer to a query")
			}
			return
		}
		out, err := m.Pack()
		if err != nil {
			t.Fatalf("answer does not pack: %v\n%s", err, m)
		}
		limit := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			limit = max(int(opt.UDPSize()), dns.MinMsgSize)
		}
		if !tcp && len(out) > max(limit, 1232) {
			t.Fatalf("UDP answer of %d octets exceeds %d", len(out), limit)
		}
	})
}

// BenchmarkAnswer measures the answer path without the network (answer
// cache, or lookup, signing and packing) for the mix of bench/dns.
func BenchmarkAnswer(b *testing.B) {
	srv := New(testAuthority(b), Options{UDPSize: 1232})
	var msgs []*dns.Msg
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{zoneA, dns.TypeMX}, {"mx4." + zoneA, dns.TypeA}, {"_25._tcp.mx4." + zoneA, dns.TypeTLSA},
		{"_mta-sts." + zoneA, dns.TypeTXT}, {"nx-17." + zoneA, dns.TypeA}, {"_tcp.mx4." + zoneA, dns.TypeTLSA},
	} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(1232, true)
		msgs = append(msgs, m)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, _, ok := srv.respond(now, msgs[i%len(msgs)], false, nil); !ok {
			b.Fatal("no answer")
		}
	}
}

// TestAnswerCacheIsTransparent: a cached answer is byte for byte what the
// server would build afresh for the same query, header flags included.
func TestAnswerCacheIsTransparent(t *testing.T) {
	srv := New(testAuthority(t), Options{UDPSize: 1232})
	now := time.Now()
	queries := []func() *dns.Msg{
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion(zoneA, dns.TypeMX); m.SetEdns0(1232, true); return m },
		func() *dns.Msg {
			m := new(dns.Msg)
			m.SetQuestion("nx."+zoneA, dns.TypeA)
			m.SetEdns0(1232, true)
			return m
		},
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion("_tcp.mx4."+zoneA, dns.TypeTLSA); return m },
		func() *dns.Msg { m := new(dns.Msg); m.SetQuestion("example.org.", dns.TypeA); return m },
		func() *dns.Msg {
			m := new(dns.Msg)
			m.SetQuestion("mx5."+zoneA, dns.TypeAAAA)
			m.SetEdns0(4096, true)
			return m
		},
	}
	for i, mk := range queries {
		first := mk()
		if _, _, _, ok := srv.respond(now, first, false, nil); !ok {
			t.Fatalf("query %d: no answer", i)
		}
		for _, flags := range []struct{ rd, cd bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			q := mk()
			q.Id = uint16(1000 + i)
			q.RecursionDesired, q.CheckingDisabled = flags.rd, flags.cd
			got, _, _, _ := srv.respond(now, q, false, nil)
			want, err := srv.Answer(now, q, false).Pack()
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("query %d %+v: cached answer differs from a fresh one", i, flags)
			}
		}
	}
	// A small client buffer must not get the cached full answer.
	q := queries[4]()
	q.IsEdns0().SetUDPSize(512)
	wire, _, _, _ := srv.respond(now, q, false, nil)
	if len(wire) > 512 {
		t.Fatalf("%d octets to a 512-octet client", len(wire))
	}
	// Mixed case is echoed (no cache).
	mixed := new(dns.Msg)
	mixed.SetQuestion("MX4.a.Example.", dns.TypeA)
	wire, _, _, _ = srv.respond(now, mixed, false, nil)
	r := new(dns.Msg)
	if err := r.Unpack(wire); err != nil || r.Question[0].Name != "MX4.a.Example." || len(r.Answer) != 1 {
		t.Fatalf("mixed-case query: %v\n%s", err, r)
	}
}
