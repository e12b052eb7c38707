package policyhost_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/certs"
	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/policyhost"
	"github.com/mailsec/mailsec/internal/store"
)

const host = "mta-sts.a.mailtest.example"

var policy = mtasts.Policy{
	Mode:   mtasts.ModeEnforce,
	MX:     []string{"mx4.a.mailtest.example", "mx5.a.mailtest.example", "mx6.a.mailtest.example"},
	MaxAge: 7 * 24 * time.Hour,
}

// fixture is a running policy host with a local-CA certificate and a store.
type fixture struct {
	addr  string
	roots *x509.CertPool
	st    *store.Store
}

type options struct {
	recorder    func(*store.Store) policyhost.Recorder
	certificate func(*certs.Manager) func() (*tls.Certificate, error)
}

func start(t *testing.T, o options) *fixture {
	t.Helper()
	dir := t.TempDir()
	keys, err := persona.LoadKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := certs.New(certs.Options{DataDir: dir, ZoneA: "a.mailtest.example.", ZoneB: "b.mailtest.example.", Issuer: certs.IssuerLocal, Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), filepath.Join(dir, "mailsec.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(m.RootsPEM())

	var rec policyhost.Recorder = st
	if o.recorder != nil {
		rec = o.recorder(st)
	}
	cert := m.PolicyHost
	if o.certificate != nil {
		cert = o.certificate(m)
	}
	srv := policyhost.New(policyhost.Options{Host: m.PolicyHostName() + ".", Policy: policy.String(), Certificate: cert, Recorder: rec})
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := policyhost.Listen(ctx, []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return &fixture{addr: ls[0].Addr().String(), roots: roots, st: st}
}

// client connects every request to the fixture, whatever the URL's host,
// and verifies the certificate against the local CA for the URL's host.
func (f *fixture) client(h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: f.roots},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, f.addr)
		},
		ForceAttemptHTTP2: h2,
	}
	return &http.Client{
		Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errors.New("redirected") },
	}
}

type response struct {
	status int
	body   string
	ctype  string
	proto  string
}

func (f *fixture) do(t *testing.T, method, url, hostHeader string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", "policy-test/1.0")
	if hostHeader != "" {
		req.Host = hostHeader
	}
	res, err := f.client(true).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res.StatusCode, string(b), res.Header.Get("Content-Type"), res.Proto}
}

func TestPolicyHost(t *testing.T) {
	f := start(t, options{})
	good := "https://" + host + policyhost.WellKnownPath
	tests := []struct {
		name       string
		method     string
		url        string
		hostHeader string
		status     int
	}{
		{"policy", http.MethodGet, good, "", http.StatusOK},
		{"upper-case host with port", http.MethodGet, "https://MTA-STS.A.mailtest.example:443" + policyhost.WellKnownPath, "", http.StatusOK},
		{"head", http.MethodHead, good, "", http.StatusOK},
		{"other path", http.MethodGet, "https://" + host + "/", "", http.StatusNotFound},
		{"path prefix", http.MethodGet, good + "x", "", http.StatusNotFound},
		{"post", http.MethodPost, good, "", http.StatusMethodNotAllowed},
		{"other host", http.MethodGet, good, "mx6.a.mailtest.example", http.StatusMisdirectedRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := f.do(t, tc.method, tc.url, tc.hostHeader)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d (%s)", r.status, tc.status, r.body)
			}
			if r.proto != "HTTP/1.1" {
				t.Errorf("protocol %s, want HTTP/1.1", r.proto)
			}
			if tc.status == http.StatusOK {
				if r.ctype != "text/plain" {
					t.Errorf("Content-Type %q", r.ctype)
				}
				if tc.method == http.MethodGet && r.body != policy.String() {
					t.Errorf("body %q, want %q", r.body, policy.String())
				}
			}
		})
	}

	// Every request was recorded, with User-Agent and SNI.
	fetches, err := f.st.PolicyFetches(t.Context(), time.Time{}, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fetches) != len(tests) {
		t.Fatalf("%d fetches recorded, want %d: %+v", len(fetches), len(tests), fetches)
	}
	for i, fe := range fetches {
		tc := tests[i]
		if fe.Status != tc.status || fe.UserAgent != "policy-test/1.0" || !fe.Client.Addr().IsLoopback() || fe.Time.IsZero() {
			t.Errorf("fetch %d (%s): %+v", i, tc.name, fe)
		}
		if !strings.EqualFold(fe.SNI, host) { // the URL's host, whatever the Host header said
			t.Errorf("fetch %d (%s): SNI %q", i, tc.name, fe.SNI)
		}
	}
	if fetches[0].Path != policyhost.WellKnownPath || fetches[3].Path != "/" {
		t.Errorf("paths %q %q", fetches[0].Path, fetches[3].Path)
	}
}

