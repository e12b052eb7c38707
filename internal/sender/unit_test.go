package sender

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dane"
	"github.com/mailsec/mailsec/internal/resolver"
)

// Unit tests of the parts the lab cannot provoke: DNS corner cases from a
// scripted DNS server, and misbehaving SMTP servers. The AD bit of the
// scripted server counts because it answers on loopback (resolver.TrustsAD).

// fakeDNS answers from a table; unknown names are NXDOMAIN, securely.
type fakeDNS struct {
	mu      sync.Mutex
	answers map[string]fakeAnswer // "name./TYPE"
}

type fakeAnswer struct {
	rcode    int
	rrs      []dns.RR
	insecure bool // no AD bit
}

func startFakeDNS(t *testing.T) (*fakeDNS, *resolver.Resolver) {
	t.Helper()
	f := &fakeDNS{answers: map[string]fakeAnswer{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		m := new(dns.Msg)
		m.SetReply(r)
		f.mu.Lock()
		a, ok := f.answers[strings.ToLower(q.Name)+"/"+dns.TypeToString[q.Qtype]]
		f.mu.Unlock()
		if !ok {
			a = fakeAnswer{rcode: dns.RcodeNameError}
		}
		m.Rcode, m.Answer, m.AuthenticatedData = a.rcode, a.rrs, !a.insecure && a.rcode != dns.RcodeServerFailure
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	res, err := resolver.New(pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	return f, res
}

// set publishes records (presentation format, one name and type) with the
// AD bit unless insecure.
func (f *fakeDNS) set(t *testing.T, insecure bool, records ...string) {
	t.Helper()
	var key string
	var rrs []dns.RR
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		key = strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
		rrs = append(rrs, rr)
	}
	f.mu.Lock()
	f.answers[key] = fakeAnswer{rrs: rrs, insecure: insecure}
	f.mu.Unlock()
}

// setEmpty answers name/type with rcode and no records.
func (f *fakeDNS) setEmpty(name string, qtype uint16, rcode int, insecure bool) {
	f.mu.Lock()
	f.answers[dns.Fqdn(strings.ToLower(name))+"/"+dns.TypeToString[qtype]] = fakeAnswer{rcode: rcode, insecure: insecure}
	f.mu.Unlock()
}

// host publishes name with address a (A record; AAAA is NODATA).
func (f *fakeDNS) host(t *testing.T, name, a string, insecure bool) {
	t.Helper()
	f.set(t, insecure, name+". 60 IN A "+a)
	f.setEmpty(name, dns.TypeAAAA, dns.RcodeSuccess, insecure)
}

func TestResolveMX(t *testing.T) {
	f, res := startFakeDNS(t)
	f.set(t, false,
		"ex.test. 60 IN MX 20 b.ex.test.", "ex.test. 60 IN MX 10 a1.ex.test.", "ex.test. 60 IN MX 10 A2.ex.test.",
		"ex.test. 60 IN MX 10 a3.ex.test.", "ex.test. 60 IN MX 30 a1.ex.test.")
	f.set(t, true, "insecure.test. 60 IN MX 10 mx.insecure.test.")
	f.set(t, false, "null.test. 60 IN MX 0 .")
	f.set(t, false, "halfnull.test. 60 IN MX 0 .", "halfnull.test. 60 IN MX 10 mx.halfnull.test.")
	f.setEmpty("nomx.test", dns.TypeMX, dns.RcodeSuccess, false)
	f.setEmpty("broken.test", dns.TypeMX, dns.RcodeServerFailure, false)

	reverse := func(n int, swap func(i, j int)) {
		for i := 0; i < n/2; i++ {
			swap(i, n-1-i)
		}
	}
	s, err := New(Options{Hostname: "me.test", Resolver: res, Shuffle: reverse})
	if err != nil {
		t.Fatal(err)
	}
	names := func(set MXSet) string {
		var out []string
		for _, h := range set.Hosts {
			out = append(out, fmt.Sprintf("%s/%d", h.Name, h.Preference))
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		domain   string
		want     string
		secure   bool
		implicit bool
		err      error
	}{
		// Sorted by preference; the equal ones reversed by the injected
		// shuffle; the duplicate a1 at 30 dropped; names lower-cased.
		{"ex.test", "a3.ex.test/10 a2.ex.test/10 a1.ex.test/10 b.ex.test/20", true, false, nil},
		{"EX.test.", "a3.ex.test/10 a2.ex.test/10 a1.ex.test/10 b.ex.test/20", true, false, nil},
		{"insecure.test", "mx.insecure.test/10", false, false, nil},
		{"nomx.test", "nomx.test/0", true, true, nil},
		{"halfnull.test", "mx.halfnull.test/10", true, false, nil},
		{"null.test", "", false, false, ErrNullMX},
		{"nxdomain.test", "", false, false, ErrNoSuchDomain},
		{"broken.test", "", false, false, ErrDNS},
	}
	for _, tc := range tests {
		t.Run(tc.domain, func(t *testing.T) {
			set, err := s.resolveMX(context.Background(), tc.domain)
			if !errors.Is(err, tc.err) || tc.err == nil && err != nil {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if got := names(set); got != tc.want || set.Secure != tc.secure || set.Implicit != tc.implicit {
				t.Fatalf("got %q secure=%v implicit=%v; want %q %v %v", got, set.Secure, set.Implicit, tc.want, tc.secure, tc.implicit)
			}
		})
	}
	// Attempt turns them into statuses.
	for domain, want := range map[string]Status{"null.test": Bounced, "nxdomain.test": Bounced, "broken.test": Deferred} {
		r := s.Attempt(context.Background(), Message{From: "a@me.test", To: []string{"x@" + domain}, Data: []byte("x\n")})
		if r.Status != want || r.Recipients[0].Status != want {
			t.Errorf("%s: status %v, want %v (%s)", domain, r.Status, want, r.Reason)
		}
	}
}

// TestPlanHostDANE covers the DNSSEC states of RFC 7672 §2 that the
// lab's zones do not have.
func TestPlanHostDANE(t *testing.T) {
	f, res := startFakeDNS(t)
	usable := "_25._tcp.%s. 60 IN TLSA 3 1 1 " + strings.Repeat("ab", 32)
	unusable := "_25._tcp.%s. 60 IN TLSA 1 1 1 " + strings.Repeat("ab", 32)
	f.host(t, "good.test", "127.0.2.1", false)
	f.set(t, false, fmt.Sprintf(usable, "good.test"))
	f.host(t, "bogus.test", "127.0.2.2", false)
	f.setEmpty("_25._tcp.bogus.test", dns.TypeTLSA, dns.RcodeServerFailure, false)
	f.host(t, "none.test", "127.0.2.3", false) // TLSA: NXDOMAIN, secure
	f.host(t, "insecureaddr.test", "127.0.2.4", true)
	f.set(t, false, fmt.Sprintf(usable, "insecureaddr.test"))
	f.host(t, "insecuretlsa.test", "127.0.2.5", false)
	f.set(t, true, fmt.Sprintf(usable, "insecuretlsa.test"))
	f.host(t, "unusable.test", "127.0.2.6", false)
	f.set(t, false, fmt.Sprintf(unusable, "unusable.test"))
	f.setEmpty("noaddr.test", dns.TypeA, dns.RcodeNameError, false)

	type want struct {
		name string
		tls  tlsMode
		dane bool
		skip error
	}
	tests := []struct {
		host             string
		mxSecure         bool
		dane, daneOnly   want
		reasonSubstrings string
	}{
		{"good.test", true, want{"dane", tlsRequire, true, nil}, want{"dane", tlsRequire, true, nil}, "usable"},
		{"good.test", false, want{"may (dane)", tlsTry, false, nil}, want{skip: ErrNoDANE}, "MX RRset is not DNSSEC-secure"},
		{"bogus.test", true, want{skip: ErrTLSALookup}, want{skip: ErrTLSALookup}, ""},
		{"none.test", true, want{"may (dane)", tlsTry, false, nil}, want{skip: ErrNoDANE}, "no TLSA"},
		{"insecureaddr.test", true, want{"may (dane)", tlsTry, false, nil}, want{skip: ErrNoDANE}, "address records"},
		{"insecuretlsa.test", true, want{"may (dane)", tlsTry, false, nil}, want{skip: ErrNoDANE}, "TLSA answer"},
		{"unusable.test", true, want{"encrypt (dane)", tlsRequire, false, nil}, want{skip: ErrNoDANE}, "none usable"},
		{"noaddr.test", true, want{skip: ErrNoAddress}, want{skip: ErrNoAddress}, ""},
	}
	for _, tc := range tests {
		for level, w := range map[Level]want{LevelDANE: tc.dane, LevelDANEOnly: tc.daneOnly} {
			t.Run(fmt.Sprintf("%s/%v/%s", tc.host, tc.mxSecure, level), func(t *testing.T) {
				s, err := New(Options{Hostname: "me.test", Resolver: res, Level: level})
				if err != nil {
					t.Fatal(err)
				}
				p := s.planHost(context.Background(), MXHost{Name: tc.host}, MXSet{Secure: tc.mxSecure}, nil)
				if w.skip != nil {
					if !errors.Is(p.skip, w.skip) {
						t.Fatalf("skip %v, want %v", p.skip, w.skip)
					}
					return
				}
				if p.skip != nil || p.name != w.name || p.tls != w.tls || (p.dane != nil) != w.dane || len(p.addrs) != 1 {
					t.Fatalf("policy %+v, want %+v", p, w)
				}
				if !strings.Contains(p.reason, tc.reasonSubstrings) {
					t.Fatalf("reason %q lacks %q", p.reason, tc.reasonSubstrings)
				}
				if w.dane && p.sni != tc.host {
					t.Fatalf("DANE without SNI %q", p.sni)
				}
				if !w.dane && p.sni != "" {
					t.Fatalf("SNI %q without DANE or SendSNI", p.sni)
				}
			})
		}
	}
}

// fakeSMTP is a scripted SMTP server. Replies left empty take the happy
// path's.
type fakeSMTP struct {
	t        *testing.T
	greeting string
	ehlo     string   // a one-line reply replacing the 250 (e.g. "502 no")
	exts     []string // extensions besides STARTTLS
	starttls bool     // offer STARTTLS
	tlsReply string   // reply to STARTTLS
	inject   bool     // send a line right after the 220 to STARTTLS
	badTLS   bool     // answer the ClientHello with garbage
	cert     *tls.Certificate
	mail     string
	rcpt     map[string]string // by address
	data     string
	dot      string

	mu       sync.Mutex
	received [][]byte
	sessions int
	tlsSNI   []string
	addr     netip.AddrPort
}

func (f *fakeSMTP) start() *fakeSMTP {
	f.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	f.addr = l.Addr().(*net.TCPAddr).AddrPort()
	var wg sync.WaitGroup
	f.t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { f.serve(c) })
		}
	})
	return f
}

