package policyhost_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/certs"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/policyhost"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/testslot"
	"github.com/mailsec/mailsec/internal/tlsrptintake"
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
	srv   *policyhost.Server
}

type options struct {
	recorder    func(*store.Store) policyhost.Recorder
	certificate func(*certs.Manager) func() (*tls.Certificate, error)
	perClient   int               // MaxFetchesPerClient
	slots       map[string]string // SlotPolicies; the certificate names two slots
	reports     bool              // take TLS-RPT reports (Options.Reports)
	maxReport   int64             // MaxReportBytes
	perClientR  int               // ReportsPerClient
}

func start(t *testing.T, o options) *fixture {
	t.Helper()
	dir := t.TempDir()
	keys, err := persona.LoadKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := certs.New(certs.Options{DataDir: dir, ZoneA: "a.mailtest.example.", ZoneB: "b.mailtest.example.", Issuer: certs.IssuerLocal, Keys: keys, Slots: 2})
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
	popt := policyhost.Options{Host: m.PolicyHostName() + ".", Policy: policy.String(), Certificate: cert, Recorder: rec,
		MaxFetchesPerClient: o.perClient, SlotPolicies: o.slots, MaxReportBytes: o.maxReport, ReportsPerClient: o.perClientR}
	if o.reports {
		popt.Reports = tlsrptintake.New(tlsrptintake.Options{Evidence: evidence.Gatherer{Store: st,
			Rules: evidence.Rules{Slots: testslot.Pool{ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example", Count: 2}}}})
	}
	srv := policyhost.New(popt)
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
	return &fixture{addr: ls[0].Addr().String(), roots: roots, st: st, srv: srv}
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

	// Every fetch of the policy was recorded, with User-Agent and SNI;
	// the other requests were counted, not stored.
	fetches, err := f.st.PolicyFetches(t.Context(), time.Time{}, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, tc := range tests {
		if tc.status == http.StatusOK {
			want = append(want, tc.name)
		}
	}
	if len(fetches) != len(want) {
		t.Fatalf("%d fetches recorded, want %d (%v): %+v", len(fetches), len(want), want, fetches)
	}
	for i, fe := range fetches {
		if fe.Status != http.StatusOK || fe.Path != policyhost.WellKnownPath || fe.UserAgent != "policy-test/1.0" || !fe.Client.Addr().IsLoopback() || fe.Time.IsZero() {
			t.Errorf("fetch %d (%s): %+v", i, want[i], fe)
		}
		if !strings.EqualFold(fe.SNI, host) {
			t.Errorf("fetch %d (%s): SNI %q", i, want[i], fe.SNI)
		}
	}
	if n := f.srv.Strays(); n != uint64(len(tests)-len(want)) {
		t.Errorf("Strays() = %d, want %d", n, len(tests)-len(want))
	}
}

// TestStraysNotStored: a flood of requests that are not policy fetches
// (scanners' paths, other hosts, other methods) adds no row, and fetches
// of the policy are stored at most MaxFetchesPerClient per network; all
// of them are answered.
// TestSlotPolicies: the policy host of a test slot answers its own policy
// (Host and SNI mta-sts.s002.A), and the fetch is recorded with the
// slot's name as SNI; a slot the server was not given is another Host.
func TestSlotPolicies(t *testing.T) {
	slotPolicy := "version: STSv1\r\nmode: enforce\r\nmx: mx4.s002.a.mailtest.example\r\nmax_age: 604800\r\n"
	f := start(t, options{slots: map[string]string{"MTA-STS.s002.a.mailtest.example.": slotPolicy}})
	slotURL := "https://mta-sts.s002.a.mailtest.example" + policyhost.WellKnownPath
	if r := f.do(t, http.MethodGet, slotURL, ""); r.status != http.StatusOK || r.body != slotPolicy {
		t.Fatalf("slot policy: %d %q, want 200 %q", r.status, r.body, slotPolicy)
	}
	if r := f.do(t, http.MethodGet, "https://"+host+policyhost.WellKnownPath, ""); r.status != http.StatusOK || r.body != policy.String() {
		t.Fatalf("zone A's policy: %d %q", r.status, r.body)
	}
	// The certificate names slot 1 too, but the server serves no policy
	// for it.
	if r := f.do(t, http.MethodGet, "https://mta-sts.s001.a.mailtest.example"+policyhost.WellKnownPath, ""); r.status != http.StatusMisdirectedRequest {
		t.Fatalf("slot without a policy: %d, want 421", r.status)
	}
	fetches, err := f.st.PolicyFetches(t.Context(), time.Time{}, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fetches) != 2 || fetches[0].SNI != "mta-sts.s002.a.mailtest.example" || !strings.EqualFold(fetches[1].SNI, host) {
		t.Fatalf("fetches %+v, want the slot's then zone A's", fetches)
	}
}

func TestStraysNotStored(t *testing.T) {
	f := start(t, options{perClient: 3})
	c := f.client(false)
	const strays = 300
	for i := range strays {
		url := fmt.Sprintf("https://%s/wp-login-%d.php", host, i)
		method := http.MethodGet
		switch i % 3 {
		case 1:
			url, method = "https://"+host+policyhost.WellKnownPath, http.MethodPost
		case 2:
			url = "https://" + host + policyhost.WellKnownPath + fmt.Sprintf("?x=%d", i)
		}
		req, err := http.NewRequest(method, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if i%3 == 2 {
			req.Host = "mx6.a.mailtest.example" // another host: 421
		}
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			t.Fatalf("stray %d (%s %s) answered 200", i, method, url)
		}
	}
	for i := range 5 {
		if r := f.do(t, http.MethodGet, "https://"+host+policyhost.WellKnownPath, ""); r.status != http.StatusOK {
			t.Fatalf("fetch %d: %d", i, r.status)
		}
	}
	fetches, err := f.st.PolicyFetches(t.Context(), time.Time{}, time.Time{}, 10000)
	if err != nil {
		t.Fatal(err)
	}
	if len(fetches) != 3 {
		t.Fatalf("%d rows stored, want 3 (the policy fetches within the per-client limit)", len(fetches))
	}
	if f.srv.Strays() != strays || f.srv.Unstored() != 2 {
		t.Errorf("Strays() = %d, Unstored() = %d; want %d, 2", f.srv.Strays(), f.srv.Unstored(), strays)
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
