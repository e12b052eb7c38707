package hardening

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
)

// source returns the loopback address 127.a.b.c, a source of the suite's
// own inside the namespace (all of 127.0.0.0/8 is local there).
func source(a, b, c int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(a), byte(b), byte(c)})
}

// udpFrom opens a UDP socket bound to src, connected to dst.
func udpFrom(src netip.Addr, dst netip.AddrPort) (*net.UDPConn, error) {
	return net.DialUDP("udp", &net.UDPAddr{IP: src.AsSlice()}, net.UDPAddrFromAddrPort(dst))
}

// exchangeFrom sends m from src over UDP or TCP and returns the answer and
// the octets of question and answer.
func exchangeFrom(ctx context.Context, src netip.Addr, dst netip.AddrPort, netw string, m *dns.Msg) (*dns.Msg, int, int, error) {
	var local net.Addr = &net.UDPAddr{IP: src.AsSlice()}
	if netw == "tcp" {
		local = &net.TCPAddr{IP: src.AsSlice()}
	}
	c := &dns.Client{Net: netw, Timeout: 3 * time.Second, UDPSize: 65535, Dialer: &net.Dialer{LocalAddr: local, Timeout: 3 * time.Second}}
	q, err := m.Pack()
	if err != nil {
		return nil, 0, 0, err
	}
	r, _, err := c.ExchangeContext(ctx, m, dst.String())
	if err != nil {
		return nil, len(q), 0, err
	}
	// The answer's size as sent: miekg unpacked it; pack it again
	// uncompressed would overstate it, so keep the server's compression.
	r.Compress = true
	a, err := r.Pack()
	if err != nil {
		return nil, len(q), 0, err
	}
	return r, len(q), len(a), nil
}

func query(name string, qtype uint16, do bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = true // a spoofer's query asks for recursion; we must not give it
	m.SetEdns0(4096, do)
	return m
}

// dnsRefusals: names outside the zones REFUSED without recursion, ANY
// minimal (RFC 8482), AXFR refused, CHAOS refused.
func (s *Suite) dnsRefusals(ctx context.Context) Check {
	src := source(66, 0, 1)
	var bad []string
	type want struct {
		what  string
		m     *dns.Msg
		netw  string
		rcode int
	}
	chaos := query("version.bind.", dns.TypeTXT, false)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	for _, w := range []want{
		{"out-of-zone A", query("www.example.com.", dns.TypeA, false), "udp", dns.RcodeRefused},
		{"root NS (priming)", query(".", dns.TypeNS, false), "udp", dns.RcodeRefused},
		{"parent of zone A", query(parentOf(s.Env.ZoneA), dns.TypeSOA, false), "udp", dns.RcodeRefused},
		{"AXFR of zone A", query(s.Env.ZoneA, dns.TypeAXFR, false), "tcp", dns.RcodeRefused},
		{"IXFR of zone A", query(s.Env.ZoneA, dns.TypeIXFR, false), "tcp", dns.RcodeRefused},
		{"CHAOS version.bind", chaos, "udp", dns.RcodeRefused},
	} {
		r, _, _, err := exchangeFrom(ctx, src, s.Env.DNS, w.netw, w.m)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v", w.what, err))
		case r.Rcode != w.rcode:
			bad = append(bad, fmt.Sprintf("%s: %s, want %s", w.what, dns.RcodeToString[r.Rcode], dns.RcodeToString[w.rcode]))
		case r.RecursionAvailable || len(r.Answer) > 0:
			bad = append(bad, fmt.Sprintf("%s: RA=%v, %d answers", w.what, r.RecursionAvailable, len(r.Answer)))
		}
	}
	// RFC 8482 §4.1: ANY gets one RRset (and its signature), not all.
	rrsets := 0
	if r, _, _, err := exchangeFrom(ctx, src, s.Env.DNS, "udp", query(s.Env.ZoneA, dns.TypeANY, true)); err != nil {
		bad = append(bad, fmt.Sprintf("ANY: %v", err))
	} else {
		types := map[uint16]bool{}
		for _, rr := range r.Answer {
			if rr.Header().Rrtype != dns.TypeRRSIG {
				types[rr.Header().Rrtype] = true
			}
		}
		rrsets = len(types)
		if rrsets > 1 {
			bad = append(bad, fmt.Sprintf("ANY: %d RRsets, want at most 1 (RFC 8482)", rrsets))
		}
	}
	return result(bad, map[string]any{"any_rrsets": rrsets}, "out-of-zone, root, parent, AXFR, IXFR, CHAOS refused without recursion; ANY minimal")
}

func parentOf(fqdn string) string {
	labels := dns.SplitDomainName(fqdn)
	if len(labels) < 2 {
		return "."
	}
	return dns.Fqdn(joinLabels(labels[1:]))
}

