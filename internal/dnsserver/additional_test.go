package dnsserver

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/miekg/dns"
)

// TestNameServerAddresses: an NS answer carries every name server's
// address in its additional section (RFC 1035 §3.3.11), signed when the
// query asks for DNSSEC (RFC 4035 §3.1.1), over UDP and TCP; when they do
// not fit a UDP answer they are left out, and the answer is not truncated
// for it (RFC 2181 §9). A resolver that primes the zone from its NS RRset
// then has every server's address at once (docs/cluster.md "Name servers").
func TestNameServerAddresses(t *testing.T) {
	var addrs []netip.Addr
	var names []string
	for i := range 6 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}))
		names = append(names, fmt.Sprintf("ns%d", i+1))
	}
	addr, _ := startServerOf(t, testAuthorityWith(t, addrs, names), Options{})
	for _, tc := range []struct {
		name    string
		net     string
		bufsize uint16 // 0: no EDNS
		do      bool
		glue    bool // the six addresses are in the additional section
	}{
		{"udp, no EDNS", "udp", 0, false, true},
		{"udp, EDNS 1232, DO", "udp", 1232, true, true},
		// Six A RRsets with their RRSIGs do not fit 512 octets beside the
		// signed NS RRset: left out, no TC.
		{"udp, EDNS 512, DO", "udp", 512, true, false},
		{"tcp, DO", "tcp", 1232, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := new(dns.Msg)
			q.SetQuestion(zoneA, dns.TypeNS)
			if tc.bufsize != 0 {
				q.SetEdns0(tc.bufsize, tc.do)
			}
			r := exchange(t, addr, tc.net, q)
			if r.Rcode != dns.RcodeSuccess || r.Truncated {
				t.Fatalf("rcode %s, TC %v; want NOERROR without TC", dns.RcodeToString[r.Rcode], r.Truncated)
			}
			var ns, nsSigs int
			for _, rr := range r.Answer {
				switch rr.(type) {
				case *dns.NS:
					ns++
				case *dns.RRSIG:
					nsSigs++
				}
			}
			if ns != len(names) || (nsSigs == 1) != tc.do {
				t.Fatalf("answer %v: want %d NS records, signed: %v", r.Answer, len(names), tc.do)
			}
			got := map[string]string{}
			var sigs int
			for _, rr := range r.Extra {
				switch rr := rr.(type) {
				case *dns.A:
					got[rr.Hdr.Name] = rr.A.String()
				case *dns.RRSIG:
					sigs++
				case *dns.OPT:
				default:
					t.Errorf("additional record %v", rr)
				}
			}
			if (tc.bufsize != 0) != (r.IsEdns0() != nil) {
				t.Errorf("OPT in the answer: %v; the query had one: %v", r.IsEdns0() != nil, tc.bufsize != 0)
			}
			if !tc.glue {
				if len(got) != 0 || sigs != 0 {
					t.Errorf("additional section %v: want only OPT", r.Extra)
				}
				return
			}
			for i, name := range names {
				if host := name + "." + zoneA; got[host] != addrs[i].String() {
					t.Errorf("additional address of %s: %q, want %s (section %v)", host, got[host], addrs[i], r.Extra)
				}
			}
			if want := 0; tc.do {
				want = len(names)
				if sigs != want {
					t.Errorf("%d RRSIGs in the additional section, want %d", sigs, want)
				}
			} else if sigs != want {
				t.Errorf("%d RRSIGs in the additional section, want none", sigs)
			}
		})
	}
}

// TestNameServerAddressesUnderTheAmplificationCap: signed, three names'
// addresses make the NS answer about 12 times its question; over UDP the
// amplification cap sends a bare truncated reply, and over TCP the answer
// is whole, addresses included (docs/dns.md "The server").
func TestNameServerAddressesUnderTheAmplificationCap(t *testing.T) {
	addrs := []netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("198.18.0.20"), netip.MustParseAddr("198.18.0.30")}
	addr, srv := startServerOf(t, testAuthorityWith(t, addrs, []string{"ns1", "ns2", "ns3"}), Options{MaxAmplification: 10})
	q := new(dns.Msg)
	q.SetQuestion(zoneA, dns.TypeNS)
	q.SetEdns0(1232, true)
	udp := exchange(t, addr, "udp", q)
	if !udp.Truncated || len(udp.Answer) != 0 {
		t.Errorf("UDP: TC %v, %d answer records; want a bare truncated reply", udp.Truncated, len(udp.Answer))
	}
	if got := srv.Limited().AmplificationCut; got != 1 {
		t.Errorf("amplification cuts %d, want 1", got)
	}
	tcp := exchange(t, addr, "tcp", q)
	var glue int
	for _, rr := range tcp.Extra {
		if _, ok := rr.(*dns.A); ok {
			glue++
		}
	}
	if tcp.Truncated || glue != len(addrs) {
		t.Errorf("TCP: TC %v, %d addresses in the additional section; want all %d", tcp.Truncated, glue, len(addrs))
	}
}
