package smtpclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// selfSigned makes a certificate for name.
func selfSigned(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// backend is a go-smtp server backend that keeps what it received.
type backend struct {
	mu    sync.Mutex
	from  string
	rcpts []string
	data  string
	sni   string
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

type session struct{ b *backend }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "nobody@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.rcpts = append(s.b.rcpts, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.data = string(b)
	return err
}

func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// startServer runs go-smtp's server with STARTTLS on loopback.
func startServer(t *testing.T) (string, *backend) {
	t.Helper()
	b := &backend{}
	cert := selfSigned(t, "mx.example")
	srv := smtp.NewServer(b)
	srv.Domain = "mx.example"
	srv.TLSConfig = &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			b.mu.Lock()
			b.sni = h.ServerName
			b.mu.Unlock()
			return nil, nil
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), b
}

// TestSessionWithGoSMTP runs a whole session against go-smtp's server:
// greeting, EHLO, STARTTLS with SNI, EHLO again, MAIL, RCPT (one refused),
// DATA with dot-stuffing, QUIT.
func TestSessionWithGoSMTP(t *testing.T) {
	addr, b := startServer(t)
	var trace []string
	ctx := context.Background()
	c, err := Dial(ctx, (&net.Dialer{}).DialContext, addr, 5*time.Second, Options{Trace: func(l string) { trace = append(trace, l) }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const step = 5 * time.Second
	must := func(r Reply, err error, code int) Reply {
		t.Helper()
		if err != nil || r.Code != code {
			t.Fatalf("reply %+v, %v; want %d", r, err, code)
		}
		return r
	}
	r, err := c.ReadReply(step)
	must(r, err, 220)
	r, ehlo, err := c.Ehlo(step, "client.example")
	must(r, err, 250)
	if !ehlo.Has("starttls") || !ehlo.Has("PIPELINING") || ehlo.Has("NOPE") || ehlo.Greeting == "" {
		t.Fatalf("EHLO %+v", ehlo)
	}
	if p, ok := ehlo.Param("size"); !ok || p != "" {
		t.Fatalf("SIZE %q %v", p, ok)
	}
	if _, err := c.Handshake(step, &tls.Config{}); !errors.Is(err, ErrNoSTARTTLS) {
		t.Fatalf("handshake before STARTTLS: %v", err)
	}
	r, err = c.StartTLS(step)
	must(r, err, 220)
	cs, err := c.Handshake(step, &tls.Config{ServerName: "mx.example", InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.PeerCertificates) != 1 || cs.PeerCertificates[0].Subject.CommonName != "mx.example" || !cs.HandshakeComplete {
		t.Fatalf("TLS state %+v", cs)
	}
	r, ehlo, err = c.Ehlo(step, "client.example")
	must(r, err, 250)
	if ehlo.Has("STARTTLS") {
		t.Fatal("STARTTLS offered again over TLS")
	}
	r, err = c.Mail(step, "a@client.example", "BODY=8BITMIME")
	must(r, err, 250)
	r, err = c.Rcpt(step, "b@mx.example")
	must(r, err, 250)
	r, err = c.Rcpt(step, "nobody@mx.example")
	must(r, err, 550)
	r, err = c.Data(step)
	must(r, err, 354)
	msg := "Subject: x\n\n.leading dot\nline\n.\n..two\n"
	if err := c.WriteMessage(step, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	r, err = c.ReadReply(step)
	must(r, err, 250)
	c.Quit(step)

	b.mu.Lock()
	defer b.mu.Unlock()
	if want := strings.ReplaceAll(msg, "\n", "\r\n"); b.data != want {
		t.Fatalf("server got %q, want %q", b.data, want)
	}
	if b.from != "a@client.example" || strings.Join(b.rcpts, ",") != "b@mx.example" || b.sni != "mx.example" {
		t.Fatalf("server saw from %q rcpts %q sni %q", b.from, b.rcpts, b.sni)
	}
	got := strings.Join(trace, "\n")
	for _, want := range []string{"S: 220 ", "C: EHLO client.example", "S: 250-", "C: STARTTLS", "C: MAIL FROM:<a@client.example> BODY=8BITMIME",
		"S: 550 5.1.1 no such user", "C: <message, 38 octets>", "C: .", "C: QUIT", "S: 221 "} {
		if !strings.Contains(got, want) {
			t.Errorf("transcript lacks %q:\n%s", want, got)
		}
	}
}

// scripted starts a peer that sends script and reads whatever comes, and
// returns the client side.
func scripted(t *testing.T, ctx context.Context, script string, opts Options) *Conn {
	t.Helper()
	client, server := net.Pipe()
	go func() {
		defer server.Close()
		go func() { _, _ = io.Copy(io.Discard, server) }()
		_, _ = io.WriteString(server, script)
		<-ctx.Done()
	}()
	c := NewConn(ctx, client, opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestConnMisbehaviour(t *testing.T) {
	const step = 2 * time.Second
	t.Run("data after the 220 to STARTTLS", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := scripted(t, ctx, "220 mx\r\n220 go ahead\r\n250 injected\r\n", Options{})
		if _, err := c.ReadReply(step); err != nil {
			t.Fatal(err)
		}
		if r, err := c.StartTLS(step); err != nil || r.Code != 220 {
			t.Fatalf("%+v %v", r, err)
		}
		// Let the injected reply arrive in the buffer.
		time.Sleep(50 * time.Millisecond)
		_, _ = c.br.Peek(1)
		_, err := c.Handshake(step, &tls.Config{InsecureSkipVerify: true})
		var ce *CleartextError
		if !errors.Is(err, ErrCleartextAfterSTARTTLS) || !errors.As(err, &ce) || ce.Octets != len("250 injected\r\n") {
			t.Fatalf("err %v", err)
		}
		if _, err := c.ReadReply(step); !errors.Is(err, ErrCleartextAfterSTARTTLS) {
			t.Fatalf("read after the refusal: %v", err)
		}
	})
	t.Run("STARTTLS refused", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := scripted(t, ctx, "454 4.7.0 TLS not available\r\n", Options{})
		if r, err := c.StartTLS(step); err != nil || r.Code != 454 {
			t.Fatalf("%+v %v", r, err)
		}
		if _, err := c.Handshake(step, &tls.Config{}); !errors.Is(err, ErrNoSTARTTLS) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("malformed reply ends the stream", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := scripted(t, ctx, "SSH-2.0-OpenSSH\r\n220 mx\r\n", Options{})
		if _, err := c.ReadReply(step); !errors.Is(err, ErrMalformed) {
			t.Fatalf("err %v", err)
		}
		if _, err := c.ReadReply(step); !errors.Is(err, ErrMalformed) {
			t.Fatalf("second read: %v", err)
		}
	})
	t.Run("limits", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := scripted(t, ctx, "220 "+strings.Repeat("x", 100)+"\r\n", Options{Limits: Limits{MaxLine: 50}})
		if _, err := c.ReadReply(step); !errors.Is(err, ErrTooLong) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("line break in a command", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := scripted(t, ctx, "", Options{})
		if err := c.Send(step, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>"); !errors.Is(err, ErrLineBreak) {
			t.Fatalf("err %v", err)
		}
		if _, err := c.Rcpt(step, "x@y>\nDATA"); !errors.Is(err, ErrLineBreak) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("silence times out", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c := scripted(t, ctx, "", Options{})
		_, err := c.ReadReply(50 * time.Millisecond)
		var ioe *IOError
		var ne net.Error
		if !errors.As(err, &ioe) || ioe.Op != "reading reply" || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("the context ends the session", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		c := scripted(t, ctx, "", Options{})
		start := time.Now()
		_, err := c.ReadReply(time.Minute)
		if err == nil || ctx.Err() == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("err %v after %s", err, time.Since(start))
		}
	})
	t.Run("the end of the connection", func(t *testing.T) {
		client, server := net.Pipe()
		go func() {
			_, _ = io.WriteString(server, "250-a\r\n")
			_ = server.Close()
		}()
		c := NewConn(context.Background(), client, Options{})
		defer c.Close()
		if _, err := c.ReadReply(step); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestDialFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	if _, err := Dial(context.Background(), (&net.Dialer{}).DialContext, addr, time.Second, Options{}); err == nil {
		t.Fatal("dial to a closed port succeeded")
	}
}