func (f *fakeSMTP) serve(nc net.Conn) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	f.mu.Lock()
	f.sessions++
	f.mu.Unlock()
	or := func(s, def string) string {
		if s != "" {
			return s
		}
		return def
	}
	br := bufio.NewReader(nc)
	w := func(lines ...string) { _, _ = nc.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")) }
	w(or(f.greeting, "220 fake ESMTP"))
	inTLS := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			if f.ehlo != "" {
				w(f.ehlo)
				continue
			}
			exts := append([]string{}, f.exts...)
			if f.starttls && !inTLS {
				exts = append(exts, "STARTTLS")
			}
			lines := []string{"fake hello"}
			lines = append(lines, exts...)
			for i := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				lines[i] = "250" + sep + lines[i]
			}
			w(lines...)
		case "HELO":
			w("250 fake")
		case "STARTTLS":
			reply := or(f.tlsReply, "220 go ahead")
			if f.inject {
				w(reply, "250 injected")
			} else {
				w(reply)
			}
			if !strings.HasPrefix(reply, "220") {
				continue
			}
			if f.badTLS {
				_, _ = br.ReadByte() // the ClientHello begins
				w("this is not TLS")
				return
			}
			tc := tls.Server(&bufConn{Conn: nc, r: br}, &tls.Config{Certificates: []tls.Certificate{*f.cert}})
			if err := tc.Handshake(); err != nil {
				return
			}
			f.mu.Lock()
			f.tlsSNI = append(f.tlsSNI, tc.ConnectionState().ServerName)
			f.mu.Unlock()
			nc, br, inTLS = tc, bufio.NewReader(tc), true
			w = func(lines ...string) { _, _ = tc.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")) }
		case "MAIL":
			w(or(f.mail, "250 ok"))
		case "RCPT":
			addr := strings.Trim(strings.TrimPrefix(strings.ToUpper(arg[:3])+arg[3:], "TO:"), "<>")
			w(or(f.rcpt[addr], "250 ok"))
		case "DATA":
			w(or(f.data, "354 go"))
			if !strings.HasPrefix(or(f.data, "354"), "354") {
				continue
			}
			var msg bytes.Buffer
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(l)
			}
			f.mu.Lock()
			f.received = append(f.received, msg.Bytes())
			f.mu.Unlock()
			w(or(f.dot, "250 queued"))
		case "QUIT":
			w("221 bye")
			return
		default:
			w("500 what?")
		}
	}
}

