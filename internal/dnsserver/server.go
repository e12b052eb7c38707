// Package dnsserver is the authoritative DNS server of the test zones: it
// answers over UDP and TCP from dnszone snapshots, signs on the way out when
// the query sets DO, and records every query for a name in its zones as
// evidence for the tests (DESIGN.md §4: "your resolver looked up TLSA for
// mx4.A"); queries for other names are answered REFUSED and not recorded.
//
// It is not a resolver: no recursion, REFUSED outside its zones.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnszone"
	"github.com/mailsec/mailsec/internal/listen"
	"github.com/mailsec/mailsec/internal/store"
)

// QueryRecorder receives one record per answered query for a name in our
// zones. Record must not block (store.DNSQueryLog buffers and drops under
// overload, and bounds the rows it writes).
type QueryRecorder interface {
	Record(store.DNSQuery)
}

// Options configures a Server.
type Options struct {
	// UDPSize is the largest UDP answer we send to an EDNS client
	// (RFC 6891 §6.2.5); clients without EDNS get 512 octets.
	UDPSize  int
	Recorder QueryRecorder // nil: queries are not recorded
	Logger   *slog.Logger
	Now      func() time.Time // nil: time.Now
	// RRL limits the UDP answers per client network (zero: off).
	RRL RRL
	// TCP bounds the TCP connections (zero: defaults).
	TCP TCPLimits
	// MaxAmplification: a UDP answer more than this many times the size of
	// its question is sent truncated (TC=1) instead; 0: no cap.
	MaxAmplification int
}

// Server answers queries for the zones of an Authority.
type Server struct {
	auth    *dnszone.Authority
	cache   atomic.Pointer[answerCache]
	udpSize uint16
	rec     QueryRecorder
	log     *slog.Logger
	now     func() time.Time
	rrl     *rateLimiter // nil: no response rate limiting
	tcp     TCPLimits

	maxAmplification int

	rrlSlipped, rrlDropped, tcpRefused, amplificationCut atomic.Int64
	queries                                              queryCounts
}

// Limited counts what the server's limits withheld since it started: UDP
// answers sent truncated and dropped by RRL, UDP answers truncated by the
// amplification cap, and TCP connections closed at accept because of the
// connection caps.
type Limited struct {
	RRLSlipped, RRLDropped, AmplificationCut, TCPRefused int64
}

// Limited returns the counts of withheld answers and connections.
func (s *Server) Limited() Limited {
	return Limited{RRLSlipped: s.rrlSlipped.Load(), RRLDropped: s.rrlDropped.Load(), AmplificationCut: s.amplificationCut.Load(), TCPRefused: s.tcpRefused.Load()}
}

// New returns a server for auth.
func New(auth *dnszone.Authority, opt Options) *Server {
	s := &Server{auth: auth, udpSize: uint16(opt.UDPSize), rec: opt.Recorder, log: opt.Logger, now: opt.Now,
		rrl: newRateLimiter(opt.RRL), tcp: opt.TCP.withDefaults(), maxAmplification: opt.MaxAmplification}
	if s.udpSize < dns.MinMsgSize {
		s.udpSize = 1232
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s
}

// ServeDNS implements dns.Handler. It serves TCP; UDP has its own batched
// loop (udp.go) that ends in the same respond.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	defer func() {
		// Last line of defence: a bug must cost one answer, not the
		// server. The fuzz target exists so that this never runs.
		if p := recover(); p != nil {
			s.log.Error("dns handler panic", "panic", p, "client", w.RemoteAddr().String())
			m := new(dns.Msg)
			m.SetRcode(r, dns.RcodeServerFailure)
			_ = w.WriteMsg(m)
		}
	}()
	now := s.now()
	tcp := isTCP(w)
	wire, rcode, name, ok := s.respond(now, r, tcp, nil)
	if !ok {
		return
	}
	if _, err := w.Write(wire); err != nil {
		s.log.Debug("dns write failed", "client", w.RemoteAddr().String(), "err", err)
	}
	if len(r.Question) == 1 {
		var do bool
		var ecs string
		if opt := r.IsEdns0(); opt != nil {
			do, ecs = opt.Do(), clientSubnet(opt)
		}
		s.record(now, addrPort(w.RemoteAddr()), tcp, name, r.Question[0].Qtype, do, ecs, rcode)
	}
}