func joinLabels(l []string) string {
	out := ""
	for i, s := range l {
		if i > 0 {
			out += "."
		}
		out += s
	}
	return out
}

// dnsSizes asks every name and type of both zones with DO and a 4096
// octet buffer: every UDP answer fits 1232 octets (DNS flag day 2020), and
// the worst answer/question ratio is at most 10.
func (s *Suite) dnsSizes(ctx context.Context) Check {
	type q struct {
		name  string
		qtype uint16
	}
	var qs []q
	for _, z := range []string{s.Env.ZoneA, s.Env.ZoneB} {
		for _, t := range []uint16{dns.TypeSOA, dns.TypeNS, dns.TypeDNSKEY, dns.TypeMX, dns.TypeTXT, dns.TypeA, dns.TypeAAAA, dns.TypeCAA, dns.TypeNSEC, dns.TypeDS} {
			qs = append(qs, q{z, t})
		}
		for _, n := range []string{"_mta-sts.", "_smtp._tls.", "mta-sts.", "nonexistent-name.", "*."} {
			qs = append(qs, q{n + z, dns.TypeTXT}, q{n + z, dns.TypeA})
		}
		for i := 1; i <= 9; i++ {
			host := fmt.Sprintf("mx%d.%s", i, z)
			qs = append(qs, q{"_25._tcp." + host, dns.TypeTLSA}, q{host, dns.TypeA}, q{host, dns.TypeAAAA})
		}
	}
	var bad []string
	largest, worstRatio, worst := 0, 0.0, ""
	for i, x := range qs {
		// A source per query (another /24 each): rate limiting must not
		// shape this measurement.
		src := source(66, 1+i%250, 1+i/250)
		r, qlen, alen, err := exchangeFrom(ctx, src, s.Env.DNS, "udp", query(x.name, x.qtype, true))
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s %s: %v", x.name, dns.TypeToString[x.qtype], err))
			continue
		}
		if alen > 1232 {
			bad = append(bad, fmt.Sprintf("%s %s: %d octets over UDP", x.name, dns.TypeToString[x.qtype], alen))
		}
		largest = max(largest, alen)
		if ratio := float64(alen) / float64(qlen); ratio > worstRatio {
			worstRatio, worst = ratio, fmt.Sprintf("%s %s (%d/%d octets, %s)", x.name, dns.TypeToString[x.qtype], alen, qlen, dns.RcodeToString[r.Rcode])
		}
	}
	if worstRatio > 10 {
		bad = append(bad, fmt.Sprintf("amplification %.1f× for %s, want at most 10×", worstRatio, worst))
	}
	return result(bad, map[string]any{"queries": len(qs), "largest_udp_answer": largest, "worst_amplification": round1(worstRatio), "worst_query": worst},
		fmt.Sprintf("%d queries with DO: largest answer %d octets, worst amplification %.1f× (%s)", len(qs), largest, worstRatio, worst))
}

// dnsRateLimit floods one name from one /24 at Sizes.FloodRate while
// another network asks the same name ten times a second: the flooder gets
// at most 20 full answers a second (after a second of credit), the rest
// truncated or dropped; the other network gets every answer.
func (s *Suite) dnsRateLimit(ctx context.Context) Check {
	const limit = 20 // dns.rrl_responses_per_second's default
	secs := s.Sizes.FloodSeconds
	if secs > 10 {
		secs = 10 // the rate is what is measured; ten seconds tell it
	}
	name := "mx4." + s.Env.ZoneA
	flood, err := udpFrom(source(67, 1, 10), s.Env.DNS)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	defer flood.Close()
	var full, truncated atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 4096)
		for {
			_ = flood.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := flood.Read(buf)
			if err != nil {
				return
			}
			var r dns.Msg
			if r.Unpack(buf[:n]) != nil {
				continue
			}
			if r.Truncated {
				truncated.Add(1)
			} else {
				full.Add(1)
			}
		}
	}()
	// The other network, at 10 q/s, in its own goroutine.
	var otherAsked, otherAnswered atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			otherAsked.Add(1)
			if r, _, _, err := exchangeFrom(ctx, source(68, 1, 10), s.Env.DNS, "udp", query(name, dns.TypeA, false)); err == nil && !r.Truncated && r.Rcode == dns.RcodeSuccess {
				otherAnswered.Add(1)
			}
		}
	}()
	wire, _ := query(name, dns.TypeA, false).Pack()
	sent := pace(ctx, s.Sizes.FloodRate, time.Duration(secs)*time.Second, func(i int) {
		wire[0], wire[1] = byte(i>>8), byte(i)
		_, _ = flood.Write(wire)
	})
	close(stop)
	wg.Wait()
	<-done // two seconds without an answer: the rest were dropped
	perSecond := float64(full.Load()-limit) / float64(secs)
	figures := map[string]any{"seconds_flooded": secs, "queries": sent, "full_answers": full.Load(), "truncated": truncated.Load(),
		"dropped": int64(sent) - full.Load() - truncated.Load(), "full_answers_per_second": round1(perSecond),
		"other_asked": otherAsked.Load(), "other_answered": otherAnswered.Load()}
	var bad []string
	if full.Load() > int64(limit*secs+limit+limit/2) {
		bad = append(bad, fmt.Sprintf("%d full answers in %d s at %d q/s: over %d/s", full.Load(), secs, s.Sizes.FloodRate, limit))
	}
	if truncated.Load() == 0 {
		bad = append(bad, "no truncated reply: a real resolver behind the flooded network gets no hint to use TCP")
	}
	if otherAnswered.Load() < otherAsked.Load()-1 { // the last may be cut off by stop
		bad = append(bad, fmt.Sprintf("another network got %d of %d answers", otherAnswered.Load(), otherAsked.Load()))
	}
	return result(bad, figures, fmt.Sprintf("%d q from one network in %d s: %d full (%.1f/s after a second of credit), %d truncated; another network %d/%d answered",
		sent, secs, full.Load(), perSecond, truncated.Load(), otherAnswered.Load(), otherAsked.Load()))
}