// bufConn reads through r first (bytes already buffered) for the TLS
// server.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(b []byte) (int, error) { return c.r.Read(b) }

func selfSigned(t *testing.T, name string) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// scripted sets up DNS for ex.test with MX hosts h1..hN at 127.0.2.i,
// each served by the given fake server, and returns a sender.
func scripted(t *testing.T, level Level, servers ...*fakeSMTP) *Sender {
	t.Helper()
	f, res := startFakeDNS(t)
	var mx []string
	route := map[netip.Addr]netip.AddrPort{}
	for i, srv := range servers {
		name := fmt.Sprintf("h%d.ex.test", i+1)
		ip := fmt.Sprintf("127.0.2.%d", i+1)
		mx = append(mx, fmt.Sprintf("ex.test. 60 IN MX %d %s.", 10*(i+1), name))
		f.host(t, name, ip, false)
		if srv != nil {
			route[netip.MustParseAddr(ip)] = srv.start().addr
		}
	}
	f.set(t, false, mx...)
	s, err := New(Options{
		Hostname: "me.test", Resolver: res, Level: level,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap := netip.MustParseAddrPort(addr)
			to, ok := route[ap.Addr()]
			if !ok {
				return nil, fmt.Errorf("connection refused (scripted)")
			}
			var d net.Dialer
			return d.DialContext(ctx, network, to.String())
		},
		ConnectTimeout: 2 * time.Second, CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second,
		Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func msgTo(rcpts ...string) Message {
	return Message{From: "me@me.test", To: rcpts, Data: []byte("Subject: x\n\nline\r\n.dot\n..two\nlast")}
}

func TestSessions(t *testing.T) {
	cert := selfSigned(t, "h1.ex.test")
	type hostCheck func(t *testing.T, h Host)
	tests := []struct {
		name    string
		level   Level
		servers []*fakeSMTP
		rcpts   []string
		status  Status
		err     error
		hosts   []Outcome
		checks  map[int]hostCheck
		after   func(t *testing.T, servers []*fakeSMTP, r Result)
	}{
		{name: "dot-stuffing and CRLF", level: LevelMay, servers: []*fakeSMTP{{}}, status: Delivered, hosts: []Outcome{OutcomeDelivered},
			after: func(t *testing.T, srv []*fakeSMTP, r Result) {
				want := "Subject: x\r\n\r\nline\r\n..dot\r\n...two\r\nlast\r\n"
				if len(srv[0].received) != 1 || string(srv[0].received[0]) != want {
					t.Fatalf("received %q, want %q", srv[0].received, want)
				}
			}},
		{name: "may: handshake failure, plaintext retry on the same address", level: LevelMay,
			servers: []*fakeSMTP{{starttls: true, badTLS: true}}, status: Delivered,
			hosts: []Outcome{OutcomeDeferred, OutcomeDelivered},
			checks: map[int]hostCheck{
				0: func(t *testing.T, h Host) {
					if !errors.Is(h.Err, ErrTLSHandshake) || h.PlaintextRetry {
						t.Fatalf("first session: %v", h.Err)
					}
				},
				1: func(t *testing.T, h Host) {
					if !h.PlaintextRetry || h.TLS || !h.STARTTLSOffered || h.Addr != netip.MustParseAddrPort("127.0.2.1:25") {
						t.Fatalf("retry: %+v", h)
					}
				},
			},
			after: func(t *testing.T, _ []*fakeSMTP, r Result) {
				if r.Sessions != 1 || r.Addresses != 1 {
					t.Fatalf("the retry must not count: %d sessions, %d addresses", r.Sessions, r.Addresses)
				}
			}},
		{name: "encrypt: handshake failure moves on, no plaintext", level: LevelEncrypt,
			servers: []*fakeSMTP{{starttls: true, badTLS: true}, {starttls: true, cert: cert}}, status: Delivered,
			hosts: []Outcome{OutcomeDeferred, OutcomeDelivered},
			checks: map[int]hostCheck{1: func(t *testing.T, h Host) {
				if !h.TLS || h.PKIX.OK || !h.PKIX.Checked || !strings.Contains(h.PKIX.Detail, "self-signed") {
					t.Fatalf("second host: TLS %v, PKIX %s", h.TLS, h.PKIX)
				}
			}}},
		{name: "may: STARTTLS refused, plaintext on the same session", level: LevelMay,
			servers: []*fakeSMTP{{starttls: true, tlsReply: "454 TLS not available"}}, status: Delivered, hosts: []Outcome{OutcomeDelivered}},
		{name: "encrypt: STARTTLS refused", level: LevelEncrypt,
			servers: []*fakeSMTP{{starttls: true, tlsReply: "454 TLS not available"}}, status: Deferred, err: ErrTLSRequired,
			hosts: []Outcome{OutcomeDeferred}},
		{name: "response injection after STARTTLS", level: LevelMay,
			servers: []*fakeSMTP{{starttls: true, inject: true, cert: cert}}, status: Deferred, err: ErrProtocol, hosts: []Outcome{OutcomeDeferred}},
		{name: "no SNI unless asked", level: LevelEncrypt, servers: []*fakeSMTP{{starttls: true, cert: cert}},
			status: Delivered, hosts: []Outcome{OutcomeDelivered},
			after: func(t *testing.T, srv []*fakeSMTP, _ Result) {
				if len(srv[0].tlsSNI) != 1 || srv[0].tlsSNI[0] != "" {
					t.Fatalf("SNI %q", srv[0].tlsSNI)
				}
			}},
		{name: "greeting 554: next host, not a session", level: LevelMay,
			servers: []*fakeSMTP{{greeting: "554 go away"}, {}}, status: Delivered, hosts: []Outcome{OutcomeDeferred, OutcomeDelivered},
			after: func(t *testing.T, _ []*fakeSMTP, r Result) {
				if r.Sessions != 1 || r.Addresses != 2 {
					t.Fatalf("%d sessions, %d addresses", r.Sessions, r.Addresses)
				}
			}},
		{name: "connection refused: next address", level: LevelMay, servers: []*fakeSMTP{nil, {}}, status: Delivered,
			hosts: []Outcome{OutcomeDeferred, OutcomeDelivered},
			checks: map[int]hostCheck{0: func(t *testing.T, h Host) {
				if !errors.Is(h.Err, ErrConnect) {
					t.Fatal(h.Err)
				}
			}}},
		{name: "EHLO refused: HELO", level: LevelMay, servers: []*fakeSMTP{{ehlo: "502 no EHLO here"}}, status: Delivered,
			hosts: []Outcome{OutcomeDelivered}},
		{name: "4xx on MAIL: next host", level: LevelMay, servers: []*fakeSMTP{{mail: "451 later"}, {}}, status: Delivered,
			hosts: []Outcome{OutcomeDeferred, OutcomeDelivered}},
		{name: "5xx on MAIL: bounce, no next host", level: LevelMay, servers: []*fakeSMTP{{mail: "550 not you"}, {}}, status: Bounced,
			err: ErrPermanent, hosts: []Outcome{OutcomeBounced}},
		{name: "5xx on DATA: bounce, no next host", level: LevelMay, servers: []*fakeSMTP{{data: "554 no data"}, {}}, status: Bounced,
			err: ErrPermanent, hosts: []Outcome{OutcomeBounced}},
		{name: "4xx on DATA: next host", level: LevelMay, servers: []*fakeSMTP{{data: "451 later"}, {}}, status: Delivered,
			hosts: []Outcome{OutcomeDeferred, OutcomeDelivered}},
		{name: "5xx at the end of data: bounce", level: LevelMay, servers: []*fakeSMTP{{dot: "554 spam"}, {}}, status: Bounced,
			err: ErrPermanent, hosts: []Outcome{OutcomeBounced}},
		{name: "4xx at the end of data: next host", level: LevelMay, servers: []*fakeSMTP{{dot: "451 later"}, {}}, status: Delivered,
			hosts: []Outcome{OutcomeDeferred, OutcomeDelivered}},
		{name: "recipients: one accepted, one bounced, one deferred then accepted", level: LevelMay,
			servers: []*fakeSMTP{{rcpt: map[string]string{"b@ex.test": "550 no such user", "c@ex.test": "450 busy"}}, {}},
			rcpts:   []string{"a@ex.test", "b@ex.test", "c@ex.test"}, status: Bounced,
			hosts: []Outcome{OutcomeDelivered, OutcomeDelivered},
			after: func(t *testing.T, _ []*fakeSMTP, r Result) {
				want := map[string]Status{"a@ex.test": Delivered, "b@ex.test": Bounced, "c@ex.test": Delivered}
				for _, rc := range r.Recipients {
					if rc.Status != want[rc.Address] {
						t.Errorf("%s: %v, want %v (%s)", rc.Address, rc.Status, want[rc.Address], rc.Reply)
					}
				}
				if r.Recipients[2].Host != "h2.ex.test" || !strings.Contains(r.Reason, "550") {
					t.Errorf("recipient c via %s; reason %q", r.Recipients[2].Host, r.Reason)
				}
			}},
		{name: "over-long reply line", level: LevelMay, servers: []*fakeSMTP{{greeting: "220 " + strings.Repeat("x", 5000) /* beyond the 4 KiB line limit */}},
			status: Deferred, err: ErrProtocol, hosts: []Outcome{OutcomeDeferred}},
		{name: "all hosts fail: limit after two sessions", level: LevelMay,
			servers: []*fakeSMTP{{mail: "421 bye"}, {mail: "452 full"}, {}}, status: Deferred, err: ErrLimit,
			hosts: []Outcome{OutcomeDeferred, OutcomeDeferred}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, srv := range tc.servers {
				if srv != nil {
					srv.t = t
					if srv.cert == nil {
						srv.cert = cert
					}
				}
			}
			s := scripted(t, tc.level, tc.servers...)
			rcpts := tc.rcpts
			if rcpts == nil {
				rcpts = []string{"u@ex.test"}
			}
			r := s.Attempt(context.Background(), msgTo(rcpts...))
			defer func() {
				if t.Failed() {
					dumpResult(t, r)
				}
			}()
			if r.Status != tc.status || tc.err != nil && !errors.Is(r.Err, tc.err) {
				t.Fatalf("status %v err %v; want %v %v", r.Status, r.Err, tc.status, tc.err)
			}
			var got []Outcome
			for _, h := range r.Hosts {
				got = append(got, h.Outcome)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.hosts) {
				t.Fatalf("hosts %v, want %v", got, tc.hosts)
			}
			for i, check := range tc.checks {
				check(t, r.Hosts[i])
			}
			if tc.after != nil {
				for _, srv := range tc.servers {
					if srv != nil {
						srv.mu.Lock()
						defer srv.mu.Unlock()
					}
				}
				tc.after(t, tc.servers, r)
			}
		})
	}
}

func TestDANEOverScriptedServer(t *testing.T) {
	// A DANE host whose TLSA lookup is bogus is deferred and never
	// contacted; the next host (matching 3 1 1) gets the mail with SNI.
	cert := selfSigned(t, "whatever")
	rec, err := dane.Compute(dane.UsageDANEEE, dane.SelectorSPKI, dane.MatchSHA256, cert.Leaf)
	if err != nil {
		t.Fatal(err)
	}
	good := &fakeSMTP{t: t, starttls: true, cert: cert}
	never := &fakeSMTP{t: t, starttls: true, cert: cert}
	f, res := startFakeDNS(t)
	f.set(t, false, "ex.test. 60 IN MX 10 bogus.ex.test.", "ex.test. 60 IN MX 20 good.ex.test.")
	f.host(t, "bogus.ex.test", "127.0.2.1", false)
	f.setEmpty("_25._tcp.bogus.ex.test", dns.TypeTLSA, dns.RcodeServerFailure, false)
	f.host(t, "good.ex.test", "127.0.2.2", false)
	f.set(t, false, "_25._tcp.good.ex.test. 60 IN TLSA "+rec.String())
	route := map[string]netip.AddrPort{"127.0.2.1:25": never.start().addr, "127.0.2.2:25": good.start().addr}
	s, err := New(Options{Hostname: "me.test", Resolver: res, Level: LevelDANEOnly, CommandTimeout: 2 * time.Second,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, route[addr].String())
		}})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Attempt(context.Background(), msgTo("u@ex.test"))
	if r.Status != Delivered || len(r.Hosts) != 2 || !errors.Is(r.Hosts[0].Err, ErrTLSALookup) || r.Hosts[0].Outcome != OutcomeSkipped ||
		!r.Hosts[1].DANE.OK || r.Hosts[1].SNI != "good.ex.test" {
		dumpResult(t, r)
		t.Fatal("want bogus.ex.test deferred and good.ex.test DANE-verified")
	}
	never.mu.Lock()
	defer never.mu.Unlock()
	if never.sessions != 0 {
		t.Fatal("the host with a bogus TLSA answer was contacted")
	}
}