// TestPlainHTTPFails: plain HTTP on the TLS port gets a clean 400 and a
// closed connection, nothing is recorded, and the server goes on.
func TestPlainHTTPFails(t *testing.T) {
	f := start(t, options{})
	c, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+policyhost.WellKnownPath+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no HTTP answer to plain HTTP: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain HTTP: status %d", res.StatusCode)
	}
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Fatalf("connection not closed after plain HTTP: %d %v", n, err)
	}
	if fs, _ := f.st.PolicyFetches(t.Context(), time.Time{}, time.Time{}, 0); len(fs) != 0 {
		t.Fatalf("plain HTTP recorded: %+v", fs)
	}
	if r := f.do(t, http.MethodGet, "https://"+host+policyhost.WellKnownPath, ""); r.status != http.StatusOK {
		t.Fatalf("after plain HTTP: %d", r.status)
	}
}

// gateRecorder holds every AddPolicyFetch until released.
type gateRecorder struct {
	st      *store.Store
	entered chan struct{}
	release chan struct{}
	fail    bool
}

func (g *gateRecorder) AddPolicyFetch(ctx context.Context, f store.PolicyFetch) error {
	if g.entered != nil {
		g.entered <- struct{}{}
		<-g.release
	}
	if g.fail {
		return errors.New("disk full")
	}
	return g.st.AddPolicyFetch(ctx, f)
}

// TestRecordedBeforeAnswer: the answer waits for the store.
func TestRecordedBeforeAnswer(t *testing.T) {
	g := &gateRecorder{entered: make(chan struct{}), release: make(chan struct{})}
	f := start(t, options{recorder: func(st *store.Store) policyhost.Recorder { g.st = st; return g }})
	var (
		wg  sync.WaitGroup
		got response
	)
	wg.Go(func() { got = f.do(t, http.MethodGet, "https://"+host+policyhost.WellKnownPath, "") })
	<-g.entered
	answered := make(chan struct{})
	go func() { wg.Wait(); close(answered) }()
	select {
	case <-answered:
		t.Fatal("answered before the fetch was recorded")
	case <-time.After(200 * time.Millisecond):
	}
	close(g.release)
	<-answered
	if got.status != http.StatusOK {
		t.Fatalf("status %d", got.status)
	}
	if fs, _ := f.st.PolicyFetches(t.Context(), time.Time{}, time.Time{}, 0); len(fs) != 1 {
		t.Fatalf("%d fetches recorded", len(fs))
	}
}

// TestStoreFailureStillServes: the tested sender sees the policy even
// when the evidence cannot be written.
func TestStoreFailureStillServes(t *testing.T) {
	g := &gateRecorder{fail: true}
	f := start(t, options{recorder: func(st *store.Store) policyhost.Recorder { g.st = st; return g }})
	if r := f.do(t, http.MethodGet, "https://"+host+policyhost.WellKnownPath, ""); r.status != http.StatusOK || r.body != policy.String() {
		t.Fatalf("status %d body %q", r.status, r.body)
	}
}

// TestNoCertificate: without a certificate the handshake fails.
func TestNoCertificate(t *testing.T) {
	f := start(t, options{certificate: func(*certs.Manager) func() (*tls.Certificate, error) {
		return func() (*tls.Certificate, error) { return nil, certs.ErrNotReady }
	}})
	_, err := f.client(false).Get("https://" + host + policyhost.WellKnownPath)
	if err == nil {
		t.Fatal("request succeeded without a certificate")
	}
}

// TestWrongSNIStillGetsPolicyHostCertificate: the certificate does not
// depend on SNI (there is one host), so a client verifying another name
// fails, as it should.
func TestWrongSNIStillGetsPolicyHostCertificate(t *testing.T) {
	f := start(t, options{})
	_, err := f.client(false).Get("https://mx6.a.mailtest.example" + policyhost.WellKnownPath)
	var verr *tls.CertificateVerificationError
	if !errors.As(err, &verr) {
		t.Fatalf("want a certificate verification error, got %v", err)
	}
}