// record counts one answered query (Queries) and hands it, if for a name
// in our zones, to the query log. Queries for other names (answered REFUSED: not ours, and we do not
// recurse) are evidence of nothing a test asks about, and random names
// from spoofed sources would otherwise cost a row each.
func (s *Server) record(now time.Time, client netip.AddrPort, tcp bool, name string, qtype uint16, do bool, ecs string, rcode int) {
	s.queries.add(qtype, rcode)
	if s.rec == nil || s.auth.Snapshot(now).Find(name) == nil {
		return
	}
	transport := "udp"
	if tcp {
		transport = "tcp"
	}
	s.rec.Record(store.DNSQuery{Time: now, Client: client, Transport: transport, Name: name,
		Type: qtype, DO: do, ECS: ecs, Rcode: rcode})
}

// respond returns the packed answer to the decoded query r (appended to
// buf), its rcode and the lower-case question name; ok is false when r gets
// no answer. Cacheable answers are stored in the snapshot's answer cache.
func (s *Server) respond(now time.Time, r *dns.Msg, tcp bool, buf []byte) (wire []byte, rcode int, name string, ok bool) {
	snap := s.auth.Snapshot(now)
	cache := s.cacheFor(snap)
	key, cacheable := cacheKeyOf(r)
	if cacheable {
		if e, hit := cache.get(key, now); hit && (tcp || len(e.wire) <= udpLimit(r, s.udpSize)) {
			return e.forQuery(buf, r.Id, r.RecursionDesired, r.CheckingDisabled), e.rcode, e.name, true
		}
	}
	if len(r.Question) > 0 {
		name = lowerName(r.Question[0].Name)
	}
	m := s.answer(now, snap, r, tcp)
	if m == nil {
		return nil, 0, name, false
	}
	wire, cut, err := s.pack(m, r, tcp, buf)
	if err != nil {
		s.log.Error("packing answer failed", "err", err)
		m = new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
		if wire, err = m.PackBuffer(buf); err != nil {
			return nil, 0, name, false
		}
		return wire, m.Rcode, name, true
	}
	// An answer cut for this client's UDP size (additional data left
	// out, or truncated) is not what the next client should get.
	if cacheable && !cut && (m.Rcode == dns.RcodeSuccess || m.Rcode == dns.RcodeNameError || m.Rcode == dns.RcodeRefused) {
		cache.put(key, &cachedAnswer{wire: append([]byte(nil), wire...), rcode: m.Rcode, name: name, expires: now.Add(answerCacheLifetime)})
	}
	return wire, m.Rcode, name, true
}

// Answer builds the response to query r as it is at time now, over TCP or
// UDP, truncated as it would be sent. It returns nil for messages that get
// no answer at all.
func (s *Server) Answer(now time.Time, r *dns.Msg, tcp bool) *dns.Msg {
	m := s.answer(now, s.auth.Snapshot(now), r, tcp)
	if m != nil {
		if _, _, err := s.pack(m, r, tcp, nil); err != nil {
			s.log.Error("packing answer failed", "err", err)
		}
	}
	return m
}

func (s *Server) answer(now time.Time, snap *dnszone.Snapshot, r *dns.Msg, tcp bool) *dns.Msg {
	if r.Response {
		return nil // never answer an answer: that is how reflection loops start
	}
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = false
	if r.Opcode != dns.OpcodeQuery {
		// NOTIFY, UPDATE and friends: we are the only primary.
		m.SetRcode(r, dns.RcodeNotImplemented)
		return s.finish(m, r, tcp)
	}
	if len(r.Question) != 1 || len(r.Answer) > 0 || len(r.Ns) > 0 {
		m.SetRcode(r, dns.RcodeFormatError)
		return s.finish(m, r, tcp)
	}
	opt, err := queryOPT(r)
	if err != nil {
		m.SetRcode(r, dns.RcodeFormatError)
		return s.finish(m, r, tcp)
	}
	if opt != nil && opt.Version() != 0 {
		// RFC 6891 §6.1.3: we speak EDNS version 0 only.
		m.SetRcode(r, dns.RcodeBadVers)
		return s.finish(m, r, tcp)
	}
	q := r.Question[0]
	switch {
	case q.Qtype == dns.TypeOPT:
		m.SetRcode(r, dns.RcodeFormatError) // RFC 6891 §6.1.1: OPT is no query type
		return s.finish(m, r, tcp)
	case q.Qclass != dns.ClassINET:
		m.SetRcode(r, dns.RcodeRefused) // CHAOS "version.bind" and friends
		return s.finish(m, r, tcp)
	case q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR:
		m.SetRcode(r, dns.RcodeRefused) // no transfers: use `mailsec dns dump`
		return s.finish(m, r, tcp)
	case q.Qtype == dns.TypeMAILA || q.Qtype == dns.TypeMAILB || q.Qtype == dns.TypeTKEY || q.Qtype == dns.TypeTSIG:
		m.SetRcode(r, dns.RcodeNotImplemented)
		return s.finish(m, r, tcp)
	}
	zone := snap.Find(q.Name)
	if zone == nil {
		m.SetRcode(r, dns.RcodeRefused) // not ours, and we do not recurse
		return s.finish(m, r, tcp)
	}
	do := opt != nil && opt.Do()
	res := zone.Lookup(q.Name, q.Qtype, do)
	m.Authoritative = true
	m.Rcode = res.Rcode
	if m.Answer, err = s.sections(now, zone, res.Answer, do); err == nil {
		m.Ns, err = s.sections(now, zone, res.Authority, do)
	}
	if err == nil {
		// RFC 4035 §3.1.1: the additional section's RRsets with their
		// RRSIGs, like the others; pack drops them when they do not fit.
		m.Extra, err = s.sections(now, zone, res.Additional, do)
	}
	if err != nil {
		s.log.Error("signing failed", "qname", q.Name, "err", err)
		m = new(dns.Msg)
		m.SetRcode(r, dns.RcodeServerFailure)
	}
	return s.finish(m, r, tcp)
}

