package smtpd

import (
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
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

const (
	zoneA = "a.test.example"
	zoneB = "b.test.example"
)

// testCerts implements Certificates like the certificate package will:
// self-signed certificates for personas 2–4, CA-signed ones for 5–7 from a
// test CA, all with the persona keys.
type testCerts struct {
	keys  *persona.Keys
	pool  *x509.CertPool // the test CA
	certs map[int]*tls.Certificate
}

func (c *testCerts) Persona(n int) (*tls.Certificate, error) {
	if cert, ok := c.certs[n]; ok {
		return cert, nil
	}
	return nil, fmt.Errorf("no certificate for persona %d", n)
}

func newTestCerts(t testing.TB) *testCerts {
	t.Helper()
	keys, err := persona.LoadKeys(t.TempDir())
	if err != nil {
		t.Fatalf("LoadKeys: %v", err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "mailsec test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	c := &testCerts{keys: keys, pool: x509.NewCertPool(), certs: map[int]*tls.Certificate{}}
	c.pool.AddCert(ca)
	for _, p := range persona.Table() {
		if !p.HasKey() {
			continue
		}
		host := zoneA
		if p.Host != "" {
			z := zoneA
			if p.Zone == persona.ZoneB {
				z = zoneB
			}
			host = p.Host + "." + z
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(10 + p.Number)),
			Subject:      pkix.Name{CommonName: host},
			DNSNames:     []string{host},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		}
		signer := keys.Signer(p.Number)
		parent, parentKey := tmpl, any(signer)
		if p.Cert == persona.CertCASigned {
			parent, parentKey = ca, caKey
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, signer.Public(), parentKey)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		c.certs[p.Number] = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: signer, Leaf: leaf}
	}
	return c
}

// clock is a settable time source.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }

// testServer is a running Server on loopback.
type testServer struct {
	srv   *Server
	st    *store.Store
	clock *clock
	certs *testCerts
	addrs []string // listening addresses, in the order of the options' listen list
	dkim  *fakeTXT
	stop  func() // stops the server (idempotent) and checks Serve's result
}

// fakeTXT is a map-backed TXT lookup.
type fakeTXT struct {
	mu sync.Mutex
	m  map[string][]string
}

func (f *fakeTXT) set(name string, txt ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[strings.ToLower(name)] = txt
}

func (f *fakeTXT) LookupTXT(ctx context.Context, name string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if txt, ok := f.m[strings.ToLower(name)]; ok {
		return txt, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// lookupDNS is a mailauth.DNS that answers TXT questions from a look-up
// function (a *net.DNSError that is not found: NXDOMAIN) and every other
// question with NXDOMAIN.
type lookupDNS func(ctx context.Context, name string) ([]string, error)

func (f lookupDNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return f(ctx, strings.TrimSuffix(name, "."))
}

func (f lookupDNS) Query(ctx context.Context, name string, qtype uint16) (resolver.Answer, error) {
	nx := fmt.Errorf("%s: %w", name, resolver.ErrNXDomain)
	if qtype != dns.TypeTXT {
		return resolver.Answer{}, nx
	}
	txts, err := f.LookupTXT(ctx, name)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return resolver.Answer{}, nx
	case err != nil:
		return resolver.Answer{}, err
	}
	m := new(dns.Msg)
	for _, txt := range txts {
		var parts []string
		for len(txt) > 255 {
			parts, txt = append(parts, txt[:255]), txt[255:]
		}
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: dns.Fqdn(name), Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: append(parts, txt)})
	}
	return resolver.Answer{Msg: m}, nil
}

