package sender_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"github.com/mailsec/mailsec/internal/sender"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/certs"
	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/dnsserver"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/policyhost"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/smtpd"
	"github.com/mailsec/mailsec/internal/store"
)

// The lab: mailsec's own receiving side, in-process, built the way
// internal/service builds it — the signed test zones served by our DNS
// server, a real validating Unbound in front of them, the SMTP personas
// with certificates of the local CA, and the MTA-STS policy host. Every
// MX host has an address of its own (127.0.0.3 … 127.0.0.7), so the
// address names the persona; the personas listen on free ports of those
// addresses and the sender's Dial hook maps port 25 to them.
var hostAddr = map[string]netip.Addr{
	"mx3": netip.MustParseAddr("127.0.0.3"),
	"mx4": netip.MustParseAddr("127.0.0.4"),
	"mx5": netip.MustParseAddr("127.0.0.5"),
	"mx6": netip.MustParseAddr("127.0.0.6"),
	"mx7": netip.MustParseAddr("127.0.0.7"),
}

var policyHostAddr = netip.MustParseAddr("127.0.0.8")

type labOptions struct {
	signB bool
	// policy replaces the text the policy host serves (the DNS record
	// still carries the id of zone A's real policy).
	policy string
}

type lab struct {
	cfg          config.Config
	zoneA, zoneB string // without trailing dot
	res          *resolver.Resolver
	roots        *x509.CertPool
	// accept is a persona server in bench mode (250 to every test
	// address, no downgrade window): deliveries complete. window is a
	// normal one whose downgrade window covers the whole test: STARTTLS
	// is never offered (persona 1) and mails get 451.
	accept, window *personaServer
	policyAddr     netip.AddrPort
	policyStore    *store.Store
	nextLocal      atomic.Int32
}

type personaServer struct {
	st    *store.Store
	ports map[netip.Addr]uint16
}

