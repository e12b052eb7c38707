package certs_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/certs"
	"github.com/mailsec/mailsec/internal/persona"
)

const (
	zoneA = "a.mailtest.example."
	zoneB = "b.mailtest.example."
)

// clock is a settable Now.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) now() time.Time   { return *c.t.Load() }
func (c *clock) set(t time.Time)  { c.t.Store(&t) }

// env is a data directory with persona keys.
type env struct {
	dir  string
	keys *persona.Keys
	clk  *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	keys, err := persona.LoadKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return &env{dir: dir, keys: keys, clk: newClock(time.Now())}
}

func (e *env) options(issuer string) certs.Options {
	return certs.Options{
		DataDir: e.dir, ZoneA: zoneA, ZoneB: zoneB, Issuer: issuer,
		Keys: e.keys, Now: e.clk.now,
	}
}

func (e *env) manager(t *testing.T, opt certs.Options) *certs.Manager {
	t.Helper()
	m, err := certs.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func spki(t *testing.T, c *x509.Certificate) []byte {
	t.Helper()
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return sum[:]
}

func mustPersona(t *testing.T, m *certs.Manager, n int) *tls.Certificate {
	t.Helper()
	c, err := m.Persona(n)
	if err != nil {
		t.Fatalf("persona %d: %v", n, err)
	}
	return c
}

func checkPersonaKey(t *testing.T, keys *persona.Keys, n int, c *tls.Certificate) {
	t.Helper()
	want, err := keys.SPKISHA256(n)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spki(t, c.Leaf), want) {
		t.Fatalf("persona %d: certificate SPKI SHA-256 differs from the persona key's (TLSA 3 1 1 would not match)", n)
	}
}

func TestSelfSignedPersonas(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t, e.options(certs.IssuerLocal))
	tests := []struct {
		n        int
		host     string
		notValid string // a name the certificate must not be valid for
	}{
		{2, "a.mailtest.example", "mx3.a.mailtest.example"},
		{3, "mx3.a.mailtest.example", "mx4.a.mailtest.example"},
		{4, "mx4.a.mailtest.example", "mx3.a.mailtest.example"},
	}
	for _, tc := range tests {
		c := mustPersona(t, m, tc.n)
		leaf := c.Leaf
		if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
			t.Errorf("persona %d: not self-signed: %v", tc.n, err)
		}
		if !bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
			t.Errorf("persona %d: issuer %s != subject %s", tc.n, leaf.Issuer, leaf.Subject)
		}
		if err := leaf.VerifyHostname(tc.host); err != nil {
			t.Errorf("persona %d: %v", tc.n, err)
		}
		if leaf.VerifyHostname(tc.notValid) == nil {
			t.Errorf("persona %d: valid for %s", tc.n, tc.notValid)
		}
		if d := leaf.NotAfter.Sub(e.clk.now()); d < 364*24*time.Hour {
			t.Errorf("persona %d: valid for %s only", tc.n, d)
		}
		checkPersonaKey(t, e.keys, tc.n, c)
		// Not PKIX-valid: a "verify" sender must refuse it.
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: tc.host}); err == nil {
			t.Errorf("persona %d: self-signed certificate verifies against the system roots", tc.n)
		}
	}
	if c := mustPersona(t, m, 2); c.Leaf.Subject.CommonName != "mailsec persona 2" {
		t.Errorf("persona 2 subject %s", c.Leaf.Subject)
	}
	for _, n := range []int{1, 0, 8} {
		if _, err := m.Persona(n); !errors.Is(err, certs.ErrNoCertificate) {
			t.Errorf("Persona(%d) = %v, want ErrNoCertificate", n, err)
		}
	}
}

