package inbound

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/inbound/checkreport"
)

// FuzzProbe plays an SMTP server that sends arbitrary bytes: the probe
// must classify every session (one of the five statuses), never panic,
// and never outlive its deadlines.
func FuzzProbe(f *testing.F) {
	for _, s := range []string{
		"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n",
		"220 mx ESMTP\r\n250-mx\r\n250 PIPELINING\r\n",
		"421 4.7.0 busy\r\n",
		"554 no service\r\n",
		"220 mx\r\n502 5.5.2 what?\r\n",
		"220 mx\r\n250-mx\r\n250 STARTTLS\r\n454 4.7.0 TLS not available\r\n",
		"220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 ok\r\n\x16\x03\x01\x00\x05hello",
		"220-mx\r\n220 mx\r\n250 mx\r\n",
		"HTTP/1.1 400 Bad Request\r\n\r\n",
		"220 " + strings.Repeat("x", 5000) + "\r\n",
		"220 mx\r\n250-mx\r\n250 STARTTLS\r\n220 ok\r\nextra after 220\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, script []byte) {
		o := Options{StepTimeout: 100 * time.Millisecond, HELO: "fuzz.example"}
		o.defaults()
		o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			client, server := net.Pipe()
			go func() {
				defer server.Close()
				go io.Copy(io.Discard, server) // the probe's commands
				_ = server.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = server.Write(script)
				time.Sleep(20 * time.Millisecond) // let the probe read before EOF
			}()
			return client, nil
		}
		c := &checker{opts: o, suites: allSuites(), roots: x509.NewCertPool(), now: time.Now()}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		a := c.probe(ctx, "mx.fuzz.example", "", netip.MustParseAddr("192.0.2.1"))
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Fatalf("probe took %s", took)
		}
		switch a.Status {
		case StatusOK, StatusUnreachable, StatusNotTestable, StatusRefused, StatusError:
		default:
			t.Fatalf("status %q", a.Status)
		}
		if a.Status != StatusOK && a.STARTTLS && a.TLS != nil {
			t.Fatalf("TLS on a session that is not ok: %+v", a)
		}
		if a.TLS != nil && a.Cert == nil {
			t.Fatalf("TLS without certificate: %+v", a)
		}
		if len(a.Banner) > maxBanner+4 || len(a.EHLO) > maxEHLOKeys {
			t.Fatalf("unbounded: banner %d, EHLO %d", len(a.Banner), len(a.EHLO))
		}
		// The extra sessions of the version probe (tlsversions.go) read
		// the same bytes: they end refused or unknown, never accepted
		// without a handshake, and within their deadlines too.
		cfg := c.tlsConfig("mx.fuzz.example")
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS10
		start = time.Now()
		_, result, detail := c.tryHandshake(ctx, netip.MustParseAddr("192.0.2.1"), cfg)
		if took := time.Since(start); took > 1500*time.Millisecond {
			t.Fatalf("version probe took %s", took)
		}
		if result != checkreport.ProbeRefused && result != checkreport.ProbeUnknown {
			t.Fatalf("version probe of arbitrary bytes: %q (%s)", result, detail)
		}
	})
}

// FuzzParseDMARC: go-msgauth's parser behind our recover never takes the
// check down.
func FuzzParseDMARC(f *testing.F) {
	for _, s := range []string{"v=DMARC1; p=reject", "v=DMARC1; p=none; pct=50; rua=mailto:a@b", "v=DMARC1; p=", "v=DMARC1; pct=abc; p=none", "v=DMARC1;;;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := parseDMARC(s)
		if err == nil && rec == nil {
			t.Fatal("no record and no error")
		}
	})
}
