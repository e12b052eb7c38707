package inbound

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailsec/mailsec/internal/inbound/checkreport"
)

// nullBackend is a go-smtp backend whose sessions accept nothing: the
// probe never gets past STARTTLS.
type nullBackend struct{}

func (nullBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return nullSession{}, nil }

type nullSession struct{}

func (nullSession) Mail(string, *smtp.MailOptions) error { return smtp.ErrAuthRequired }
func (nullSession) Rcpt(string, *smtp.RcptOptions) error { return smtp.ErrAuthRequired }
func (nullSession) Data(io.Reader) error                 { return smtp.ErrAuthRequired }
func (nullSession) Reset()                               {}
func (nullSession) Logout() error                        { return nil }

var (
	rsaCertOnce sync.Once
	rsaCert     tls.Certificate
)

// testRSACert is a self-signed RSA certificate for mx.tls.example: RSA,
// because the suites with RSA key transport (TLS_RSA_WITH_3DES_EDE_CBC_SHA,
// TLS_RSA_WITH_RC4_128_SHA) need an RSA key.
func testRSACert(t *testing.T) tls.Certificate {
	t.Helper()
	rsaCertOnce.Do(func() {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx.tls.example"}, DNSNames: []string{"mx.tls.example"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		rsaCert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return rsaCert
}

// tlsServer runs go-smtp with STARTTLS restricted to versions min…max and
// suites (nil: Go's defaults) on loopback. Every session after the first
// `busyAfter` ones (0: never) is refused with 421 at the greeting, so
// that a probe cannot learn anything from it. It returns the address
// and a count of the sessions.
func tlsServer(t *testing.T, min, max uint16, suites []uint16, busyAfter int32) (string, *atomic.Int32) {
	t.Helper()
	srv := smtp.NewServer(nullBackend{})
	srv.Domain = "mx.tls.example"
	srv.TLSConfig = &tls.Config{
		Certificates: []tls.Certificate{testRSACert(t)},
		MinVersion:   min, MaxVersion: max, CipherSuites: suites,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sessions := new(atomic.Int32)
	busy := &busyListener{Listener: ln, sessions: sessions, after: busyAfter}
	go func() { _ = srv.Serve(busy) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), sessions
}

// busyListener counts accepted connections and answers those beyond
// `after` with a 421 itself.
type busyListener struct {
	net.Listener
	sessions *atomic.Int32
	after    int32
}

func (l *busyListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.sessions.Add(1); l.after == 0 || n <= l.after {
			return c, nil
		}
		fmt.Fprintf(c, "421 4.7.0 mx.tls.example too many connections\r\n")
		c.Close()
	}
}

// probeTLSServer probes the server at addr as the check does.
func probeTLSServer(t *testing.T, addr string, skip bool) Address {
	t.Helper()
	o := Options{StepTimeout: 5 * time.Second, HELO: "check.tls.example", SkipTLSVersions: skip}
	o.defaults()
	o.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	c := &checker{opts: o, suites: allSuites(), roots: x509.NewCertPool(), now: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.probe(ctx, "mx.tls.example", "", netip.MustParseAddr("192.0.2.25"))
}

// TestProbeTLSVersions runs the probe against real TLS servers (Go's
// crypto/tls behind go-smtp's STARTTLS) restricted to some versions and
// suites, and checks what it learns about each version, the weak suites,
// and how many sessions it costs.
func TestProbeTLSVersions(t *testing.T) {
	gcm := []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	tests := []struct {
		name       string
		min, max   uint16
		suites     []uint16
		busyAfter  int32
		negotiated string
		versions   []string // result for TLS 1.0, 1.1, 1.2, 1.3
		weakProbe  string
		weak       []checkreport.WeakCipher
		sessions   int32
	}{
		{"TLS 1.2 and 1.3 with strong suites", tls.VersionTLS12, tls.VersionTLS13, gcm, 0, "TLS 1.3",
			[]string{"refused", "refused", "accepted", "accepted"}, "refused", nil, 1 + 3 + 1},
		{"TLS 1.3 only: no weak-suite session", tls.VersionTLS13, tls.VersionTLS13, nil, 0, "TLS 1.3",
			[]string{"refused", "refused", "refused", "accepted"}, "", nil, 1 + 3},
		{"TLS 1.0 to 1.2 with 3DES besides a strong suite", tls.VersionTLS10, tls.VersionTLS12,
			[]uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA}, 0,
			"TLS 1.2", []string{"accepted", "accepted", "accepted", "refused"}, "accepted",
			[]checkreport.WeakCipher{{Version: "TLS 1.2", Cipher: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", Class: "3DES"}}, 1 + 2 + 1},
		{"TLS 1.0 only, RC4 and AES-CBC", tls.VersionTLS10, tls.VersionTLS10,
			[]uint16{tls.TLS_RSA_WITH_RC4_128_SHA, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}, 0,
			"TLS 1.0", []string{"accepted", "refused", "refused", "refused"}, "accepted",
			[]checkreport.WeakCipher{{Version: "TLS 1.0", Cipher: "TLS_RSA_WITH_RC4_128_SHA", Class: "RC4"}}, 1 + 1},
		{"a busy server: unknown, never refused", tls.VersionTLS10, tls.VersionTLS13, nil, 1, "TLS 1.3",
			[]string{"unknown", "unknown", "unknown", "accepted"}, "", nil, 1 + 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, sessions := tlsServer(t, tc.min, tc.max, tc.suites, tc.busyAfter)
			a := probeTLSServer(t, addr, false)
			if a.Status != StatusOK || a.TLS == nil {
				t.Fatalf("probe: status %s, detail %q, TLS error %q", a.Status, a.Detail, a.TLSError)
			}
			if a.TLS.Version != tc.negotiated {
				t.Errorf("negotiated %s, want %s", a.TLS.Version, tc.negotiated)
			}
			var got []string
			for _, v := range a.TLS.Versions {
				got = append(got, v.Result)
			}
			if !slices.Equal(got, tc.versions) {
				t.Errorf("versions %v, want %v (%+v)", got, tc.versions, a.TLS.Versions)
			}
			for i, v := range a.TLS.Versions {
				if want := tls.VersionName(probedVersions[i]); v.Version != want {
					t.Errorf("version %d named %q, want %q", i, v.Version, want)
				}
				if v.Result == checkreport.ProbeAccepted && v.Cipher == "" {
					t.Errorf("%s accepted without a cipher", v.Version)
				}
			}
			if a.TLS.WeakProbe != tc.weakProbe {
				t.Errorf("weak probe %q, want %q", a.TLS.WeakProbe, tc.weakProbe)
			}
			if !slices.Equal(a.TLS.WeakCiphers, tc.weak) {
				t.Errorf("weak ciphers %+v, want %+v", a.TLS.WeakCiphers, tc.weak)
			}
			if n := sessions.Load(); n != tc.sessions {
				t.Errorf("%d sessions, want %d", n, tc.sessions)
			}
		})
	}
}

// TestProbeSkipTLSVersions: with the extra sessions switched off, one
// session and no version answers (so the report claims nothing).
func TestProbeSkipTLSVersions(t *testing.T) {
	addr, sessions := tlsServer(t, tls.VersionTLS10, tls.VersionTLS13, nil, 0)
	a := probeTLSServer(t, addr, true)
	if a.TLS == nil || a.TLS.Versions != nil || a.TLS.WeakProbe != "" || sessions.Load() != 1 {
		t.Errorf("TLS %+v after %d sessions; want no version probes and one session", a.TLS, sessions.Load())
	}
}