// testLogger logs to the test at debug level when -v is on, else discards.
func testLogger(t testing.TB) *slog.Logger {
	if _, fuzz := t.(*testing.F); fuzz || !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// startServer starts a server on 127.0.0.1:0 (and the extra listen
// addresses given) with test defaults that tweak may change.
func startServer(t testing.TB, tweak func(*Options), listen ...string) *testServer {
	t.Helper()
	return startServerOn(t, store.DriverSQLite, tweak, listen...)
}

// startServerOn is startServer on a store of driver (storetest).
func startServerOn(t testing.TB, driver string, tweak func(*Options), listen ...string) *testServer {
	t.Helper()
	st := storetest.Open(t, driver)
	ts := &testServer{st: st, clock: newClock(), certs: newTestCerts(t), dkim: &fakeTXT{m: map[string][]string{}}}
	opts := Options{
		ZoneA:                   zoneA + ".",
		ZoneB:                   strings.ToUpper(zoneB),
		Certificates:            ts.certs,
		Store:                   st,
		DowngradeWindow:         3 * time.Minute,
		AckAfter:                10 * time.Minute,
		CommandTimeout:          5 * time.Second,
		DataTimeout:             5 * time.Second,
		ShutdownGrace:           time.Second,
		MaxConnectionsPerClient: 20,
		DNS:                     lookupDNS(ts.dkim.LookupTXT),
		DKIMTimeout:             2 * time.Second,
		Logger:                  testLogger(t),
		Now:                     ts.clock.Now,
	}
	if tweak != nil {
		tweak(&opts)
	}
	var err error
	ts.srv, err = New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if len(listen) == 0 {
		listen = []string{"127.0.0.1:0"}
	}
	ls, err := Listen(context.Background(), listen)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	for _, l := range ls {
		ts.addrs = append(ts.addrs, l.Addr().String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ts.srv.Serve(ctx, ls) }()
	var once sync.Once
	ts.stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Serve did not return after cancel")
			}
			if n := ts.srv.panics.Load(); n != 0 {
				t.Errorf("%d panics in sessions; last:\n%s", n, *ts.srv.lastPanic.Load())
			}
		})
	}
	t.Cleanup(ts.stop)
	return ts
}

func (ts *testServer) addr() string { return ts.addrs[0] }

// newTest creates a token test created now.
func (ts *testServer) newTest(t testing.TB, id string) store.Test {
	t.Helper()
	tt := store.Test{ID: id, Created: ts.clock.Now(), Kind: store.TestToken, State: store.TestOpen, Updated: ts.clock.Now()}
	if err := ts.st.CreateTest(context.Background(), tt); err != nil {
		t.Fatalf("CreateTest: %v", err)
	}
	return tt
}

// conns returns the recorded connections matching f.
func (ts *testServer) conns(t testing.TB, f store.ConnectionFilter) []store.SMTPConnection {
	t.Helper()
	cs, err := ts.st.Connections(context.Background(), f)
	if err != nil {
		t.Fatalf("Connections: %v", err)
	}
	return cs
}

// waitEnded waits until n connections are recorded and all have Ended
// set, and returns them.
func (ts *testServer) waitEnded(t testing.TB, n int) []store.SMTPConnection {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cs := ts.conns(t, store.ConnectionFilter{})
		ended := 0
		for _, c := range cs {
			if !c.Ended.IsZero() {
				ended++
			}
		}
		if len(cs) >= n && ended == len(cs) {
			return cs
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d ended connections: %d recorded, %d ended:\n%s", n, len(cs), ended, fmtConns(cs))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func fmtConns(cs []store.SMTPConnection) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "  #%d test=%q persona=%d state=%s sni=%q tls=%q offered=%v from=%q rcpt=%q reply=%q ended=%v err=%q\n",
			c.ID, c.TestID, c.Persona, c.State, c.SNI, c.TLSVersion, c.STARTTLSOffered, c.MailFrom, c.RcptTo, c.Reply, !c.Ended.IsZero(), c.Error)
	}
	return b.String()
}

// client is a raw SMTP client over textproto.
type client struct {
	t    testing.TB
	conn net.Conn
	text *textproto.Conn
}

// dial connects to addr and reads the 220 greeting.
func dial(t testing.TB, addr string) *client {
	t.Helper()
	return dialFrom(t, "", addr)
}

