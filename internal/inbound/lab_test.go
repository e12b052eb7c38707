package inbound_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/certs"
	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/dane"
	"github.com/mailsec/mailsec/internal/dnssec"
	"github.com/mailsec/mailsec/internal/dnsserver"
	"github.com/mailsec/mailsec/internal/dnszone"
	"github.com/mailsec/mailsec/internal/inbound"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/policyhost"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/smtpd"
	"github.com/mailsec/mailsec/internal/store"
)

// The lab of these tests is real software on loopback:
//
//   - mailsec's signed test zones A and B, served by internal/dnsserver,
//     and two "user" zones served by a small authoritative server of this
//     test built from internal/dnszone (user.example signed with its own key,
//     plain.example unsigned) plus fail.example, whose server answers SERVFAIL;
//   - a validating Unbound in front of all of them, with the trust anchors
//     of A, B and user.example;
//   - mailsec's SMTP personas (internal/smtpd, go-smtp) with certificates
//     of the local CA: one server without downgrade window on 127.0.3.2
//     (shared: persona 2, self-signed, for names it does not serve) and
//     127.0.3.3–7 (personas 3–7 by address), and one inside its downgrade
//     window (no STARTTLS) on 127.0.3.40;
//   - the MTA-STS policy host (internal/policyhost) for zone A and one for
//     good.user.example with a certificate of a CA made here;
//   - hand-made misbehaving peers: a tarpit, a 421, a broken TLS handshake,
//     a server that does not speak SMTP, and a closed port.
//
// The addresses in DNS are the real listening addresses; the check's Dial
// hook only maps port 25 (and 443) to the listeners' ports.

const (
	labZoneA = "a.mailtest.example"
	labZoneB = "b.mailtest.example"
)

var (
	labShared    = netip.MustParseAddr("127.0.3.2")
	labWindow    = netip.MustParseAddr("127.0.3.40")
	labPolicyA   = netip.MustParseAddr("127.0.3.8")
	labPolicyU   = netip.MustParseAddr("127.0.3.9")
	labTarpit    = netip.MustParseAddr("127.0.3.30")
	labBusy      = netip.MustParseAddr("127.0.3.31")
	labBrokenTLS = netip.MustParseAddr("127.0.3.32")
	labClosed    = netip.MustParseAddr("127.0.3.33")
	labNotSMTP   = netip.MustParseAddr("127.0.3.34")
	labHostAddr  = map[string]netip.Addr{
		"mx3": netip.MustParseAddr("127.0.3.3"),
		"mx4": netip.MustParseAddr("127.0.3.4"),
		"mx5": netip.MustParseAddr("127.0.3.5"),
		"mx6": netip.MustParseAddr("127.0.3.6"),
		"mx7": netip.MustParseAddr("127.0.3.7"),
	}
)

type lab struct {
	resolver string
	roots    []*x509.Certificate
	smtp     map[netip.Addr]string // address in DNS → listener ip:port
	https    map[netip.Addr]string
	mu       sync.Mutex
	dialed   []string
	// window is the store of the persona server inside its downgrade
	// window, whose accepted test mails start the check of the sender's
	// domain (smtpd.Options.TestSender → inbound.Runner → store).
	window *store.Store
	// stubs and anchors are Unbound's, for a second resolver.
	stubs   map[string]netip.AddrPort
	anchors []string
}

// options returns check options for the lab.
func (l *lab) options() inbound.Options {
	return inbound.Options{
		Resolver: l.resolver, AllowPrivate: true, ExtraRoots: l.roots, Timeout: 20 * time.Second,
		StepTimeout: 5 * time.Second, HELO: "check.lab.example",
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return l.dial(ctx, l.smtp, 25, addr)
		},
		DialHTTPS: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return l.dial(ctx, l.https, 443, addr)
		},
	}
}

func (l *lab) dial(ctx context.Context, m map[netip.Addr]string, port uint16, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || ap.Port() != port {
		return nil, fmt.Errorf("lab: unexpected address %q", addr)
	}
	l.mu.Lock()
	l.dialed = append(l.dialed, addr)
	l.mu.Unlock()
	target, ok := m[ap.Addr()]
	if !ok {
		return nil, fmt.Errorf("lab: nothing for %s", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", target)
}

func (l *lab) dialedAddrs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.dialed...)
}

