package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnszone"
)

func TestRateLimiter(t *testing.T) {
	const rate = 20
	l := newRateLimiter(RRL{ResponsesPerSecond: rate, Slip: 2})
	flooder := netip.MustParseAddr("192.0.2.7")
	neighbour := netip.MustParseAddr("192.0.2.200") // same /24: same buckets
	other := netip.MustParseAddr("198.51.100.1")
	start := time.Unix(1000, 0)

	// One /24 at 1,000 q/s for one name for 5 s: at most rate per second
	// after one second of credit; about half of the rest slip.
	const seconds, qps = 5, 1000
	var sent, slipped, dropped, otherSent int
	for i := range seconds * qps {
		now := start.Add(time.Duration(i) * time.Second / qps)
		switch l.decide(now, flooder, dns.RcodeSuccess, "mx4.a.example.", dns.TypeTLSA) {
		case rrlSend:
			sent++
		case rrlTruncate:
			slipped++
		case rrlDrop:
			dropped++
		}
		if i%100 == 0 { // another network at 10 q/s for the same name
			if l.decide(now, other, dns.RcodeSuccess, "mx4.a.example.", dns.TypeTLSA) == rrlSend {
				otherSent++
			}
		}
	}
	if max := rate*seconds + rate; sent > max || sent < rate*seconds {
		t.Errorf("flooding /24: %d full answers in %d s, want %d..%d", sent, seconds, rate*seconds, max)
	}
	// The slip count starts again after each full answer: one in two of
	// each run of limited answers, give or take one per run.
	if limited := slipped + dropped; slipped < limited/2-sent || slipped > limited/2+sent {
		t.Errorf("slip 2: %d truncated of %d limited", slipped, limited)
	}
	if otherSent != seconds*qps/100 {
		t.Errorf("another network got %d of %d answers", otherSent, seconds*qps/100)
	}
	now := start.Add(seconds * time.Second)
	// The same /24 asking another name has its own bucket.
	if got := l.decide(now, neighbour, dns.RcodeSuccess, "mx6.a.example.", dns.TypeA); got != rrlSend {
		t.Errorf("another name from the flooding /24: %v, want sent", got)
	}
	// Random names (NXDOMAIN) share one bucket per network.
	nx := 0
	for i := range 200 {
		if l.decide(now, other, dns.RcodeNameError, fmt.Sprintf("r%d.a.example.", i), dns.TypeA) == rrlSend {
			nx++
		}
	}
	if nx > rate+1 {
		t.Errorf("200 random NXDOMAIN names at once: %d answers, want at most %d", nx, rate+1)
	}
	// After a quiet second, the flooder's bucket has recovered.
	if got := l.decide(now.Add(2*time.Second), flooder, dns.RcodeSuccess, "mx4.a.example.", dns.TypeTLSA); got != rrlSend {
		t.Errorf("after a quiet while: %v, want sent", got)
	}
	if newRateLimiter(RRL{}) != nil {
		t.Error("ResponsesPerSecond 0 must turn RRL off")
	}
}

func TestTruncatedReply(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("mx4.a.example.", dns.TypeTLSA)
	m.Response = true
	m.Answer = []dns.RR{&dns.TLSA{Hdr: dns.RR_Header{Name: "mx4.a.example.", Rrtype: dns.TypeTLSA, Class: dns.ClassINET, Ttl: 60}, Usage: 3, Selector: 1, MatchingType: 1, Certificate: "00ff"}}
	m.SetEdns0(1232, true)
	wire, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	out := truncatedReply(wire)
	var r dns.Msg
	if err := r.Unpack(out); err != nil {
		t.Fatalf("truncated reply does not parse: %v", err)
	}
	if !r.Truncated || len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 || len(r.Question) != 1 || r.Question[0].Name != "mx4.a.example." || r.Id != m.Id {
		t.Fatalf("truncated reply: %v", &r)
	}
	if len(out) >= len(wire) {
		t.Fatalf("truncated reply of %d octets from an answer of %d", len(out), len(wire))
	}
	for _, bad := range [][]byte{nil, wire[:11], append(append([]byte(nil), wire[:12]...), 63)} {
		if got := truncatedReply(bad); got != nil {
			t.Errorf("truncatedReply(%x) = %x, want nil", bad, got)
		}
	}
}

// startLimitedServer runs a server with opt's limits on 127.0.0.1.
func startLimitedServer(t *testing.T, opt Options) (string, *Server) {
	t.Helper()
	return startServerOf(t, testAuthority(t), opt)
}