// dialFrom connects from the local address src ("" for any).
func dialFrom(t testing.TB, src, addr string) *client {
	t.Helper()
	c := dialNoGreeting(t, src, addr)
	c.expect(220)
	return c
}

func dialNoGreeting(t testing.TB, src, addr string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, text: textproto.NewConn(conn)}
}

// read reads one reply.
func (c *client) read() (int, string) {
	c.t.Helper()
	code, msg, err := c.text.ReadResponse(0)
	if err != nil {
		c.t.Fatalf("reading reply: %v", err)
	}
	return code, msg
}

// expect reads a reply and checks its code.
func (c *client) expect(want int) string {
	c.t.Helper()
	code, msg := c.read()
	if code != want {
		c.t.Fatalf("reply %d %q, want %d", code, msg, want)
	}
	return msg
}

// cmd sends a command and returns the reply.
func (c *client) cmd(format string, args ...any) (int, string) {
	c.t.Helper()
	if err := c.text.PrintfLine(format, args...); err != nil {
		c.t.Fatalf("send %q: %v", fmt.Sprintf(format, args...), err)
	}
	return c.read()
}

// ok sends a command and checks the reply code.
func (c *client) ok(want int, format string, args ...any) string {
	c.t.Helper()
	code, msg := c.cmd(format, args...)
	if code != want {
		c.t.Fatalf("%s: reply %d %q, want %d", fmt.Sprintf(format, args...), code, msg, want)
	}
	return msg
}

// ehlo sends EHLO and returns the extension lines.
func (c *client) ehlo() string { c.t.Helper(); return c.ok(250, "EHLO sender.example.org") }

// startTLS upgrades the session; the handshake error is returned.
func (c *client) startTLS(cfg *tls.Config) (*tls.ConnectionState, error) {
	c.t.Helper()
	c.ok(220, "STARTTLS")
	tc := tls.Client(c.conn, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	c.conn = tc
	c.text = textproto.NewConn(tc)
	cs := tc.ConnectionState()
	return &cs, nil
}

// mail sends one mail and returns the final reply.
func (c *client) mail(from string, rcpts []string, body string) (int, string) {
	c.t.Helper()
	c.ok(250, "MAIL FROM:<%s>", from)
	for _, r := range rcpts {
		c.ok(250, "RCPT TO:<%s>", r)
	}
	c.ok(354, "DATA")
	return c.data(body)
}

// data sends a message body (dot-stuffed) and its end.
func (c *client) data(body string) (int, string) {
	c.t.Helper()
	w := c.text.DotWriter()
	if _, err := io.WriteString(w, body); err != nil {
		c.t.Fatalf("DATA: %v", err)
	}
	if err := w.Close(); err != nil {
		c.t.Fatalf("DATA: %v", err)
	}
	return c.read()
}

func (c *client) quit() {
	c.t.Helper()
	c.ok(221, "QUIT")
	c.conn.Close()
}

// readAll reads until EOF (or the deadline) and returns what came.
func (c *client) readAll(d time.Duration) (string, error) {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	var buf bytes.Buffer
	_, err := io.Copy(&buf, c.conn)
	if errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	return buf.String(), err
}

// insecure is a TLS client configuration that accepts any certificate,
// as a "may" or "encrypt" sender does.
func insecure(sni string) *tls.Config {
	return &tls.Config{ServerName: sni, InsecureSkipVerify: true}
}

// loopback2 reports whether 127.0.0.2 can be bound (Linux routes all of
// 127/8 to lo).
// startOnTwoAddresses starts a server with driver's store on 127.0.0.1 and
// 127.0.0.2 (ts.addrs[0], ts.addrs[1]): the deployment where hosts have
// addresses of their own. It skips the test where 127.0.0.2 is missing.
func startOnTwoAddresses(t testing.TB, driver string, tweak func(*Options)) *testServer {
	t.Helper()
	if !loopback2(t) {
		t.Skip("127.0.0.2 not available")
	}
	return startServerOn(t, driver, tweak, "127.0.0.1:0", "127.0.0.2:0")
}

func loopback2(t testing.TB) bool {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