func TestLocalCA(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t, e.options(certs.IssuerLocal))
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(m.RootsPEM()) {
		t.Fatal("RootsPEM holds no certificate")
	}
	if b, err := os.ReadFile(m.RootsPath()); err != nil || !bytes.Equal(b, m.RootsPEM()) {
		t.Fatalf("RootsPath %s: %v", m.RootsPath(), err)
	}
	verify := func(name string, c *tls.Certificate) { t.Helper(); verifyChain(t, c, name, roots) }
	for _, tc := range []struct {
		n    int
		host string
	}{{5, "mx5.a.mailtest.example"}, {6, "mx6.a.mailtest.example"}, {7, "mx7.b.mailtest.example"}} {
		c := mustPersona(t, m, tc.n)
		verify(tc.host, c)
		checkPersonaKey(t, e.keys, tc.n, c)
	}
	ph, err := m.PolicyHost()
	if err != nil {
		t.Fatal(err)
	}
	verify("mta-sts.a.mailtest.example", ph)
	if m.PolicyHostName() != "mta-sts.a.mailtest.example" {
		t.Errorf("PolicyHostName %q", m.PolicyHostName())
	}

	// A restart loads the stored certificates instead of making new ones,
	// with the same root.
	m2 := e.manager(t, e.options(certs.IssuerLocal))
	for _, n := range []int{2, 4, 6} {
		if a, b := mustPersona(t, m, n), mustPersona(t, m2, n); a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) != 0 {
			t.Errorf("persona %d: restart made a new certificate", n)
		}
	}
	if !bytes.Equal(m.RootsPEM(), m2.RootsPEM()) {
		t.Error("restart made a new root")
	}
	ph2, _ := m2.PolicyHost()
	if !bytes.Equal(spki(t, ph.Leaf), spki(t, ph2.Leaf)) {
		t.Error("the policy host key changed across a restart")
	}
}

// TestSlotNames: with test slots, one certificate per host names the host
// in every slot (mx6.s001.A … mta-sts.s099.A, mx7.s099.B), at most 100
// names; a certificate stored before the pool grew lacks the new names and
// is replaced at the next start.
func TestSlotNames(t *testing.T) {
	e := newEnv(t)
	opt := e.options(certs.IssuerLocal)
	opt.Slots = 2
	m := e.manager(t, opt)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(m.RootsPEM())
	for _, name := range []string{"mx6.a.mailtest.example", "mx6.s001.a.mailtest.example", "mx6.s002.a.mailtest.example"} {
		verifyChain(t, mustPersona(t, m, 6), name, roots)
	}
	verifyChain(t, mustPersona(t, m, 7), "mx7.s002.b.mailtest.example", roots)
	ph, err := m.PolicyHost()
	if err != nil {
		t.Fatal(err)
	}
	verifyChain(t, ph, "mta-sts.s002.a.mailtest.example", roots)
	if err := ph.Leaf.VerifyHostname("mta-sts.s003.a.mailtest.example"); err == nil {
		t.Error("the policy host's certificate names a slot beyond the pool")
	}
	// Persona 4 (self-signed, DANE-EE) carries the slot names too.
	if err := mustPersona(t, m, 4).Leaf.VerifyHostname("mx4.s001.a.mailtest.example"); err != nil {
		t.Error(err)
	}

	// The pool grows to the largest: the stored certificates lack the
	// new names and are replaced, each with 100 names.
	opt.Slots = 99
	m2 := e.manager(t, opt)
	c := mustPersona(t, m2, 5)
	if c.Leaf.SerialNumber.Cmp(mustPersona(t, m, 5).Leaf.SerialNumber) == 0 {
		t.Fatal("a certificate without the new slots' names was kept")
	}
	if n := len(c.Leaf.DNSNames); n != 100 {
		t.Errorf("%d names, want 100 (Let's Encrypt's limit)", n)
	}
	verifyChain(t, c, "mx5.s099.a.mailtest.example", roots)
	opt.Slots = 100
	if _, err := certs.New(opt); !errors.Is(err, certs.ErrOptions) {
		t.Errorf("100 slots: %v, want ErrOptions", err)
	}
}