// testCA is a CA made for the lab's own hosts (mta-sts.good.user.example).
type testCA struct {
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "inbound test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{key: key, cert: cert}
}

func (ca *testCA) issue(t testing.TB, names ...string) *tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}
}

// authServer answers for the lab's user zones from dnszone snapshots,
// signing on the way out as internal/dnsserver does; names under a
// servfail zone get SERVFAIL.
type authServer struct {
	zones    []*dnszone.SignedZone
	servfail []string
}

func (a *authServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	do := r.IsEdns0() != nil && r.IsEdns0().Do()
	for _, z := range a.servfail {
		if dns.IsSubDomain(z, dns.CanonicalName(q.Name)) {
			m.Rcode = dns.RcodeServerFailure
			_ = w.WriteMsg(m)
			return
		}
	}
	var zone *dnszone.SignedZone
	for _, z := range a.zones {
		if z.Contains(q.Name) {
			zone = z
		}
	}
	if zone == nil {
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	res := zone.Lookup(q.Name, q.Qtype, do)
	m.Authoritative, m.Rcode = true, res.Rcode
	section := func(sets [][]dns.RR) []dns.RR {
		var out []dns.RR
		for _, set := range sets {
			if do {
				signed, err := zone.Sign(time.Now(), set)
				if err == nil {
					set = signed
				}
			}
			out = append(out, set...)
		}
		return out
	}
	m.Answer, m.Ns = section(res.Answer), section(res.Authority)
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(1232, opt.Do())
	}
	if _, udp := w.RemoteAddr().(*net.UDPAddr); udp {
		size := 512
		if opt := r.IsEdns0(); opt != nil {
			size = int(min(opt.UDPSize(), 1232))
		}
		m.Truncate(size)
	}
	_ = w.WriteMsg(m)
}

func mustRRs(t testing.TB, lines ...string) []dns.RR {
	t.Helper()
	var out []dns.RR
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		out = append(out, rr)
	}
	return out
}

// txtRR builds a TXT record of several strings from one long text.
func txtRR(name, text string) dns.RR {
	var parts []string
	for len(text) > 200 {
		parts = append(parts, text[:200])
		text = text[200:]
	}
	parts = append(parts, text)
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: parts}
}