// sections flattens RRsets into a message section, each followed by its
// RRSIG when the client asked for DNSSEC records.
func (s *Server) sections(now time.Time, z *dnszone.SignedZone, sets [][]dns.RR, do bool) ([]dns.RR, error) {
	var out []dns.RR
	for _, set := range sets {
		if !do || z.Signer == nil {
			out = append(out, set...)
			continue
		}
		signed, err := z.Sign(now, set)
		if err != nil {
			return nil, err
		}
		out = append(out, signed...)
	}
	return out, nil
}

// finish adds our OPT record when the query had one. Answers are always
// name-compressed; truncation is decided by pack on the packed size.
func (s *Server) finish(m, r *dns.Msg, tcp bool) *dns.Msg {
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(s.udpSize, opt.Do())
	}
	m.Compress = true
	return m
}

// pack packs m into buf. A UDP answer larger than the client allows
// first loses its additional data (RFC 2181 §9: without TC), then is
// truncated, with TC set so the client retries over TCP (RFC 7766 §5); cut
// tells whether either happened. The decision is taken on the real packed
// size, the same test the fast UDP path applies to cached answers (miekg's
// Truncate alone estimates the length and may cut an answer that would
// fit).
func (s *Server) pack(m, r *dns.Msg, tcp bool, buf []byte) (wire []byte, cut bool, err error) {
	wire, err = m.PackBuffer(buf)
	if err != nil || tcp {
		return wire, false, err
	}
	limit := udpLimit(r, s.udpSize)
	if len(wire) <= limit {
		return wire, false, nil
	}
	if dropAdditional(m) {
		if wire, err = m.PackBuffer(buf); err != nil || len(wire) <= limit {
			return wire, true, err
		}
	}
	m.Truncate(limit)
	m.Compress = true // Truncate may turn it off; keep octets independent of the client
	wire, err = m.PackBuffer(buf)
	return wire, true, err
}

// dropAdditional removes the additional section's records but the OPT
// record; it tells whether there were any.
func dropAdditional(m *dns.Msg) bool {
	kept := m.Extra[:0]
	for _, rr := range m.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			kept = append(kept, rr)
		}
	}
	dropped := len(kept) < len(m.Extra)
	m.Extra = kept
	return dropped
}

// udpLimit is the largest UDP answer for query r: 512 without EDNS, else
// the client's size within [512, ours] (RFC 6891 §6.2.5: values below 512
// are treated as 512).
func udpLimit(r *dns.Msg, ours uint16) int {
	if opt := r.IsEdns0(); opt != nil {
		return int(min(max(opt.UDPSize(), dns.MinMsgSize), ours))
	}
	return dns.MinMsgSize
}

// queryOPT returns the query's OPT record; more than one is a format error
// (RFC 6891 §6.1.1).
func queryOPT(r *dns.Msg) (*dns.OPT, error) {
	var opt *dns.OPT
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil {
				return nil, errors.New("several OPT records")
			}
			if o.Hdr.Name != "." {
				return nil, errors.New("OPT not at the root")
			}
			opt = o
		}
	}
	return opt, nil
}