// TestRenewalKeepsKey: renewal replaces certificates when due and never
// changes the key, so persona 4's and 6's TLSA records stay valid.
func TestRenewalKeepsKey(t *testing.T) {
	e := newEnv(t)
	t0 := e.clk.now()
	m := e.manager(t, e.options(certs.IssuerLocal))
	old4, old6 := mustPersona(t, m, 4), mustPersona(t, m, 6)

	step := func(d time.Duration) {
		t.Helper()
		e.clk.set(t0.Add(d))
		if err := m.RenewDue(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	step(50 * 24 * time.Hour) // nothing due: local 90 d renews at 60 d, self-signed 365 d at 335 d
	if mustPersona(t, m, 6) != old6 || mustPersona(t, m, 4) != old4 {
		t.Fatal("renewed before due")
	}
	step(61 * 24 * time.Hour)
	new6 := mustPersona(t, m, 6)
	if new6 == old6 || !new6.Leaf.NotAfter.After(old6.Leaf.NotAfter) {
		t.Fatal("persona 6 not renewed when due")
	}
	checkPersonaKey(t, e.keys, 6, new6)
	if mustPersona(t, m, 4) != old4 {
		t.Fatal("persona 4 renewed early")
	}
	step(340 * 24 * time.Hour)
	new4 := mustPersona(t, m, 4)
	if new4 == old4 || !new4.Leaf.NotAfter.After(old4.Leaf.NotAfter) {
		t.Fatal("persona 4 not renewed when due")
	}
	checkPersonaKey(t, e.keys, 4, new4)

	// The renewed certificates are what a restart loads.
	m2 := e.manager(t, e.options(certs.IssuerLocal))
	if got := mustPersona(t, m2, 4); got.Leaf.SerialNumber.Cmp(new4.Leaf.SerialNumber) != 0 {
		t.Fatal("restart did not load the renewed certificate")
	}
}

// TestConcurrentPersona reads certificates while renewals swap them (-race).
func TestConcurrentPersona(t *testing.T) {
	e := newEnv(t)
	t0 := e.clk.now()
	m := e.manager(t, e.options(certs.IssuerLocal))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for n := 2; n <= 7; n++ {
					if c, err := m.Persona(n); err != nil || c.Leaf == nil {
						t.Errorf("persona %d: %v", n, err)
						return
					}
				}
			}
		})
	}
	for i := 1; i <= 5; i++ {
		e.clk.set(t0.Add(time.Duration(i) * 200 * 24 * time.Hour))
		if err := m.RenewDue(t.Context()); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
}

// testCA is a CA made in a test, standing in for a public CA.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

func (ca *testCA) pem() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})
}

// issue writes a certificate for names with a new key to dir/base.{crt,key}
// and returns the files and the key. IP addresses go in as IP SANs.
func (ca *testCA) issue(t *testing.T, dir, base string, names ...string) (certs.StaticFiles, crypto.Signer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := parseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	f := certs.StaticFiles{Cert: filepath.Join(dir, base+".crt"), Key: filepath.Join(dir, base+".key")}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), ca.pem()...)
	if err := os.WriteFile(f.Cert, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, key
}

