package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestMessageSize(t *testing.T) {
	for _, size := range []int{512, 513, 514, 600, 1000, 10239, 10240, 10241} {
		m := message(options{size: size, from: "a@b.example", rcpt: "c@d.example"})
		if !strings.HasSuffix(string(m), "\r\n.\r\n") {
			t.Fatalf("size %d: no end-of-data line", size)
		}
		body := m[:len(m)-3]
		if len(body) != size {
			t.Errorf("size %d: message is %d bytes", size, len(body))
		}
		for l := range strings.SplitSeq(strings.TrimSuffix(string(body), "\r\n"), "\r\n") {
			if strings.HasPrefix(l, ".") || len(l) > 998 || strings.ContainsAny(l, "\r\n") {
				t.Fatalf("size %d: bad line %q", size, l)
			}
		}
	}
}

func TestParseSources(t *testing.T) {
	got, err := parseSources("127.0.0.2-127.0.0.4,127.0.0.9")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != netip.MustParseAddr(want[i]) {
			t.Fatalf("got %v", got)
		}
	}
	for _, bad := range []string{"10.0.0.1", "127.0.0.5-127.0.0.4", "x"} {
		if _, err := parseSources(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if checkLoopback("192.0.2.1:25") == nil || checkLoopback("127.0.0.5:2525") != nil {
		t.Error("checkLoopback")
	}
}

func TestReply(t *testing.T) {
	c := &conn{rd: bufio.NewReader(strings.NewReader("250-a.example\r\n250-STARTTLS\r\n250 SIZE 100\r\n"))}
	code, text, err := c.reply()
	if err != nil || code != 250 || !hasExtension(text, "STARTTLS") || hasExtension(text, "CHUNKING") {
		t.Fatalf("reply: %d %q %v", code, text, err)
	}
	c = &conn{rd: bufio.NewReader(strings.NewReader("25x bad\r\n"))}
	if _, _, err := c.reply(); err == nil {
		t.Fatal("malformed reply accepted")
	}
}

// fakeServer is a minimal STARTTLS SMTP server answering rcptCode to RCPT.
func fakeServer(t *testing.T, rcptCode string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mx6.a.example"},
		DNSNames: []string{"mx6.a.example"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				var rw io.ReadWriter = c
				rd := bufio.NewReader(rw)
				say := func(s string) { _, _ = io.WriteString(rw, s+"\r\n") }
				say("220 fake ESMTP")
				inData := false
				for {
					line, err := rd.ReadString('\n')
					if err != nil {
						return
					}
					line = strings.TrimRight(line, "\r\n")
					if inData {
						if line == "." {
							inData = false
							say("250 ok")
						}
						continue
					}
					switch verb := strings.ToUpper(strings.Fields(line + " x")[0]); verb {
					case "EHLO":
						say("250-fake\r\n250-PIPELINING\r\n250 STARTTLS")
					case "STARTTLS":
						say("220 go ahead")
						tc := tls.Server(c, cfg)
						if tc.Handshake() != nil {
							return
						}
						rw = tc
						rd = bufio.NewReader(tc)
					case "MAIL":
						say("250 ok")
					case "RCPT":
						say(rcptCode + " rcpt")
					case "DATA":
						say("354 go on")
						inData = true
					case "QUIT":
						say("221 bye")
						return
					default:
						say("500 what")
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestSession(t *testing.T) {
	addr := fakeServer(t, "250")
	o := options{addr: addr, sni: "mx6.a.example", ehlo: "x.example", from: "a@b.example", rcpt: "c@mx6.a.example", size: 10240}
	tcfg, err := tlsConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := session(o, netip.Addr{}, tcfg, message(o), time.Now().Add(5*time.Second))
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	if !strings.HasPrefix(desc, "TLS 1.3") {
		t.Errorf("tls: %q", desc)
	}

	o.c, o.duration, o.timeout = 2, 500*time.Millisecond, 5*time.Second
	res := runLoad(o, nil, tcfg)
	if res.Completed == 0 || res.Errors != 0 {
		t.Fatalf("load: %+v", res)
	}
}

func TestSessionErrorKind(t *testing.T) {
	addr := fakeServer(t, "451")
	o := options{addr: addr, sni: "mx6.a.example", ehlo: "x.example", from: "a@b.example", rcpt: "c@a.example", size: 512,
		c: 1, duration: 300 * time.Millisecond, timeout: 5 * time.Second}
	tcfg, _ := tlsConfig(o)
	res := runLoad(o, nil, tcfg)
	if res.Completed != 0 || res.Errors == 0 || res.ErrorKinds["rcpt: 451"] != res.Errors {
		t.Fatalf("want only rcpt: 451 errors: %+v", res)
	}
}
