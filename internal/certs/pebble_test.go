package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/certs"
	"github.com/mailsec/mailsec/internal/cluster"
	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/dnsserver"
	"github.com/mailsec/mailsec/internal/dnszone"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/pgtest"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/store"
)

// The zones' authority is what answers the dns-01 challenges.
var _ certs.ChallengePublisher = (*dnszone.Authority)(nil)

// queryLog records the queries our DNS server answered.
type queryLog struct {
	mu sync.Mutex
	qs []store.DNSQuery
}

func (l *queryLog) Record(q store.DNSQuery) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.qs = append(l.qs, q)
}

// seen returns the transports over which name/qtype was asked.
func (l *queryLog) seen(name string, qtype uint16) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, q := range l.qs {
		if strings.EqualFold(q.Name, name) && q.Type == qtype {
			out = append(out, q.Transport)
		}
	}
	return out
}

// zoneServer is the service's authoritative DNS for zones A and B on a free
// loopback port, built as internal/service builds it.
type zoneServer struct {
	cfg   config.Config
	zones *service.Zones
	keys  *persona.Keys
	addr  netip.AddrPort
	log   *queryLog
}

func startZoneServer(t *testing.T) *zoneServer {
	t.Helper()
	return startZoneServerIn(t, t.TempDir())
}

// startZoneServerIn is startZoneServer with the keys of dataDir: a second
// node started on the first one's directory serves the same keys, as
// nodes with the copied key directory do (docs/cluster.md).
func startZoneServerIn(t *testing.T, dataDir string) *zoneServer {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = dataDir
	cfg.Zones.A, cfg.Zones.B = zoneA, zoneB
	cfg.Zones.MXAddresses = []string{"127.0.0.20"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	zones, err := service.BuildZones(&cfg, time.Now(), service.CreateZoneKeys)
	if err != nil {
		t.Fatal(err)
	}
	// The same files BuildZones read: the keys behind the TLSA records.
	keys, err := persona.LoadKeys(cfg.KeyDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := dnsserver.Listen(ctx, []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ql := &queryLog{}
	srv := dnsserver.New(zones.Authority, dnsserver.Options{UDPSize: cfg.DNS.UDPSize, Recorder: ql})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("dns serve: %v", err)
		}
	})
	return &zoneServer{cfg: cfg, zones: zones, keys: keys, addr: ls[0].Addr().(*net.UDPAddr).AddrPort(), log: ql}
}

func (z *zoneServer) query(t *testing.T, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, true)
	c := &dns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, z.addr.String())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