// startServerOf runs a server of auth with opt on 127.0.0.1.
func startServerOf(t *testing.T, auth *dnszone.Authority, opt Options) (string, *Server) {
	t.Helper()
	opt.UDPSize = 1232
	srv := New(auth, opt)
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := Listen(ctx, []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ls[0].Addr().String(), srv
}

// TestRRLOverUDP floods the server over UDP from one address: a few full
// answers, about half of the rest truncated, and TCP still answers.
func TestRRLOverUDP(t *testing.T) {
	const rate, queries = 5, 200
	addr, srv := startLimitedServer(t, Options{RRL: RRL{ResponsesPerSecond: rate, Slip: 2}})
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	q := new(dns.Msg)
	q.SetQuestion(zoneA, dns.TypeSOA)
	wire, _ := q.Pack()
	for range queries {
		if _, err := conn.Write(wire); err != nil {
			t.Fatal(err)
		}
	}
	var full, truncated int
	buf := make([]byte, 4096)
	for full+truncated < queries {
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			break // the rest were dropped
		}
		var r dns.Msg
		if err := r.Unpack(buf[:n]); err != nil {
			t.Fatalf("answer does not parse: %v", err)
		}
		if r.Truncated {
			truncated++
		} else {
			full++
		}
	}
	// The queries arrive within well under a second, but allow for a slow
	// machine: at most one second of credit plus a second of rate.
	if full < 1 || full > 3*rate {
		t.Errorf("%d full answers to %d queries at rate %d/s", full, queries, rate)
	}
	if truncated < (queries-3*rate)/2-rate || truncated > queries/2+1 {
		t.Errorf("%d truncated answers, want about half of the %d limited", truncated, queries-full)
	}
	lim := srv.Limited()
	if lim.RRLSlipped != int64(truncated) || lim.RRLDropped < int64(queries-full-truncated) {
		t.Errorf("counted %+v; saw %d truncated, %d missing", lim, truncated, queries-full-truncated)
	}
	// TCP is not limited: the resolver told to retry there gets its answer.
	if r := exchange(t, addr, "tcp", q); r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
		t.Fatalf("over TCP: %v", r)
	}
}

// TestTCPConnectionCaps holds idle connections open: past the per-client
// and global caps, new connections are closed at once; a freed slot is
// usable again.
func TestTCPConnectionCaps(t *testing.T) {
	addr, srv := startLimitedServer(t, Options{TCP: TCPLimits{MaxConnections: 3, MaxPerClient: 2, PrefixV4: 32, IdleTimeout: time.Minute}})
	dialFrom := func(src string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closed reports whether the server closed c (a read ends with EOF)
	// rather than keeping it open (the read times out).
	closed := func(c net.Conn) bool {
		t.Helper()
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return err != nil && !(errors.As(err, &ne) && ne.Timeout())
	}
	a1, a2 := dialFrom("127.0.0.1"), dialFrom("127.0.0.1")
	if closed(a1) || closed(a2) {
		t.Fatal("connections within the caps were closed")
	}
	if a3 := dialFrom("127.0.0.1"); !closed(a3) {
		t.Error("a third connection of one client stays open past max 2 per client")
	}
	b1 := dialFrom("127.0.0.2")
	if closed(b1) {
		t.Fatal("another client's first connection was closed")
	}
	if b2 := dialFrom("127.0.0.2"); !closed(b2) {
		t.Error("a fourth connection stays open past max 3 in all")
	}
	a1.Close()
	// The freed slot is taken back once the server sees the close.
	q := new(dns.Msg)
	q.SetQuestion(zoneA, dns.TypeSOA)
	var r *dns.Msg
	for range 50 {
		c := &dns.Client{Net: "tcp", Timeout: time.Second, Dialer: &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}}
		if r, _, _ = c.Exchange(q, addr); r != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r == nil || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("after a close, a new connection gets no answer: %v", r)
	}
	if got := srv.Limited().TCPRefused; got < 2 {
		t.Errorf("TCPRefused = %d, want at least 2", got)
	}
}

// TestAmplificationCap: a signed NXDOMAIN for a short name is ~11 times
// its question; with the cap at 10 it goes out truncated over UDP and
// whole over TCP, and a small answer is untouched.
func TestAmplificationCap(t *testing.T) {
	addr, srv := startLimitedServer(t, Options{MaxAmplification: 10})
	nx := new(dns.Msg)
	nx.SetQuestion("x."+zoneA, dns.TypeA)
	nx.SetEdns0(4096, true)
	qlen := nx.Len()
	r := exchange(t, addr, "udp", nx)
	if !r.Truncated || len(r.Ns)+len(r.Answer) != 0 {
		t.Fatalf("NXDOMAIN of %d-octet question over UDP: TC=%v, %d records", qlen, r.Truncated, len(r.Ns)+len(r.Answer))
	}
	full := exchange(t, addr, "tcp", nx)
	if full.Rcode != dns.RcodeNameError || full.Len() <= 10*qlen {
		t.Fatalf("over TCP: %s, %d octets for a %d-octet question (the test needs an answer over 10×)", dns.RcodeToString[full.Rcode], full.Len(), qlen)
	}
	small := new(dns.Msg)
	small.SetQuestion(zoneA, dns.TypeSOA)
	if r := exchange(t, addr, "udp", small); r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("SOA without DO: TC=%v, %d answers", r.Truncated, len(r.Answer))
	}
	if got := srv.Limited().AmplificationCut; got != 1 {
		t.Fatalf("AmplificationCut = %d, want 1", got)
	}
}

// TestServeStopsWhenCancelledAtOnce: a context cancelled before the TCP
// servers have started still ends Serve (it used to wait for ever).
func TestServeStopsWhenCancelledAtOnce(t *testing.T) {
	for range 20 {
		srv := New(testAuthority(t), Options{})
		ctx, cancel := context.WithCancel(context.Background())
		ls, err := Listen(ctx, []string{"127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		cancel()
		go func() { done <- srv.Serve(ctx, ls) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after its context was cancelled")
		}
	}
}