func TestMessageChecks(t *testing.T) {
	_, res := startFakeDNS(t)
	s, err := New(Options{Hostname: "me.test", Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]Message{
		"no recipients":   {From: "a@b.test"},
		"two domains":     {To: []string{"a@x.test", "b@y.test"}},
		"no domain":       {To: []string{"a"}},
		"CRLF injection":  {To: []string{"a@x.test>\r\nRCPT TO:<b@x.test"}},
		"space in sender": {From: "a b@x.test", To: []string{"a@x.test"}},
		"address literal": {To: []string{"a@[127.0.0.1]"}},
	} {
		r := s.Attempt(context.Background(), m)
		if r.Status != Bounced || !errors.Is(r.Err, ErrMessage) {
			t.Errorf("%s: %v %v", name, r.Status, r.Err)
		}
	}
	if _, err := New(Options{Resolver: res}); err == nil {
		t.Error("New without Hostname")
	}
	if _, err := New(Options{Hostname: "x", Resolver: (*resolver.Resolver)(nil)}); err == nil {
		t.Error("New with a nil *resolver.Resolver")
	}
	if _, err := New(Options{Hostname: "x", Resolver: res, Level: "paranoid"}); err == nil {
		t.Error("New with an unknown level")
	}
	for _, l := range Levels() {
		if got, err := ParseLevel(string(l)); err != nil || got != l {
			t.Errorf("ParseLevel(%q) = %q, %v", l, got, err)
		}
	}
}