func TestStatic(t *testing.T) {
	e := newEnv(t)
	ca := newTestCA(t)
	files := t.TempDir()
	static := map[string]certs.StaticFiles{}
	hosts := map[string]string{"mx5": "mx5.a.mailtest.example", "mx6": "mx6.a.mailtest.example", "mx7": "mx7.b.mailtest.example", "mta-sts": "mta-sts.a.mailtest.example"}
	fileKeys := map[string]crypto.Signer{}
	for label, host := range hosts {
		static[label], fileKeys[label] = ca.issue(t, files, label, host)
	}

	// Without the override the zone's TLSA of mx6 names the persona key
	// from DATA_DIR, not the file's: refused.
	opt := e.options(certs.IssuerStatic)
	opt.Static = static
	if _, err := certs.New(opt); !errors.Is(err, certs.ErrKeyMismatch) {
		t.Fatalf("static without key override: %v, want ErrKeyMismatch", err)
	}

	// The wiring: the static keys become the persona keys.
	over, err := certs.StaticPersonaKeys(static)
	if err != nil {
		t.Fatal(err)
	}
	if len(over) != 3 {
		t.Fatalf("StaticPersonaKeys gave %d keys, want 3 (mx5, mx6, mx7)", len(over))
	}
	keys, err := persona.LoadKeysWith(filepath.Join(e.dir, "keys"), over)
	if err != nil {
		t.Fatal(err)
	}
	opt.Keys = keys
	m := e.manager(t, opt)
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	for _, tc := range []struct {
		n     int
		label string
	}{{5, "mx5"}, {6, "mx6"}, {7, "mx7"}, {0, "mta-sts"}} {
		var c *tls.Certificate
		if tc.n == 0 {
			c, err = m.PolicyHost()
		} else {
			c, err = m.Persona(tc.n)
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: hosts[tc.label], Roots: roots}); err != nil {
			t.Errorf("%s: %v", tc.label, err)
		}
		if !c.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(fileKeys[tc.label].Public()) {
			t.Errorf("%s: not the file's key", tc.label)
		}
		if len(c.Certificate) != 2 {
			t.Errorf("%s: chain of %d, want leaf and CA as in the file", tc.label, len(c.Certificate))
		}
	}
	checkPersonaKey(t, keys, 6, mustPersona(t, m, 6)) // TLSA of mx6 matches
	checkPersonaKey(t, keys, 4, mustPersona(t, m, 4)) // self-signed ones stay

	// Replaced files are picked up by the next pass; a bad replacement is
	// refused and the old certificate kept.
	old5 := mustPersona(t, m, 5)
	time.Sleep(10 * time.Millisecond) // a new modification time
	ca.issue(t, files, "mx5", hosts["mx5"])
	if err := m.RenewDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	new5 := mustPersona(t, m, 5)
	if new5.Leaf.SerialNumber.Cmp(old5.Leaf.SerialNumber) == 0 {
		t.Fatal("changed static files not reloaded")
	}
	ca.issue(t, files, "mx5", "wrong.example")
	if err := m.RenewDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if mustPersona(t, m, 5) != new5 {
		t.Fatal("a static certificate for the wrong name replaced the good one")
	}

	// A certificate for the wrong host is refused at start.
	bad := map[string]certs.StaticFiles{}
	for k, v := range static {
		bad[k] = v
	}
	bad["mx7"], _ = ca.issue(t, files, "mx7-bad", "mx7.elsewhere.example")
	opt.Static = bad
	if _, err := certs.New(opt); !errors.Is(err, certs.ErrBadCertificate) {
		t.Fatalf("wrong host name: %v, want ErrBadCertificate", err)
	}
}

func TestACMEOptions(t *testing.T) {
	e := newEnv(t)
	// No directory: the CA-signed personas wait, the self-signed serve.
	m := e.manager(t, e.options(certs.IssuerACME))
	if _, err := m.Persona(6); !errors.Is(err, certs.ErrNotReady) {
		t.Fatalf("Persona(6) = %v, want ErrNotReady", err)
	}
	if _, err := m.PolicyHost(); !errors.Is(err, certs.ErrNotReady) {
		t.Fatalf("PolicyHost() = %v, want ErrNotReady", err)
	}
	mustPersona(t, m, 4)
	if err := m.RenewDue(t.Context()); err != nil {
		t.Fatalf("RenewDue without a directory: %v", err)
	}
	if m.RootsPEM() != nil || m.RootsPath() != "" {
		t.Fatal("ACME issuer has local roots")
	}

	opt := e.options(certs.IssuerACME)
	opt.ACME = certs.ACMEOptions{Directory: "https://127.0.0.1:1/dir", Challenge: certs.ChallengeHTTP01}
	if _, err := certs.New(opt); !errors.Is(err, certs.ErrHTTP01NotImplemented) {
		t.Fatalf("http-01: %v", err)
	}
	opt.ACME.Challenge = certs.ChallengeDNS01
	if _, err := certs.New(opt); !errors.Is(err, certs.ErrOptions) {
		t.Fatalf("dns-01 without a publisher: %v", err)
	}
	opt.Issuer = "letsencrypt"
	if _, err := certs.New(opt); !errors.Is(err, certs.ErrOptions) {
		t.Fatalf("unknown issuer: %v", err)
	}
}