// pace calls send rate times a second for d (bounded: at most rate×d
// calls), and returns the number of calls.
func pace(ctx context.Context, rate int, d time.Duration, send func(i int)) int {
	start := time.Now()
	total := int(float64(rate) * d.Seconds())
	for i := 0; i < total; i++ {
		if ctx.Err() != nil || time.Since(start) > d+time.Second {
			return i
		}
		if due := start.Add(time.Duration(i) * time.Second / time.Duration(rate)); time.Until(due) > 0 {
			time.Sleep(time.Until(due))
		}
		send(i)
	}
	return total
}

// idleTCP holds Sizes.IdleTCP idle TCP connections to the DNS server from
// many networks; SMTP and the web must still accept and answer, and the
// server keeps only as many open as its caps allow.
func (s *Suite) idleTCP(ctx context.Context) Check {
	n := s.Sizes.IdleTCP
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var dialErrs int
	for i := 0; i < n && ctx.Err() == nil; i++ {
		src := source(70+i/60000, (i/250)%240, 1+i%250)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, "tcp", s.Env.DNS.String())
		if err != nil {
			dialErrs++
			continue
		}
		conns = append(conns, c)
	}
	// How many the server kept: a read on a connection it closed ends at
	// once; on one it keeps, it waits.
	open := countOpen(conns)
	var bad []string
	smtpOK, smtpErr := smtpGreets(ctx, source(69, 1, 1), s.Env.SMTP)
	if !smtpOK {
		bad = append(bad, "SMTP does not greet: "+smtpErr)
	}
	webOK, webErr := webAnswers(ctx, s.Env.Web)
	if !webOK {
		bad = append(bad, "the web UI does not answer: "+webErr)
	}
	udpOK := true
	if r, _, _, err := exchangeFrom(ctx, source(69, 2, 1), s.Env.DNS, "udp", query(s.Env.ZoneA, dns.TypeSOA, false)); err != nil || r.Rcode != dns.RcodeSuccess {
		udpOK = false
		bad = append(bad, fmt.Sprintf("DNS over UDP does not answer: %v", err))
	}
	if dialErrs > n/10 {
		bad = append(bad, fmt.Sprintf("%d of %d connections could not even be made (the suite's own limits?)", dialErrs, n))
	}
	return result(bad, map[string]any{"idle_connections": len(conns), "kept_open_by_server": open, "dial_errors": dialErrs,
		"smtp_greets": smtpOK, "web_answers": webOK, "udp_answers": udpOK},
		fmt.Sprintf("%d idle DNS TCP connections (server kept %d open): SMTP greets %v, web answers %v, UDP answers %v", len(conns), open, smtpOK, webOK, udpOK))
}

// countOpen counts the connections the peer has not closed, reading all
// at once with a short deadline.
func countOpen(conns []net.Conn) int {
	var open atomic.Int64
	fanOut(context.Background(), len(conns), 256, func(i int) {
		_ = conns[i].SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := conns[i].Read(make([]byte, 1))
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			open.Add(1)
		}
	})
	return int(open.Load())
}

// randomLabel is a fresh DNS label: the names of a flood.
func randomLabel(r *rand.Rand) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 12)
	for i := range b {
		b[i] = letters[r.IntN(len(letters))]
	}
	return string(b)
}
