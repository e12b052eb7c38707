package mtasts

import (
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
	"log"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/resolver"
)

// testCA is a CA made for one test, with a helper to issue server
// certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mtasts test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

func (ca *testCA) issue(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// policyServer serves handler over HTTPS on 127.0.0.1 with cert; client
// returns an http.Client that reaches it for any host name, trusting
// roots.
type policyServer struct {
	addr     string
	requests atomic.Int64
}

func startPolicyServer(t *testing.T, cert tls.Certificate, handler http.HandlerFunc) *policyServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ps := &policyServer{addr: l.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ps.requests.Add(1)
			handler(w, r)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  log.New(io.Discard, "", 0), // failed handshakes are the point of some cases
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	return ps
}

func (ps *policyServer) client(roots *x509.CertPool, insecure bool) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, ps.addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: roots, InsecureSkipVerify: insecure},
	}}
}

const testPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mx.example.org\r\nmax_age: 3600\r\n"

func TestFetch(t *testing.T) {
	ca := newTestCA(t)
	good := ca.issue(t, "mta-sts.example.org")
	serve := func(ctype string, status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != WellKnownPath || r.Host != "mta-sts.example.org" {
				http.NotFound(w, r)
				return
			}
			if ctype != "" {
				w.Header().Set("Content-Type", ctype)
			}
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		}
	}
	tests := []struct {
		name     string
		cert     tls.Certificate
		handler  http.HandlerFunc
		roots    *x509.CertPool
		insecure bool
		domain   string
		timeout  time.Duration
		err      []error // all must match; nil: success
	}{
		{name: "ok", handler: serve("text/plain", 200, testPolicy)},
		{name: "ok with charset and trailing dot", domain: "Example.ORG.", handler: serve("text/plain; charset=utf-8", 200, testPolicy)},
		{name: "404", handler: serve("text/plain", 404, ""), err: []error{ErrNoPolicy}},
		{name: "500", handler: serve("text/plain", 500, testPolicy), err: []error{ErrPolicyFetch}},
		{name: "204", handler: serve("text/plain", 204, ""), err: []error{ErrPolicyFetch}},
		{name: "redirect is not followed", handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				serve("text/plain", 200, testPolicy)(w, r)
				return
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, err: []error{ErrPolicyFetch, ErrRedirect}},
		{name: "text/html", handler: serve("text/html", 200, testPolicy), err: []error{ErrPolicyFetch, ErrContentType}},
		{name: "no content type", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = nil // no sniffing
			fmt.Fprint(w, testPolicy)
		}, err: []error{ErrPolicyFetch, ErrContentType}},
		{name: "too large", handler: serve("text/plain", 200, testPolicy+strings.Repeat("x-pad: 0123456789\r\n", MaxPolicySize/10)),
			err: []error{ErrPolicyFetch, ErrPolicyTooLarge}},
		{name: "syntax", handler: serve("text/plain", 200, "mode: enforce\n"), err: []error{ErrPolicySyntax}},
		{name: "certificate for another name", cert: ca.issue(t, "mta-sts.example.net"), handler: serve("text/plain", 200, testPolicy),
			err: []error{ErrPolicyFetch}},
		{name: "untrusted root", roots: newTestCA(t).pool, handler: serve("text/plain", 200, testPolicy), err: []error{ErrPolicyFetch}},
		{name: "client skipping verification is refused", insecure: true, handler: serve("text/plain", 200, testPolicy),
			err: []error{ErrPolicyFetch, ErrCertificate}},
		{name: "timeout", timeout: 200 * time.Millisecond, handler: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, err: []error{ErrPolicyFetch, context.DeadlineExceeded}},
		{name: "bad domain", domain: "example.org/evil?", handler: serve("text/plain", 200, testPolicy), err: []error{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cert := good
			if tc.cert.Certificate != nil {
				cert = tc.cert
			}
			roots := ca.pool
			if tc.roots != nil {
				roots = tc.roots
			}
			domain := "example.org"
			if tc.domain != "" {
				domain = tc.domain
			}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			ps := startPolicyServer(t, cert, tc.handler)
			p, err := Fetch(ctx, ps.client(roots, tc.insecure), domain)
			if tc.err == nil {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if p.Mode != ModeEnforce || !p.Matches("mx.example.org") || p.MaxAge != time.Hour {
					t.Fatalf("policy %+v", p)
				}
				return
			}
			if err == nil {
				t.Fatalf("Fetch = %+v, want an error", p)
			}
			for _, want := range tc.err {
				if !errors.Is(err, want) {
					t.Fatalf("Fetch error %v does not wrap %v", err, want)
				}
			}
			if tc.name == "redirect is not followed" && ps.requests.Load() != 1 {
				t.Fatalf("%d requests: the redirect was followed", ps.requests.Load())
			}
		})
	}
}

func TestLookupRecord(t *testing.T) {
	lookup := func(m map[string][]string, err error) LookupTXTFunc {
		return func(_ context.Context, name string) ([]string, error) {
			if err != nil {
				return nil, err
			}
			txt, ok := m[name]
			if !ok {
				return nil, fmt.Errorf("%s: %w", name, resolver.ErrNXDomain)
			}
			return txt, nil
		}
	}
	tests := []struct {
		name   string
		lookup LookupTXTFunc
		id     string
		err    error
	}{
		{"found", lookup(map[string][]string{"_mta-sts.example.org": {"v=STSv1; id=x1"}}, nil), "x1", nil},
		{"nxdomain", lookup(map[string][]string{}, nil), "", ErrNoRecord},
		{"nodata", lookup(map[string][]string{"_mta-sts.example.org": nil}, nil), "", ErrNoRecord},
		{"net.DNSError not found", lookup(nil, &net.DNSError{Err: "no such host", IsNotFound: true}), "", ErrNoRecord},
		{"servfail", lookup(nil, fmt.Errorf("x: %w", resolver.ErrServFail)), "", ErrRecordLookup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := LookupRecord(context.Background(), tc.lookup, "Example.org.")
			if !errors.Is(err, tc.err) || r.ID != tc.id {
				t.Fatalf("LookupRecord = %+v, %v; want %q, %v", r, err, tc.id, tc.err)
			}
		})
	}
}