// nopPublisher accepts every challenge and serves nothing.
type nopPublisher struct{}

func (nopPublisher) SetChallenge(string, []string) error { return nil }
func (nopPublisher) ClearChallenge(string) error         { return nil }

// TestACMEFailureBacksOff: an unreachable CA fails the pass, the next pass
// inside the backoff does not try again, and one after it does.
func TestACMEFailureBacksOff(t *testing.T) {
	e := newEnv(t)
	opt := e.options(certs.IssuerACME)
	// Port 1 on loopback: connection refused at once.
	opt.ACME = certs.ACMEOptions{Directory: "https://127.0.0.1:1/dir"}
	opt.Challenges = nopPublisher{}
	opt.RetryMin = time.Minute
	m := e.manager(t, opt)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := m.RenewDue(ctx); err == nil {
		t.Fatal("RenewDue against a dead CA succeeded")
	}
	if err := m.RenewDue(ctx); err != nil {
		t.Fatalf("retried inside the backoff: %v", err)
	}
	e.clk.set(e.clk.now().Add(2 * time.Minute))
	if err := m.RenewDue(ctx); err == nil {
		t.Fatal("no retry after the backoff")
	}
	if _, err := m.Persona(6); !errors.Is(err, certs.ErrNotReady) {
		t.Fatalf("Persona(6) = %v, want ErrNotReady", err)
	}
	mustPersona(t, m, 4)
}

// TestRunStops: Run returns nil when its context ends.
func TestRunStops(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t, e.options(certs.IssuerLocal))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func parseIP(s string) net.IP { return net.ParseIP(s) }

// verifyChain checks that c, with the intermediates it serves, chains to
// roots for host.
func verifyChain(t *testing.T, c *tls.Certificate, host string, roots *x509.CertPool) {
	t.Helper()
	inter := x509.NewCertPool()
	for _, der := range c.Certificate[1:] {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		inter.AddCert(ic)
	}
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("%s: does not chain to the expected root: %v", host, err)
	}
}

// TestCheck: the health check names certificates not obtained yet and
// those that lived past half of renew_before without a renewal.
func TestCheck(t *testing.T) {
	e := newEnv(t)
	m := e.manager(t, e.options(certs.IssuerLocal))
	if err := m.Check(); err != nil {
		t.Fatalf("fresh certificates: %v", err)
	}
	t0 := e.clk.now()
	// Local certificates live 90 days and renew at 60: at 76 days without a
	// renewal pass, persona 6 and the policy host have under 15 days left.
	e.clk.set(t0.Add(76 * 24 * time.Hour))
	err := m.Check()
	if !errors.Is(err, certs.ErrExpiring) || !strings.Contains(err.Error(), "persona-6") || strings.Contains(err.Error(), "persona-4") {
		t.Fatalf("at 76 days: %v, want ErrExpiring for the local-CA ones only", err)
	}
	if err := m.RenewDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatalf("after renewal: %v", err)
	}

	opt := e.options(certs.IssuerACME)
	opt.Challenges = nopPublisher{}
	acme := e.manager(t, opt) // no directory: nothing can be obtained
	if err := acme.Check(); !errors.Is(err, certs.ErrNotReady) || !strings.Contains(err.Error(), "persona-6") {
		t.Fatalf("ACME without certificates: %v, want ErrNotReady", err)
	}
}