// TestChallengeServedByDNSServer: a challenge set on the authority is
// answered by the running server at once over UDP and TCP, signed, even
// after the server cached the NXDOMAIN before; cleared, it is gone.
func TestChallengeServedByDNSServer(t *testing.T) {
	z := startZoneServer(t)
	const name = "_acme-challenge.mx6." + zoneA
	for _, network := range []string{"udp", "tcp"} {
		if r := z.query(t, network, name, dns.TypeTXT); r.Rcode != dns.RcodeNameError {
			t.Fatalf("before: %s", dns.RcodeToString[r.Rcode])
		}
	}
	if err := z.zones.Authority.SetChallenge(name, []string{"token-value"}); err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"udp", "tcp"} {
		r := z.query(t, network, name, dns.TypeTXT)
		var txt *dns.TXT
		var sig *dns.RRSIG
		for _, rr := range r.Answer {
			switch rr := rr.(type) {
			case *dns.TXT:
				txt = rr
			case *dns.RRSIG:
				sig = rr
			}
		}
		if r.Rcode != dns.RcodeSuccess || txt == nil || txt.Txt[0] != "token-value" {
			t.Fatalf("after set over %s: %v", network, r)
		}
		if sig == nil || sig.Verify(z.zones.KeyA.DNSKEY, []dns.RR{txt}) != nil {
			t.Fatalf("after set over %s: TXT not validly signed: %v", network, r)
		}
	}
	if err := z.zones.Authority.ClearChallenge(name); err != nil {
		t.Fatal(err)
	}
	if r := z.query(t, "udp", name, dns.TypeTXT); r.Rcode != dns.RcodeNameError {
		t.Fatalf("after clear: %s", dns.RcodeToString[r.Rcode])
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// pebble is a running pebble ACME test CA.
type pebble struct {
	directory  string
	management string
	caFile     string // trusts pebble's listener (directory and management)
	out        *bytes.Buffer
}

// startPebble runs pebble (lab-recipes §4) on free loopback ports with a
// listener certificate made here, validating dns-01 against dnsServer.
// Challenges are validated for real: PEBBLE_VA_ALWAYS_VALID is removed from
// the environment.
func startPebble(t *testing.T, dnsServer netip.AddrPort) *pebble {
	t.Helper()
	bin := peertest.Require(t, "pebble")
	dir := t.TempDir()
	ca := newTestCA(t)
	listen, mgmt := peertest.FreeAddr(t), peertest.FreeAddr(t)
	files, _ := ca.issue(t, dir, "pebble", "localhost", "127.0.0.1")
	p := &pebble{
		directory:  "https://" + listen.String() + "/dir",
		management: "https://" + mgmt.String(),
		caFile:     filepath.Join(dir, "ca.pem"),
		out:        &bytes.Buffer{},
	}
	if err := os.WriteFile(p.caFile, ca.pem(), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := json.Marshal(map[string]any{"pebble": map[string]any{
		"listenAddress": listen.String(), "managementListenAddress": mgmt.String(),
		"certificate": files.Cert, "privateKey": files.Key,
		// Ports pebble would connect to for http-01 and tls-alpn-01;
		// unused with dns-01.
		"httpPort": 5002, "tlsPort": 5001,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
	}})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-config", cfgPath, "-dnsserver", dnsServer.String())
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PEBBLE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0")
	var mu sync.Mutex
	cmd.Stdout = lockedWriter{&mu, p.out}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pebble: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("pebble output:\n%s", p.out)
			mu.Unlock()
		}
	})
	client := p.client(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := client.Get(p.directory)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not answer at %s: %v", p.directory, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// client trusts pebble's listener certificate.
func (p *pebble) client(t *testing.T) *http.Client {
	t.Helper()
	b, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// root fetches the root pebble issues under (new on every start).
func (p *pebble) root(t *testing.T) *x509.CertPool {
	t.Helper()
	res, err := p.client(t).Get(p.management + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET /roots/0: %d %v", res.StatusCode, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("/roots/0 is no PEM certificate: %q", b)
	}
	return pool
}

// TestPebbleDNS01 obtains the CA-signed certificates from a real pebble,
// which validates dns-01 by asking our own authoritative server over TCP.
func TestPebbleDNS01(t *testing.T) {
	peertest.Require(t, "pebble")
	z := startZoneServer(t)
	p := startPebble(t, z.addr)

	clk := newClock(time.Now())
	opt := certs.Options{
		DataDir: z.cfg.DataDir, ZoneA: z.cfg.Zones.A, ZoneB: z.cfg.Zones.B,
		Issuer:     certs.IssuerACME,
		ACME:       certs.ACMEOptions{Directory: p.directory, CAFile: p.caFile, Email: "hostmaster@a.mailtest.example"},
		Keys:       z.keys,
		Slots:      3, // test slots: each host's certificate names it in slots 1-3 too
		Challenges: z.zones.Authority,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        clk.now,
	}
	m, err := certs.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := m.RenewDue(ctx); err != nil {
		t.Fatalf("obtaining certificates from pebble: %v", err)
	}

	roots := p.root(t)
	verify := func(c *tls.Certificate, host string) { t.Helper(); verifyChain(t, c, host, roots) }
	for _, tc := range []struct {
		n    int
		host string
	}{{5, "mx5.a.mailtest.example"}, {6, "mx6.a.mailtest.example"}, {7, "mx7.b.mailtest.example"}} {
		c := mustPersona(t, m, tc.n)
		verify(c, tc.host)
		checkPersonaKey(t, z.keys, tc.n, c)
		label, zone, _ := strings.Cut(tc.host, ".")
		slotHost := label + ".s003." + zone
		verify(c, slotHost)
		// pebble asked our server for the challenges (dns-01 for real),
		// the slot names' too.
		for _, host := range []string{tc.host, slotHost} {
			if got := z.log.seen("_acme-challenge."+host+".", dns.TypeTXT); len(got) == 0 {
				t.Errorf("pebble never asked our DNS for _acme-challenge.%s", host)
			} else {
				t.Logf("pebble asked for _acme-challenge.%s over %v", host, got)
			}
		}
	}
	ph, err := m.PolicyHost()
	if err != nil {
		t.Fatal(err)
	}
	verify(ph, "mta-sts.a.mailtest.example")
	if ch := z.zones.Authority.Challenges(); len(ch) != 0 {
		t.Errorf("challenge records left behind: %v", ch)
	}

	// Renewal goes to pebble again and keeps persona 6's key, so its TLSA
	// record stays valid.
	old6 := mustPersona(t, m, 6)
	clk.set(old6.Leaf.NotAfter.Add(-time.Hour))
	if err := m.RenewDue(ctx); err != nil {
		t.Fatalf("renewal: %v", err)
	}
	new6 := mustPersona(t, m, 6)
	if new6.Leaf.SerialNumber.Cmp(old6.Leaf.SerialNumber) == 0 {
		t.Fatal("not renewed")
	}
	verify(new6, "mx6.a.mailtest.example")
	checkPersonaKey(t, z.keys, 6, new6)

	// A restart serves the stored chain without asking pebble.
	m2, err := certs.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustPersona(t, m2, 6); got.Leaf.SerialNumber.Cmp(new6.Leaf.SerialNumber) != 0 {
		t.Fatal("restart did not load the stored certificate")
	}
}

// startChallenges shares a node's challenge records through st, loading
// them every 50 ms until the test ends.
func startChallenges(t *testing.T, st *store.Store, node string, z *zoneServer) *cluster.Challenges {
	t.Helper()
	c, err := cluster.NewChallenges(cluster.ChallengeOptions{Store: st, Node: node, Zones: z.zones.Authority,
		Period: 50 * time.Millisecond, DeadAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// txt returns the TXT values of name that z answers and whether each
// TXT RRset came with a valid signature by key.
func txtAnswer(t *testing.T, z *zoneServer, name string, key *dns.DNSKEY) (values []string, signed bool) {
	t.Helper()
	r := z.query(t, "udp", name, dns.TypeTXT)
	var txts []dns.RR
	var sig *dns.RRSIG
	for _, rr := range r.Answer {
		switch rr := rr.(type) {
		case *dns.TXT:
			txts = append(txts, rr)
			values = append(values, rr.Txt...)
		case *dns.RRSIG:
			sig = rr
		}
	}
	slices.Sort(values)
	return values, sig != nil && len(txts) > 0 && sig.Verify(key, txts) == nil
}

// TestChallengeAcrossNodes: two nodes on one PostgreSQL database. A
// challenge set through node 1 is answered, signed, by node 2's DNS server
// when SetChallenge returns; values of both nodes for one name are served
// together; cleared, they leave node 2 too. Then pebble, whose DNS is node
// 2, validates the orders node 1 places (TestPebbleDNS01 across nodes).
func TestChallengeAcrossNodes(t *testing.T) {
	dsn := pgtest.Database(t)
	open := func() *store.Store {
		st, err := store.OpenDriver(t.Context(), store.DriverPostgres, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	z1 := startZoneServer(t)
	z2 := startZoneServerIn(t, z1.cfg.DataDir)
	c1 := startChallenges(t, open(), "node-1", z1)
	c2 := startChallenges(t, open(), "node-2", z2)
	// Both nodes have loaded once, as running nodes have: node 1 waits
	// for node 2 from now on.
	st := open()
	for _, n := range []string{"node-1", "node-2"} {
		for i := 0; ; i++ {
			loads, err := st.ACMEChallengeLoads(t.Context(), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := loads[n]; ok {
				break
			}
			if i == 200 {
				t.Fatalf("%s never loaded the challenge records", n)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	key := z2.zones.KeyA.DNSKEY

	const name = "_acme-challenge.mx6." + zoneA
	if err := c1.SetChallenge(name, []string{"from-node-1"}); err != nil {
		t.Fatal(err)
	}
	if got, signed := txtAnswer(t, z2, name, key); !slices.Equal(got, []string{"from-node-1"}) || !signed {
		t.Fatalf("node 2 answers %v (signed %v) for the challenge set through node 1", got, signed)
	}
	if err := c2.SetChallenge(name, []string{"from-node-2"}); err != nil {
		t.Fatal(err)
	}
	for _, z := range []*zoneServer{z1, z2} {
		if got, signed := txtAnswer(t, z, name, key); !slices.Equal(got, []string{"from-node-1", "from-node-2"}) || !signed {
			t.Fatalf("a node answers %v (signed %v), want both nodes' values", got, signed)
		}
	}
	if err := c1.ClearChallenge(name); err != nil {
		t.Fatal(err)
	}
	if err := c2.ClearChallenge(name); err != nil {
		t.Fatal(err)
	}
	waitNoChallenges(t, z1, z2)
	if r := z2.query(t, "udp", name, dns.TypeTXT); r.Rcode != dns.RcodeNameError {
		t.Fatalf("node 2 after both cleared: %s", dns.RcodeToString[r.Rcode])
	}

	t.Run("pebble", func(t *testing.T) {
		peertest.Require(t, "pebble")
		pebbleAcrossNodes(t, z1, z2, c1)
	})
}

// waitNoChallenges waits (bounded) until no zone server publishes a
// challenge record.
func waitNoChallenges(t *testing.T, zs ...*zoneServer) {
	t.Helper()
	for _, z := range zs {
		for i := 0; len(z.zones.Authority.Challenges()) != 0; i++ {
			if i == 200 {
				t.Fatalf("challenge records left behind: %v", z.zones.Authority.Challenges())
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
}

// pebbleAcrossNodes: node 1 orders the certificates, pebble asks only node
// 2 for the challenges, and validates them.
func pebbleAcrossNodes(t *testing.T, z1, z2 *zoneServer, c1 *cluster.Challenges) {
	const asked = "_acme-challenge.mx6.a.mailtest.example."
	before := len(z1.log.seen(asked, dns.TypeTXT)) // the test's own queries
	p := startPebble(t, z2.addr)
	m, err := certs.New(certs.Options{
		DataDir: z1.cfg.DataDir, ZoneA: z1.cfg.Zones.A, ZoneB: z1.cfg.Zones.B,
		Issuer:     certs.IssuerACME,
		ACME:       certs.ACMEOptions{Directory: p.directory, CAFile: p.caFile, Email: "hostmaster@a.mailtest.example"},
		Keys:       z1.keys,
		Challenges: c1,
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := m.RenewDue(ctx); err != nil {
		t.Fatalf("obtaining certificates through node 1 from a pebble asking node 2: %v", err)
	}
	roots := p.root(t)
	verifyChain(t, mustPersona(t, m, 6), "mx6.a.mailtest.example", roots)
	if got := z2.log.seen(asked, dns.TypeTXT); len(got) == 0 {
		t.Errorf("pebble never asked node 2 for %s", asked)
	}
	if got := z1.log.seen(asked, dns.TypeTXT); len(got) != before {
		t.Errorf("pebble asked node 1 (%v): the test would not show the records crossing nodes", got)
	}
	waitNoChallenges(t, z1, z2)
}