func startLab(t *testing.T, lo labOptions) *lab {
	t.Helper()
	peertest.Require(t, "unbound")
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Zones.SignB = lo.signB
	cfg.Zones.NSAddresses = []string{"127.0.0.1"}
	cfg.Zones.MXAddresses = []string{"127.0.0.2"}
	cfg.Zones.HostAddresses = map[string][]string{"mta-sts": {policyHostAddr.String()}}
	for h, a := range hostAddr {
		cfg.Zones.HostAddresses[h] = []string{a.String()}
	}
	cfg.Zones.PolicyHostAddresses = []string{policyHostAddr.String()}
	cfg.TLS.Issuer = certs.IssuerLocal
	cfg.SMTP.ClientPrefixV4 = 32 // every sender address is a client of its own
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	l := &lab{cfg: cfg, zoneA: strings.TrimSuffix(cfg.Zones.A, "."), zoneB: strings.TrimSuffix(cfg.Zones.B, ".")}
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

	zones, err := service.BuildZones(&cfg, time.Now(), service.CreateZoneKeys)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := dnsserver.Listen(ctx, []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	dnsSrv := dnsserver.New(zones.Authority, dnsserver.Options{UDPSize: cfg.DNS.UDPSize})
	serve("dns", func() error { return dnsSrv.Serve(ctx, dl) })
	dnsAddr := dl[0].Addr().(*net.UDPAddr).AddrPort()
	anchors := []string{zones.KeyA.DS().String()}
	if zones.KeyB != nil {
		anchors = append(anchors, zones.KeyB.DS().String())
	}
	u := peertest.StartUnbound(t, peertest.UnboundOptions{
		Stubs:        map[string]netip.AddrPort{cfg.Zones.A: dnsAddr, cfg.Zones.B: dnsAddr},
		TrustAnchors: anchors,
	})
	if l.res, err = resolver.New(u.Addr.String()); err != nil {
		t.Fatal(err)
	}

	mgr, err := certs.New(certs.Options{
		DataDir: cfg.DataDir, ZoneA: cfg.Zones.A, ZoneB: cfg.Zones.B, Issuer: certs.IssuerLocal,
		Keys: zones.Keys, Challenges: zones.Authority,
	})
	if err != nil {
		t.Fatal(err)
	}
	l.roots = x509.NewCertPool()
	if !l.roots.AppendCertsFromPEM(mgr.RootsPEM()) {
		t.Fatal("no local CA root")
	}

	startPersonas := func(name string, tweak func(*smtpd.Options)) *personaServer {
		st, err := store.Open(ctx, filepath.Join(t.TempDir(), name+".db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		var listen []string
		for _, a := range hostAddr {
			listen = append(listen, netip.AddrPortFrom(a, 0).String())
		}
		ls, err := smtpd.Listen(ctx, listen)
		if err != nil {
			t.Fatal(err)
		}
		ps := &personaServer{st: st, ports: map[netip.Addr]uint16{}}
		for _, ln := range ls {
			ap := ln.Addr().(*net.TCPAddr).AddrPort()
			ps.ports[ap.Addr().Unmap()] = ap.Port()
		}
		opts := service.SMTPOptions(&cfg, zones, mgr, st, l.res, sender.TestLogger(t).With("part", name))
		opts.CommandTimeout, opts.DataTimeout = 10*time.Second, 10*time.Second
		tweak(&opts)
		srv, err := smtpd.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		serve(name, func() error { return srv.Serve(ctx, ls) })
		return ps
	}
	l.accept = startPersonas("accept", func(o *smtpd.Options) { o.AcceptAll = true })
	l.window = startPersonas("window", func(o *smtpd.Options) { o.DowngradeWindow = time.Hour })

	policy := zones.Policy.String()
	if lo.policy != "" {
		policy = lo.policy
	}
	if l.policyStore, err = store.Open(ctx, filepath.Join(t.TempDir(), "policy.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.policyStore.Close() })
	pl, err := policyhost.Listen(ctx, []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	l.policyAddr = pl[0].Addr().(*net.TCPAddr).AddrPort()
	ph := policyhost.New(policyhost.Options{Host: mgr.PolicyHostName(), Policy: policy, Certificate: mgr.PolicyHost, Recorder: l.policyStore})
	serve("policyhost", func() error { return ph.Serve(ctx, pl) })
	return l
}

func (l *lab) mx(n int) string {
	if n == 7 {
		return fmt.Sprintf("mx7.%s", l.zoneB)
	}
	return fmt.Sprintf("mx%d.%s", n, l.zoneA)
}

// labSender is a sender.Sender of the lab with its own source address and a
// record of where it connected.
type labSender struct {
	*sender.Sender
	local netip.Addr
	mu    sync.Mutex
	smtp  []netip.Addr // MX addresses dialed (port 25 asked for)
	https []netip.Addr
}

func (ls *labSender) dialed() []netip.Addr {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append([]netip.Addr(nil), ls.smtp...)
}

// newSender makes a sender at level; window picks the persona server
// whose downgrade window never ends.
func (l *lab) newSender(t *testing.T, level sender.Level, window bool, tweak func(*sender.Options)) *labSender {
	t.Helper()
	n := l.nextLocal.Add(1)
	ls := &labSender{local: netip.AddrFrom4([4]byte{127, 0, 1, byte(n)})}
	servers := l.accept
	if window {
		servers = l.window
	}
	dialFrom := func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: ls.local.AsSlice()}, Timeout: 5 * time.Second}
		return d.DialContext(ctx, "tcp", to.String())
	}
	opts := sender.Options{
		Hostname: fmt.Sprintf("sender%d.lab.example", n), Level: level, Resolver: l.res, Roots: l.roots,
		LocalAddr: ls.local, SMTPPort: 25,
		// The lab's port mapping: MX host port 25 → the persona
		// listener of that address; mta-sts:443 → the policy host.
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || ap.Port() != 25 {
				return nil, fmt.Errorf("lab: unexpected SMTP address %q", addr)
			}
			ls.mu.Lock()
			ls.smtp = append(ls.smtp, ap.Addr())
			ls.mu.Unlock()
			port, ok := servers.ports[ap.Addr()]
			if !ok {
				return nil, fmt.Errorf("lab: nothing listens for %s", addr)
			}
			return dialFrom(ctx, netip.AddrPortFrom(ap.Addr(), port))
		},
		DialHTTPS: func(ctx context.Context, network, addr string) (net.Conn, error) {
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || ap.Port() != 443 || ap.Addr() != policyHostAddr {
				return nil, fmt.Errorf("lab: unexpected HTTPS address %q", addr)
			}
			ls.mu.Lock()
			ls.https = append(ls.https, ap.Addr())
			ls.mu.Unlock()
			return dialFrom(ctx, l.policyAddr)
		},
		ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second, DataTimeout: 10 * time.Second,
		PolicyTimeout: 10 * time.Second,
		Shuffle:       func(int, func(i, j int)) {}, // keep the zone's order
		Logger:        sender.TestLogger(t).With("sender", string(level)),
	}
	if tweak != nil {
		tweak(&opts)
	}
	s, err := sender.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ls.Sender = s
	return ls
}

// message is a test mail to local@zone.
func (l *lab) message(to string, only ...string) sender.Message {
	return sender.Message{
		From:   "postmaster@sender.lab.example",
		To:     []string{to},
		Data:   []byte("From: postmaster@sender.lab.example\nTo: " + to + "\nSubject: lab\n\nHello.\n.leading dot\n"),
		OnlyMX: only,
	}
}

// connections returns what the persona server recorded for a client.
func (ps *personaServer) connections(t *testing.T, client netip.Addr) []store.SMTPConnection {
	t.Helper()
	// Records are final shortly after the session closes.
	var cs []store.SMTPConnection
	for range 50 {
		var err error
		cs, err = ps.st.Connections(context.Background(), store.ConnectionFilter{ClientAddr: client})
		if err != nil {
			t.Fatal(err)
		}
		open := false
		for _, c := range cs {
			open = open || c.Ended.IsZero()
		}
		if !open {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cs
}