// startLab brings the lab up for one test (a second or two) and stops it
// when the test ends.
func startLab(t testing.TB) *lab {
	t.Helper()
	peertest.Require(t, "unbound")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	serve := func(name string, f func() error) {
		wg.Go(func() {
			if err := f(); err != nil && ctx.Err() == nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	l := &lab{smtp: map[netip.Addr]string{}, https: map[netip.Addr]string{}}

	// mailsec's zones A and B with per-host addresses.
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Zones.A, cfg.Zones.B = labZoneA+".", labZoneB+"."
	cfg.Zones.SignB = true
	cfg.Zones.NSAddresses = []string{"127.0.0.1"}
	cfg.Zones.MXAddresses = []string{labShared.String()}
	cfg.Zones.HostAddresses = map[string][]string{"mta-sts": {labPolicyA.String()}}
	for h, a := range labHostAddr {
		cfg.Zones.HostAddresses[h] = []string{a.String()}
	}
	cfg.Zones.PolicyHostAddresses = []string{labPolicyA.String()}
	cfg.TLS.Issuer = certs.IssuerLocal
	cfg.SMTP.ClientPrefixV4 = 32
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	zones, err := service.BuildZones(&cfg, time.Now(), service.CreateZoneKeys)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := dnsserver.Listen(ctx, []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := dnsserver.New(zones.Authority, dnsserver.Options{UDPSize: 1232})
	serve("dns", func() error { return dnsSrv.Serve(ctx, dl) })
	dnsAddr := dl[0].Addr().(*net.UDPAddr).AddrPort()

	mgr, err := certs.New(certs.Options{
		DataDir: cfg.DataDir, ZoneA: cfg.Zones.A, ZoneB: cfg.Zones.B, Issuer: certs.IssuerLocal,
		Keys: zones.Keys, Challenges: zones.Authority,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{mgr.RootsPEM()} {
		for len(b) > 0 {
			var c *x509.Certificate
			c, b = parsePEMCert(t, b)
			if c != nil {
				l.roots = append(l.roots, c)
			}
		}
	}
	ca := newTestCA(t)
	l.roots = append(l.roots, ca.cert)

	// The user zones.
	p6, err := mgr.Persona(6)
	if err != nil {
		t.Fatal(err)
	}
	leaf6, _ := x509.ParseCertificate(p6.Certificate[0])
	tlsa6, _ := dane.Compute(dane.UsageDANEEE, dane.SelectorSPKI, dane.MatchSHA256, leaf6)
	other := strings.Repeat("ab", 32)
	ukey, err := dnssec.LoadOrCreateKey(t.TempDir(), "user.example.", 60)
	if err != nil {
		t.Fatal(err)
	}
	userRRs := mustRRs(t,
		"user.example. 60 IN SOA ns.user.example. hostmaster.user.example. 1 3600 600 86400 60",
		"user.example. 60 IN NS ns.user.example.",
		"ns.user.example. 60 IN A 127.0.0.1",
		"good.user.example. 60 IN MX 10 mx6."+labZoneA+".",
		`_mta-sts.good.user.example. 60 IN TXT "v=STSv1; id=20260101"`,
		"mta-sts.good.user.example. 60 IN A "+labPolicyU.String(),
		`_smtp._tls.good.user.example. 60 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@good.user.example"`,
		`good.user.example. 60 IN TXT "v=spf1 mx -all"`,
		`_dmarc.good.user.example. 60 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.user.example"`,
		"daneee.user.example. 60 IN MX 10 mx4."+labZoneA+".",
		// The organizational domain's DMARC record: the user.example
		// subdomains without their own inherit sp= (RFC 7489 §6.6.3).
		`_dmarc.user.example. 60 IN TXT "v=DMARC1; p=reject; sp=quarantine"`,
		// Two MX hosts, the first with two addresses: each is tested.
		"multi.user.example. 60 IN MX 10 mx1.multi.user.example.",
		"multi.user.example. 60 IN MX 20 mx2.multi.user.example.",
		"mx1.multi.user.example. 60 IN A 127.0.3.6",
		"mx1.multi.user.example. 60 IN A 127.0.3.7",
		"mx2.multi.user.example. 60 IN A "+labShared.String(),
		"bogus.user.example. 60 IN MX 10 mx.bogus.user.example.",
		"mx.bogus.user.example. 60 IN A 127.0.3.6",
		"pkix.user.example. 60 IN MX 10 mx.pkix.user.example.",
		"mx.pkix.user.example. 60 IN A "+labShared.String(),
		"_25._tcp.mx.pkix.user.example. 60 IN TLSA 1 1 1 "+other,
		"roll.user.example. 60 IN MX 10 mx.roll.user.example.",
		"mx.roll.user.example. 60 IN A 127.0.3.6",
		"_25._tcp.mx.roll.user.example. 60 IN TLSA "+tlsa6.String(),
		"_25._tcp.mx.roll.user.example. 60 IN TLSA 3 1 1 "+other,
	)
	userRRs = append(userRRs, ukey.DNSKEY)
	uz, err := dnszone.New("user.example.", userRRs, dnszone.Options{Signed: true, Broken: []string{"mx.bogus.user.example."}})
	if err != nil {
		t.Fatal(err)
	}
	spfIncludes := ""
	var includeRRs []string
	for i := range 11 {
		spfIncludes += fmt.Sprintf(" include:i%d.plain.example", i)
		includeRRs = append(includeRRs, fmt.Sprintf(`i%d.plain.example. 60 IN TXT "v=spf1 -all"`, i))
	}
	plainRRs := mustRRs(t, append([]string{
		"plain.example. 60 IN SOA ns.plain.example. hostmaster.plain.example. 1 3600 600 86400 60",
		"plain.example. 60 IN NS ns.plain.example.",
		"plain.example. 60 IN MX 10 mx7." + labZoneB + ".",
		"selfsigned.plain.example. 60 IN MX 10 mail.selfsigned.plain.example.",
		"mail.selfsigned.plain.example. 60 IN A " + labShared.String(),
		"nostarttls.plain.example. 60 IN MX 10 mx.nostarttls.plain.example.",
		"mx.nostarttls.plain.example. 60 IN A " + labWindow.String(),
		"null.plain.example. 60 IN MX 0 .",
		"nomx.plain.example. 60 IN A " + labShared.String(),
		`empty.plain.example. 60 IN TXT "nothing here"`,
		"cname.plain.example. 60 IN MX 10 alias.plain.example.",
		"alias.plain.example. 60 IN CNAME mx7." + labZoneB + ".",
		"loop.plain.example. 60 IN MX 10 loop1.plain.example.",
		"loop1.plain.example. 60 IN CNAME loop2.plain.example.",
		"loop2.plain.example. 60 IN CNAME loop1.plain.example.",
		"tarpit.plain.example. 60 IN MX 10 mx.tarpit.plain.example.",
		"mx.tarpit.plain.example. 60 IN A " + labTarpit.String(),
		"busy.plain.example. 60 IN MX 10 mx.busy.plain.example.",
		"mx.busy.plain.example. 60 IN A " + labBusy.String(),
		"brokentls.plain.example. 60 IN MX 10 mx.brokentls.plain.example.",
		"mx.brokentls.plain.example. 60 IN A " + labBrokenTLS.String(),
		"closed.plain.example. 60 IN MX 10 mx.closed.plain.example.",
		"mx.closed.plain.example. 60 IN A " + labClosed.String(),
		"notsmtp.plain.example. 60 IN MX 10 mx.notsmtp.plain.example.",
		"mx.notsmtp.plain.example. 60 IN A " + labNotSMTP.String(),
		"insecuretlsa.plain.example. 60 IN MX 10 mx.insecuretlsa.plain.example.",
		"mx.insecuretlsa.plain.example. 60 IN A " + labShared.String(),
		"_25._tcp.mx.insecuretlsa.plain.example. 60 IN TLSA 3 1 1 " + other,
		"servfail.plain.example. 60 IN MX 10 mx.fail.example.",
		"xn--bcher-kva.plain.example. 60 IN MX 10 mx7." + labZoneB + ".",
		"bigtxt.plain.example. 60 IN MX 10 mx7." + labZoneB + ".",
		`stsbad.plain.example. 60 IN MX 10 mx7.` + labZoneB + ".",
		`_mta-sts.stsbad.plain.example. 60 IN TXT "v=STSv1; id=not-alnum!"`,
	}, includeRRs...)...)
	plainRRs = append(plainRRs,
		txtRR("bigtxt.plain.example.", "v=spf1"+spfIncludes+" -all"),
		txtRR("bigtxt.plain.example.", "filler="+strings.Repeat("x", 900)),
		txtRR("bigtxt.plain.example.", "more="+strings.Repeat("y", 900)),
	)
	pz, err := dnszone.New("plain.example.", plainRRs, dnszone.Options{})
	if err != nil {
		t.Fatal(err)
	}
	signer := dnssec.NewSigner(ukey, 24*time.Hour, time.Hour, time.Hour)
	auth := &authServer{
		zones:    []*dnszone.SignedZone{{Zone: uz, Signer: signer}, {Zone: pz}},
		servfail: []string{"fail.example."},
	}
	authAddr := peertest.FreeAddr(t)
	for _, network := range []string{"udp", "tcp"} {
		srv := &dns.Server{Addr: authAddr.String(), Net: network, Handler: auth}
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go func() { _ = srv.ListenAndServe() }()
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("auth server %s did not start", network)
		}
		t.Cleanup(func() { _ = srv.Shutdown() })
	}

	l.stubs = map[string]netip.AddrPort{
		cfg.Zones.A: dnsAddr, cfg.Zones.B: dnsAddr,
		"user.example.": authAddr, "plain.example.": authAddr, "fail.example.": authAddr,
	}
	l.anchors = []string{zones.KeyA.DS().String(), zones.KeyB.DS().String(), ukey.DS().String()}
	u := peertest.StartUnbound(t, peertest.UnboundOptions{
		Stubs:        l.stubs,
		TrustAnchors: l.anchors,
		Extra:        "  domain-insecure: \"plain.example.\"\n  domain-insecure: \"fail.example.\"\n",
	})
	l.resolver = u.Addr.String()
	if _, err := resolver.New(l.resolver); err != nil {
		t.Fatal(err)
	}

	// The personas.
	startPersonas := func(name string, addrs []netip.Addr, tweak func(*smtpd.Options, *store.Store)) *store.Store {
		st, err := store.Open(ctx, filepath.Join(t.TempDir(), name+".db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		var listen []string
		for _, a := range addrs {
			listen = append(listen, netip.AddrPortFrom(a, 0).String())
		}
		ls, err := smtpd.Listen(ctx, listen)
		if err != nil {
			t.Fatal(err)
		}
		for _, ln := range ls {
			ap := ln.Addr().(*net.TCPAddr).AddrPort()
			l.smtp[ap.Addr().Unmap()] = ap.String()
		}
		opts := service.SMTPOptions(&cfg, zones, mgr, st, nil, slog.New(slog.DiscardHandler))
		opts.CommandTimeout, opts.DataTimeout = 10*time.Second, 10*time.Second
		tweak(&opts, st)
		srv, err := smtpd.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		serve(name, func() error { return srv.Serve(ctx, ls) })
		return st
	}
	accept := []netip.Addr{labShared}
	for _, a := range labHostAddr {
		accept = append(accept, a)
	}
	startPersonas("accept", accept, func(o *smtpd.Options, _ *store.Store) { o.AcceptAll = true })
	l.window = startPersonas("window", []netip.Addr{labWindow}, func(o *smtpd.Options, st *store.Store) {
		o.DowngradeWindow = time.Hour
		// As internal/service wires it (service.SenderChecks).
		runner := inbound.NewRunner(inbound.RunnerOptions{
			Check: l.options(),
			Save: func(ctx context.Context, testID string, rep inbound.Stored) error {
				return st.AddInboundCheck(ctx, store.InboundCheck{TestID: testID, Domain: rep.Domain, Checked: rep.Checked,
					Stored: time.Now(), Colour: string(rep.Colour), Report: rep.JSON})
			},
		})
		o.TestSender = runner.Submit
		serve("sender checks", func() error { return runner.Run(ctx) })
	})

	// The policy hosts.
	startPolicy := func(at netip.Addr, host, policy string, cert func() (*tls.Certificate, error)) {
		pl, err := policyhost.Listen(ctx, []string{"127.0.0.1:0"})
		if err != nil {
			t.Fatal(err)
		}
		l.https[at] = pl[0].Addr().String()
		ph := policyhost.New(policyhost.Options{Host: host, Policy: policy, Certificate: cert})
		serve("policyhost "+host, func() error { return ph.Serve(ctx, pl) })
	}
	startPolicy(labPolicyA, mgr.PolicyHostName(), zones.Policy.String(), mgr.PolicyHost)
	uCert := ca.issue(t, "mta-sts.good.user.example")
	startPolicy(labPolicyU, "mta-sts.good.user.example",
		"version: STSv1\r\nmode: enforce\r\nmx: *."+labZoneA+"\r\nmax_age: 604800\r\n",
		func() (*tls.Certificate, error) { return uCert, nil })

	// The misbehaving peers.
	rawPeer := func(at netip.Addr, handle func(net.Conn)) {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(at, 0).String())
		if err != nil {
			t.Fatal(err)
		}
		l.smtp[at] = ln.Addr().String()
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(30 * time.Second))
					handle(c)
				}()
			}
		}()
	}
	rawPeer(labTarpit, func(c net.Conn) { // accepts and says nothing
		select {
		case <-ctx.Done():
		case <-time.After(30 * time.Second):
		}
	})
	rawPeer(labBusy, func(c net.Conn) {
		fmt.Fprintf(c, "421 4.7.0 mx.busy.plain.example too many connections, try later\r\n")
	})
	rawPeer(labBrokenTLS, func(c net.Conn) {
		buf := make([]byte, 512)
		fmt.Fprintf(c, "220 mx.brokentls.plain.example ESMTP\r\n")
		c.Read(buf) // EHLO
		fmt.Fprintf(c, "250-mx.brokentls.plain.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
		c.Read(buf) // STARTTLS
		fmt.Fprintf(c, "220 2.0.0 go ahead\r\n")
		c.Read(buf) // ClientHello
		c.Write([]byte("this is no TLS server hello\r\n"))
	})
	rawPeer(labNotSMTP, func(c net.Conn) {
		fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
	})
	closed := peertest.FreeAddr(t) // nothing listens there
	l.smtp[labClosed] = netip.AddrPortFrom(labClosed, closed.Port()).String()
	return l
}

func parsePEMCert(t testing.TB, b []byte) (*x509.Certificate, []byte) {
	t.Helper()
	block, rest := pem.Decode(b)
	if block == nil {
		return nil, nil
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c, rest
}