func clientSubnet(opt *dns.OPT) string {
	for _, o := range opt.Option {
		if ecs, ok := o.(*dns.EDNS0_SUBNET); ok {
			a, ok := netip.AddrFromSlice(ecs.Address)
			if !ok {
				return ""
			}
			p, err := a.Unmap().Prefix(int(ecs.SourceNetmask))
			if err != nil {
				return ""
			}
			return p.String()
		}
	}
	return ""
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

func addrPort(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.AddrPort()
	case *net.TCPAddr:
		return v.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Listener is one bound address served over UDP and TCP. UDP has one socket
// per CPU sharing the address (SO_REUSEPORT on Linux), each with its own
// reader.
type Listener struct {
	UDP []net.PacketConn
	TCP net.Listener
}

// Addr returns the bound address (UDP and TCP share the port).
func (l Listener) Addr() net.Addr { return l.UDP[0].LocalAddr() }

// Listen binds UDP and TCP on every address. Binding happens here, before
// serving starts, so that a busy port is reported at once; ports may be 0
// (tests), the bound addresses are in the returned listeners.
func Listen(ctx context.Context, addrs []string) ([]Listener, error) {
	return listen.All(ctx, addrs, listenOne)
}

// listenOne binds one address. With port 0 the kernel picks a UDP port
// whose TCP twin may be taken by someone else; then it tries another
// (a bounded number of times).
func listenOne(ctx context.Context, addr string) (Listener, error) {
	sockets := 1
	if canReusePort {
		sockets = runtime.NumCPU()
	}
	lc := net.ListenConfig{Control: reusePort}
	anyPort := strings.HasSuffix(addr, ":0")
	for attempt := 0; ; attempt++ {
		var l Listener
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			return l, fmt.Errorf("dns listen udp %s: %w", addr, err)
		}
		l.UDP = append(l.UDP, pc)
		// The other sockets and TCP take the port the first one got.
		bound := pc.LocalAddr().String()
		for range sockets - 1 {
			more, err := lc.ListenPacket(ctx, "udp", bound)
			if err != nil {
				l.Close()
				return Listener{}, fmt.Errorf("dns listen udp %s (SO_REUSEPORT): %w", bound, err)
			}
			l.UDP = append(l.UDP, more)
		}
		// TCP needs no SO_REUSEPORT: one accept loop spawns a goroutine
		// per connection.
		l.TCP, err = (&net.ListenConfig{}).Listen(ctx, "tcp", bound)
		if err == nil {
			return l, nil
		}
		l.Close()
		if !anyPort || attempt >= 20 || !errors.Is(err, syscall.EADDRINUSE) {
			return Listener{}, fmt.Errorf("dns listen tcp %s: %w", bound, err)
		}
	}
}

// Close closes the listener's sockets (Serve closes them itself) and
// returns their errors, joined.
func (l Listener) Close() error {
	var errs []error
	for _, pc := range l.UDP {
		errs = append(errs, pc.Close())
	}
	if l.TCP != nil {
		errs = append(errs, l.TCP.Close())
	}
	return errors.Join(errs...)
}

// Serve answers on the listeners until ctx is cancelled, then shuts down.
func (s *Server) Serve(ctx context.Context, listeners []Listener) error {
	var servers []*dns.Server
	var udp []net.PacketConn
	for _, l := range listeners {
		udp = append(udp, l.UDP...)
		servers = append(servers,
			&dns.Server{Listener: newLimitListener(l.TCP, s.tcp, &s.tcpRefused), Handler: s,
				// RFC 7766 §6.2.3: idle TCP connections are closed
				// after a few seconds so they cannot pile up.
				IdleTimeout: func() time.Duration { return s.tcp.IdleTimeout }, MaxTCPQueries: 1000},
		)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(servers)+len(udp))
	for _, pc := range udp {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serveUDP(pc); err != nil {
				errs <- err
			}
		}()
	}
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ActivateAndServe(); err != nil {
				errs <- err
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		_ = srv.ShutdownContext(shutdown)
	}
	// A server whose ActivateAndServe had not started yet when the
	// context ended refuses the shutdown ("server not started") and would
	// then serve for ever: closing its listener ends its accept loop.
	for _, l := range listeners {
		if l.TCP != nil {
			l.TCP.Close()
		}
	}
	for _, pc := range udp {
		pc.Close() // ends serveUDP's read
	}
	wg.Wait()
	return err
}
