package smtpd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

func hasSTARTTLS(ehlo string) bool {
	for _, l := range strings.Split(ehlo, "\n") {
		if strings.EqualFold(strings.TrimSpace(l), "STARTTLS") {
			return true
		}
	}
	return false
}

func TestDowngradeWindow(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		ts := startServerOn(t, driver, nil)
		t0 := ts.clock.Now()

		check := func(name, src string, want bool) {
			t.Helper()
			c := dialFrom(t, src, ts.addr())
			if got := hasSTARTTLS(c.ehlo()); got != want {
				t.Errorf("%s: STARTTLS offered = %v, want %v", name, got, want)
			}
			if !want {
				// Not offered means not available either (RFC 3207 §4).
				c.ok(502, "STARTTLS")
			}
			c.quit()
		}
		check("first connection", "127.0.0.1", false)
		ts.clock.Advance(2 * time.Minute)
		check("inside the window", "127.0.0.1", false)
		if loopback2(t) {
			// 127.0.0.2 is the same client (/24): its window is the one of
			// the first connection of the prefix.
			check("same /24 inside the window", "127.0.0.2", false)
		}
		ts.clock.Set(t0.Add(3 * time.Minute))
		check("window over", "127.0.0.1", true)
		if loopback2(t) {
			check("same /24 after the window", "127.0.0.2", true)
		}

		cs := ts.waitEnded(t, 3)
		var offered []bool
		for _, c := range cs {
			offered = append(offered, c.STARTTLSOffered)
			if c.ClientKey != "127.0.0.0/24" || c.Error != "" || c.Persona != 1 || c.State != store.StateNone {
				t.Errorf("connection %d: key %q error %q persona %d state %s", c.ID, c.ClientKey, c.Error, c.Persona, c.State)
			}
		}
		if want := []bool{false, false, false, true, true}; !slices.Equal(offered, want[:len(offered)]) {
			t.Errorf("offered per connection = %v, want %v", offered, want)
		}

		// With /32 clients, 127.0.0.2 has a window of its own.
		if loopback2(t) {
			ts32 := startServerOn(t, driver, func(o *Options) { o.ClientPrefixV4 = 32 })
			offered := func(src string) bool {
				c := dialFrom(t, src, ts32.addr())
				defer c.quit()
				return hasSTARTTLS(c.ehlo())
			}
			offered("127.0.0.1") // T0: window of 127.0.0.1 starts
			ts32.clock.Advance(2 * time.Minute)
			offered("127.0.0.2") // T0+2m: window of 127.0.0.2 starts
			ts32.clock.Advance(time.Minute)
			if !offered("127.0.0.1") {
				t.Error("/32: 127.0.0.1 after its window: no STARTTLS")
			}
			if offered("127.0.0.2") {
				t.Error("/32: 127.0.0.2 inside its own window: STARTTLS offered")
			}
			ts32.waitEnded(t, 4)
		}
	})
}

func TestSNIPersonas(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) { o.DowngradeWindow = 0; o.Slots = 3 })
	spki := func(c *x509.Certificate) []byte { s := sha256.Sum256(c.RawSubjectPublicKeyInfo); return s[:] }
	selfSigned := func(t *testing.T, c *x509.Certificate) {
		if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
			t.Errorf("certificate is not self-signed: %v", err)
		}
	}
	caSigned := func(host string) func(*testing.T, *x509.Certificate) {
		return func(t *testing.T, c *x509.Certificate) {
			if _, err := c.Verify(x509.VerifyOptions{DNSName: host, Roots: ts.certs.pool}); err != nil {
				t.Errorf("certificate does not verify for %s against the test CA: %v", host, err)
			}
		}
	}
	for _, tc := range []struct {
		name, sni   string
		maxVersion  uint16
		wantPersona int
		wantSNI     string
		wantVersion string
		check       func(*testing.T, *x509.Certificate)
	}{
		{"no SNI", "", 0, 2, "", "TLS 1.3", func(t *testing.T, c *x509.Certificate) {
			selfSigned(t, c)
			if !bytes.Equal(c.Raw, ts.certs.certs[2].Certificate[0]) {
				t.Error("not persona 2's certificate")
			}
		}},
		{"mx3", "mx3." + zoneA, 0, 3, "mx3." + zoneA, "TLS 1.3", selfSigned},
		{"mx4 SPKI matches its TLSA", "mx4." + zoneA, 0, 4, "mx4." + zoneA, "TLS 1.3", func(t *testing.T, c *x509.Certificate) {
			selfSigned(t, c)
			want, err := ts.certs.keys.SPKISHA256(4)
			if err != nil || !bytes.Equal(spki(c), want) {
				t.Errorf("SPKI SHA-256 %x, want persona 4's %x (%v)", spki(c), want, err)
			}
		}},
		{"mx5", "mx5." + zoneA, 0, 5, "mx5." + zoneA, "TLS 1.3", caSigned("mx5." + zoneA)},
		{"mx6", "mx6." + zoneA, 0, 6, "mx6." + zoneA, "TLS 1.3", caSigned("mx6." + zoneA)},
		{"mx6 upper case", "MX6." + strings.ToUpper(zoneA), 0, 6, "mx6." + zoneA, "TLS 1.3", caSigned("mx6." + zoneA)},
		{"mx7", "mx7." + zoneB, 0, 7, "mx7." + zoneB, "TLS 1.3", caSigned("mx7." + zoneB)},
		{"mx7 of the wrong zone", "mx7." + zoneA, 0, 2, "mx7." + zoneA, "TLS 1.3", selfSigned},
		{"unknown SNI", "other.example.net", 0, 2, "other.example.net", "TLS 1.3", func(t *testing.T, c *x509.Certificate) {
			if !bytes.Equal(c.Raw, ts.certs.certs[2].Certificate[0]) {
				t.Error("not persona 2's certificate")
			}
		}},
		// Test slots: the hosts' names in every slot of the pool name
		// their personas (docs/smtp.md "Test slots").
		{"mx4 of slot 2", "mx4.s002." + zoneA, 0, 4, "mx4.s002." + zoneA, "TLS 1.3", selfSigned},
		{"mx6 of slot 3", "MX6.S003." + zoneA, 0, 6, "mx6.s003." + zoneA, "TLS 1.3", func(*testing.T, *x509.Certificate) {}},
		{"mx7 of slot 1 of B", "mx7.s001." + zoneB, 0, 7, "mx7.s001." + zoneB, "TLS 1.3", func(*testing.T, *x509.Certificate) {}},
		{"mx4 beyond the pool", "mx4.s004." + zoneA, 0, 2, "mx4.s004." + zoneA, "TLS 1.3", selfSigned},
		{"TLS 1.2", "mx4." + zoneA, tls.VersionTLS12, 4, "mx4." + zoneA, "TLS 1.2", selfSigned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, ts.addr())
			if !hasSTARTTLS(c.ehlo()) {
				t.Fatal("no STARTTLS offered with the window disabled")
			}
			cfg := insecure(tc.sni)
			cfg.MaxVersion = tc.maxVersion
			cs, err := c.startTLS(cfg)
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			tc.check(t, cs.PeerCertificates[0])
			if hasSTARTTLS(c.ehlo()) {
				t.Error("STARTTLS offered again inside TLS")
			}
			c.quit()

			var rec store.SMTPConnection
			waitFor(t, func() bool {
				cs := ts.conns(t, store.ConnectionFilter{})
				rec = cs[len(cs)-1]
				return !rec.Ended.IsZero()
			})
			if rec.Persona != tc.wantPersona || rec.CertPersona != tc.wantPersona || rec.SNI != tc.wantSNI || rec.State != store.StateTLSStarted ||
				rec.TLSVersion != tc.wantVersion || rec.TLSCipher == "" || !rec.STARTTLSOffered || rec.Error != "" || rec.EHLO != "sender.example.org" {
				t.Errorf("record:\n%s want persona %d, SNI %q, TlsStarted, %s", fmtConns([]store.SMTPConnection{rec}), tc.wantPersona, tc.wantSNI, tc.wantVersion)
			}
		})
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// closeAfterWrite closes the connection after the first write: the
// client's ClientHello goes out, and then the client is gone.
type closeAfterWrite struct{ net.Conn }

func (c closeAfterWrite) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.Conn.Close()
	return n, err
}

func TestAbortedHandshake(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) { o.DowngradeWindow = 0 })
	for _, tc := range []struct {
		name      string
		run       func(t *testing.T, c *client)
		wantState store.ConnState
		persona   int
		sni       string
		wantErr   string // prefix
	}{
		{"TLS 1.3 verifying client rejects the self-signed certificate", func(t *testing.T, c *client) {
			// A "verify" sender (PKIX): unknown authority.
			if _, err := c.startTLS(&tls.Config{ServerName: "mx4." + zoneA, RootCAs: x509.NewCertPool()}); err == nil {
				t.Fatal("handshake succeeded")
			}
			c.conn.Close()
		}, store.StateSniSeen, 4, "mx4." + zoneA, "handshake failed: client aborted the handshake"},
		{"TLS 1.2 verifying client sends a plain-text alert", func(t *testing.T, c *client) {
			if _, err := c.startTLS(&tls.Config{ServerName: "mx3." + zoneA, RootCAs: x509.NewCertPool(), MaxVersion: tls.VersionTLS12}); err == nil {
				t.Fatal("handshake succeeded")
			}
			c.conn.Close()
		}, store.StateSniSeen, 3, "mx3." + zoneA, "handshake failed: client sent alert: tls: bad certificate"},
		{"client gone after the ClientHello", func(t *testing.T, c *client) {
			c.ok(220, "STARTTLS")
			tc := tls.Client(closeAfterWrite{c.conn}, insecure("mx5."+zoneA))
			if err := tc.Handshake(); err == nil {
				t.Fatal("handshake succeeded")
			}
		}, store.StateSniSeen, 5, "mx5." + zoneA, "handshake failed: client closed"},
		{"plain text after STARTTLS", func(t *testing.T, c *client) {
			c.ok(220, "STARTTLS")
			_ = c.text.PrintfLine("QUIT")
			if out, _ := c.readAll(5 * time.Second); out != "" {
				t.Errorf("server answered in plain text inside TLS: %q", out)
			}
		}, store.StateNone, 1, "", "handshake failed: no valid ClientHello"},
		{"the CA-signed persona has no certificate", nil, store.StateSniSeen, 6, "mx6." + zoneA, "handshake failed: no certificate for persona 6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := ts
			run := tc.run
			if run == nil {
				// A server whose certificate source lacks persona 6 (ACME
				// not done yet): the handshake fails and says why.
				srv = startServer(t, func(o *Options) {
					o.DowngradeWindow = 0
					certs := newTestCerts(t)
					delete(certs.certs, 6)
					o.Certificates = certs
				})
				run = func(t *testing.T, c *client) {
					if _, err := c.startTLS(insecure("mx6." + zoneA)); err == nil {
						t.Fatal("handshake succeeded")
					}
					c.conn.Close()
				}
			}
			before := len(srv.conns(t, store.ConnectionFilter{}))
			c := dial(t, srv.addr())
			c.ehlo()
			run(t, c)
			cs := srv.waitEnded(t, before+1)
			rec := cs[len(cs)-1]
			if rec.State != tc.wantState || rec.Persona != tc.persona || rec.SNI != tc.sni || rec.TLSVersion != "" ||
				!strings.HasPrefix(rec.Error, tc.wantErr) {
				t.Errorf("record:\n%s want state %s persona %d SNI %q error %q...", fmtConns([]store.SMTPConnection{rec}), tc.wantState, tc.persona, tc.sni, tc.wantErr)
			}
		})
	}
}

// TestSlotRecipients: a test holding a slot is reached at its slot's
// domains and at the shared names; another test's token, or a slot the
// test does not hold, is refused, and the fixed addresses stay the shared
// names'.
func TestSlotRecipients(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) { o.DowngradeWindow = 0; o.Slots = 3 })
	held := store.Test{ID: "slot2", Created: ts.clock.Now(), Kind: store.TestToken, State: store.TestOpen, Updated: ts.clock.Now(), Slot: 2}
	if err := ts.st.CreateTest(t.Context(), held); err != nil {
		t.Fatal(err)
	}
	ts.newTest(t, "shared1")

	c := dial(t, ts.addr())
	c.ehlo()
	for _, tc := range []struct {
		rcpt string
		code int
		text string
	}{
		{"t-slot2@s002." + zoneA, 250, ""},
		{"T-SLOT2@S002." + strings.ToUpper(zoneB) + ".", 250, ""},
		{"t-slot2@" + zoneA, 250, ""}, // the shared names keep working
		{"t-slot2@s001." + zoneA, 550, "5.1.1 this test does not use this domain"},
		{"t-shared1@s002." + zoneA, 550, "5.1.1 this test does not use this domain"},
		{"t-slot2@s004." + zoneA, 550, "5.7.1 relay access denied"}, // beyond the pool
		{"test@s002." + zoneA, 550, "5.1.1 no such test address"},
		{"t-nope@s002." + zoneA, 550, "5.1.1 unknown or finished test"},
	} {
		c.ok(250, "MAIL FROM:<sender@example.org>")
		code, msg := c.cmd("RCPT TO:<%s>", tc.rcpt)
		if code != tc.code || !strings.HasPrefix(msg, tc.text) {
			t.Errorf("RCPT %s: %d %q, want %d %q", tc.rcpt, code, msg, tc.code, tc.text)
		}
		c.ok(250, "RSET")
	}
	c.quit()
}

func TestRecipients(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) { o.DowngradeWindow = 0; o.FixedLocalParts = []string{"test", "Check"} })
	ts.newTest(t, "tok1")
	final := ts.newTest(t, "done1")
	final.State = store.TestFinal
	if err := ts.st.UpdateTest(context.Background(), final); err != nil {
		t.Fatal(err)
	}

	c := dial(t, ts.addr())
	c.ehlo()
	c.ok(250, "MAIL FROM:<Sender@Example.ORG>")
	for _, tc := range []struct {
		rcpt string
		code int
		text string
	}{
		{"rcpt@example.org", 550, "5.7.1 relay access denied"},
		{"t-tok1@example.org", 550, "5.7.1"},
		{"t-tok1@mx4." + zoneA, 550, "5.7.1"},
		{"t-nope@" + zoneA, 550, "5.1.1 unknown or finished test"},
		{"t-done1@" + zoneA, 550, "5.1.1 unknown or finished test"},
		{"t-bad!token@" + zoneA, 550, "5.1.1 no such test address"},
		{"someone@" + zoneB, 550, "5.1.1 no such test address"},
		{"T-TOK1@" + strings.ToUpper(zoneA) + ".", 250, ""},
		{"t-tok1@" + zoneB, 250, ""},
		{"tlsrpt@" + zoneA, 452, "4.5.3"}, // not in the same mail as a test
		{"check@" + zoneA, 452, "4.5.3"},  // the sender's fixed test is another test
	} {
		code, msg := c.cmd("RCPT TO:<%s>", tc.rcpt)
		if code != tc.code || !strings.HasPrefix(msg, tc.text) {
			t.Errorf("RCPT %s: %d %q, want %d %q", tc.rcpt, code, msg, tc.code, tc.text)
		}
	}
	c.ok(250, "RSET")

	// Fixed addresses: the test is the sender's; created once.
	c.ok(250, "MAIL FROM:<Sender@Example.ORG>")
	c.ok(250, "RCPT TO:<test@%s>", zoneA)
	c.ok(250, "RCPT TO:<CHECK@%s>", zoneB) // same sender, same test
	c.ok(250, "RSET")
	c.ok(250, "MAIL FROM:<>")
	if code, msg := c.cmd("RCPT TO:<test@%s>", zoneA); code != 550 {
		t.Errorf("fixed address with a null sender: %d %s, want 550", code, msg)
	}
	c.quit()
	fixed, err := ts.st.OpenFixedTest(context.Background(), "Sender@example.org", "127.0.0.0/24")
	if err != nil {
		t.Fatalf("fixed test not created: %v", err)
	}
	c = dial(t, ts.addr())
	c.ehlo()
	c.ok(250, "MAIL FROM:<Sender@example.org>")
	c.ok(250, "RCPT TO:<test@%s>", zoneA)
	c.quit()

	cs := ts.waitEnded(t, 2)
	if cs[0].TestID != "tok1" || !slices.Equal(cs[0].RcptTo, nil) || cs[0].Reply != "550 5.7.1 a fixed test address needs a sender address" {
		t.Errorf("first connection:\n%s", fmtConns(cs[:1]))
	}
	if cs[1].TestID != fixed.ID || !slices.Equal(cs[1].RcptTo, []string{"test@" + zoneA}) || cs[1].MailFrom != "Sender@example.org" {
		t.Errorf("second connection (fixed test %s):\n%s", fixed.ID, fmtConns(cs[1:]))
	}
	tests, _ := ts.st.Test(context.Background(), "tok1")
	if tests.Sender != "Sender@example.org" {
		t.Errorf("token test sender %q, want it learnt from MAIL FROM", tests.Sender)
	}
}

func TestTLSRPTReport(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		ts := startServerOn(t, driver, func(o *Options) { o.DowngradeWindow = 0 })
		ts.newTest(t, "tok1")
		c := dial(t, ts.addr())
		c.ehlo()
		body := reportMail(t, reportJSON(zoneA, "", ts.clock.Now(), 0), true)
		c.ok(250, "MAIL FROM:<reports@example.net>")
		c.ok(250, "RCPT TO:<TLSRPT@%s>", zoneA)
		c.ok(452, "RCPT TO:<t-tok1@%s>", zoneA)
		c.ok(354, "DATA")
		if code, msg := c.data(body); code != 250 || msg != "2.0.0 TLS-RPT report received" {
			t.Errorf("DATA: %d %s", code, msg)
		}
		c.quit()
		reps, err := ts.st.TLSRPTReports(context.Background(), time.Time{}, 0)
		if err != nil || len(reps) != 1 {
			t.Fatalf("reports: %v, %v", reps, err)
		}
		if string(reps[0].Raw) != body || reps[0].MailFrom != "reports@example.net" || reps[0].Client != mustAddr("127.0.0.1") {
			t.Errorf("report %+v", reps[0])
		}
		cs := ts.waitEnded(t, 1)
		if cs[0].TestID != "" || cs[0].Reply != "250 2.0.0 TLS-RPT report received" || cs[0].State != store.StateMail {
			t.Errorf("record:\n%s", fmtConns(cs))
		}
	})
}

// dkimSign signs msg for domain/selector with key.
func dkimSign(t *testing.T, msg, domain, selector string, key ed25519.PrivateKey) string {
	t.Helper()
	var b bytes.Buffer
	if err := dkim.Sign(&b, strings.NewReader(msg), &dkim.SignOptions{Domain: domain, Selector: selector, Signer: key}); err != nil {
		t.Fatalf("dkim.Sign: %v", err)
	}
	return b.String()
}

func dkimKey(t *testing.T) (ed25519.PrivateKey, string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(pub)
}

// TestAcknowledgementZoneA drives a sender through the personas of A: 451
// inside the downgrade window, 451 while evidence is collected, 250 once
// personas 3-6 were all contacted (DESIGN.md §3), 250 from then on.
func TestAcknowledgementZoneA(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		ts := startServerOn(t, driver, nil)
		test := ts.newTest(t, "tok1")
		rcpt := "t-tok1@" + zoneA
		const from = "sender@example.org"
		msg := "From: Sender <sender@example.org>\r\nTo: " + rcpt + "\r\nSubject: test\r\n\r\nHello.\r\n"

		// 0: inside the window, a mail in plain text (of another test) gets
		// 451 whatever the sender.
		other := ts.newTest(t, "tokw")
		c := dial(t, ts.addr())
		if hasSTARTTLS(c.ehlo()) {
			t.Fatal("STARTTLS offered inside the window")
		}
		if code, text := c.mail(from, []string{"t-tokw@" + zoneA}, msg); code != 451 || text != "4.7.1 downgrade test in progress: try again later" {
			t.Errorf("mail inside the window: %d %s", code, text)
		}
		c.quit()
		// 1: inside the window, the sender of this test refuses plain text
		// (as DANE senders do): EHLO, no STARTTLS, QUIT. Tied to the test
		// later by client address and time.
		c = dial(t, ts.addr())
		c.ehlo()
		c.quit()

		ts.clock.Advance(4 * time.Minute)
		tlsMail := func(sni string, cfg *tls.Config, body string) (int, string) {
			t.Helper()
			c := dial(t, ts.addr())
			c.ehlo()
			if cfg == nil {
				cfg = insecure(sni)
			}
			if _, err := c.startTLS(cfg); err != nil {
				t.Fatalf("handshake with %s: %v", sni, err)
			}
			c.ehlo()
			code, text := c.mail(from, []string{rcpt}, body)
			c.quit()
			return code, text
		}
		// 2: mx4 only: collecting.
		if code, text := tlsMail("mx4."+zoneA, nil, msg); code != 451 || text != "4.7.1 collecting evidence: try again later" {
			t.Errorf("mail over mx4: %d %s", code, text)
		}
		// 3, 4: handshakes with mx3 and mx5 that never reach MAIL FROM; tied
		// to the test by client address and time at the next RCPT TO.
		for _, sni := range []string{"mx3." + zoneA, "mx5." + zoneA} {
			c := dial(t, ts.addr())
			c.ehlo()
			if _, err := c.startTLS(insecure(sni)); err != nil {
				t.Fatal(err)
			}
			c.quit()
		}
		ts.waitEnded(t, 4)

		// 5: over mx6, verifying the CA-signed certificate, DKIM-signed twice
		// plus an ARC seal: 250.
		key, txt := dkimKey(t)
		otherKey, _ := dkimKey(t)
		_, otherTXT := dkimKey(t)
		ts.dkim.set("sel._domainkey.example.org", txt)
		ts.dkim.set("bad._domainkey.example.org", otherTXT) // published key does not match
		ts.dkim.set("example.org", "v=spf1 ip4:127.0.0.0/8 -all")
		ts.dkim.set("_dmarc.example.org", "v=DMARC1; p=reject; adkim=s")
		signed := dkimSign(t, msg, "example.org", "sel", key)
		signed = dkimSign(t, signed, "example.org", "bad", otherKey)
		signed = dkimSign(t, signed, "Example.NET", "none", otherKey) // no key published
		signed = "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=relay.example;\r\n s=arc; b=AAAA\r\n" + signed
		code, text := tlsMail("mx6."+zoneA, &tls.Config{ServerName: "mx6." + zoneA, RootCAs: ts.certs.pool}, signed)
		if code != 250 || text != "2.0.0 accepted: personas 3-6 were all contacted" {
			t.Errorf("mail over mx6: %d %s", code, text)
		}
		// 6: once acknowledged, always.
		if code, text := tlsMail("", nil, msg); code != 250 || text != "2.0.0 accepted: test already acknowledged" {
			t.Errorf("mail after the acknowledgement: %d %s", code, text)
		}

		got, err := ts.st.Test(context.Background(), test.ID)
		if err != nil || got.State != store.TestAcked || !got.Acked.Equal(ts.clock.Now()) || got.Sender != from {
			t.Errorf("test after ack: %+v, %v", got, err)
		}
		all := ts.waitEnded(t, 7)
		var cs []store.SMTPConnection
		for _, c := range all {
			if c.TestID == other.ID {
				if c.Reply != "451 4.7.1 downgrade test in progress: try again later" {
					t.Errorf("window mail: %s", fmtConns([]store.SMTPConnection{c}))
				}
				continue
			}
			cs = append(cs, c)
		}
		type row struct {
			persona int
			state   store.ConnState
			reply   string
		}
		want := []row{
			{1, store.StateNone, ""},
			{4, store.StateMail, "451 4.7.1 collecting evidence: try again later"},
			{3, store.StateTLSStarted, ""},
			{5, store.StateTLSStarted, ""},
			{6, store.StateAcked, "250 2.0.0 accepted: personas 3-6 were all contacted"},
			{2, store.StateAcked, "250 2.0.0 accepted: test already acknowledged"},
		}
		if len(cs) != len(want) {
			t.Fatalf("%d connections:\n%s", len(cs), fmtConns(cs))
		}
		for i, c := range cs {
			w := want[i]
			if c.TestID != test.ID || c.Persona != w.persona || c.State != w.state || c.Reply != w.reply || c.Error != "" {
				t.Errorf("connection %d: want test %s persona %d state %s reply %q:\n%s", i+1, test.ID, w.persona, w.state, w.reply, fmtConns(cs[i:i+1]))
			}
			if w.state.Rank() >= store.StateMail.Rank() && (c.MailFrom != from || !slices.Equal(c.RcptTo, []string{rcpt})) {
				t.Errorf("connection %d: from %q rcpt %q", i+1, c.MailFrom, c.RcptTo)
			}
		}
		if cs[0].STARTTLSOffered || !cs[1].STARTTLSOffered || cs[0].TLSVersion != "" || cs[4].TLSVersion != "TLS 1.3" {
			t.Errorf("offered/TLS:\n%s", fmtConns(cs))
		}
		wantSigs := []store.Signature{
			{Type: "dkim", Domain: "example.net", Selector: "none", Result: "permerror", Reason: "no key for signature: lookup none._domainkey.Example.NET.: no such host"},
			{Type: "dkim", Domain: "example.org", Selector: "bad", Result: "fail", Reason: "signature mismatch (a signed header field was changed)"},
			{Type: "dkim", Domain: "example.org", Selector: "sel", Result: "pass"},
		}
		gotSigs := cs[4].Signatures
		if len(gotSigs) != 4 || gotSigs[0] != (store.Signature{Type: "arc", Instance: 1}) || !slices.Equal(gotSigs[1:], wantSigs) {
			t.Errorf("signatures %+v, want ARC i=1 then %+v", gotSigs, wantSigs)
		}
		// The one evaluation of the test mail, stored with its connection.
		wantAuth := store.Authentication{DKIM: wantSigs,
			SPFMailFrom: store.SPFCheck{Domain: "example.org", Result: "pass"},
			SPFHELO:     store.SPFCheck{Domain: "sender.example.org", Result: "none", Reason: "no SPF record"},
			DMARC: store.DMARCCheck{FromDomain: "example.org", RecordDomain: "example.org", Policy: "reject", Result: "pass",
				SPFAlignment: "relaxed", DKIMAlignment: "strict", SPFAligned: true, DKIMAligned: true},
			ARC: store.ARCCheck{Instances: 1, Result: "fail", Reason: "ARC set 1 is incomplete"}}
		if a := cs[4].Authentication; a == nil || !reflect.DeepEqual(*a, wantAuth) {
			t.Errorf("authentication\n %+v, want\n %+v", a, wantAuth)
		}
		if cs[0].Authentication != nil || cs[1].Authentication == nil || cs[1].Authentication.DMARC.Result != "none" || len(cs[1].Authentication.DKIM) != 0 {
			t.Errorf("no mail: %+v; the unsigned mail over mx4, before the records were published: %+v", cs[0].Authentication, cs[1].Authentication)
		}
		if cs[4].MessageBytes != int64(len(signed)) {
			t.Errorf("message bytes %d, want %d", cs[4].MessageBytes, len(signed))
		}
		// The operator's counts (metrics): 451 in the window and over mx4,
		// 250 over mx6 and after.
		if st := ts.srv.Stats(); st.Deferred != [2]int64{2, 0} || st.Accepted != [2]int64{2, 0} {
			t.Errorf("acknowledgements: deferred %v accepted %v, want [2 0] and [2 0]", st.Deferred, st.Accepted)
		}
	})
}

func TestAcknowledgementZoneB(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		ts := startServerOn(t, driver, nil)
		test := ts.newTest(t, "tokb")
		const from = "sender@example.org"
		msg := "From: sender@example.org\r\nSubject: b\r\n\r\nHi.\r\n"

		// Inside the window, plain text to B: persona 7, 451.
		c := dial(t, ts.addr())
		c.ehlo()
		if code, _ := c.mail(from, []string{"t-tokb@" + zoneB}, msg); code != 451 {
			t.Errorf("B inside the window: %d, want 451", code)
		}
		// Mixed recipients in A and B: one decision, A's rule; persona 1.
		if code, _ := c.mail(from, []string{"t-tokb@" + zoneB, "t-tokb@" + zoneA}, msg); code != 451 {
			t.Errorf("A+B inside the window: %d, want 451", code)
		}
		c.quit()

		ts.clock.Advance(5 * time.Minute)
		// STARTTLS without SNI, recipient in B: persona 7 (persona 2's
		// certificate was served).
		c = dial(t, ts.addr())
		c.ehlo()
		cs, err := c.startTLS(insecure(""))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(cs.PeerCertificates[0].Raw, ts.certs.certs[2].Certificate[0]) {
			t.Error("no-SNI handshake did not get persona 2's certificate")
		}
		c.ehlo()
		if code, text := c.mail(from, []string{"t-tokb@" + zoneB}, msg); code != 250 || text != "2.0.0 accepted: zone B after the downgrade window" {
			t.Errorf("B after the window: %d %s", code, text)
		}
		c.quit()
		// SNI mx7.B: persona 7 by name.
		c = dial(t, ts.addr())
		c.ehlo()
		if _, err := c.startTLS(&tls.Config{ServerName: "mx7." + zoneB, RootCAs: ts.certs.pool}); err != nil {
			t.Fatal(err)
		}
		c.ehlo()
		if code, _ := c.mail(from, []string{"t-tokb@" + zoneB}, msg); code != 250 {
			t.Errorf("B over mx7: %d", code)
		}
		c.quit()

		rows := ts.waitEnded(t, 3)
		if len(rows) != 3 || rows[0].Persona != 1 || rows[1].Persona != 7 || rows[1].SNI != "" || rows[2].Persona != 7 || rows[2].SNI != "mx7."+zoneB {
			t.Errorf("personas:\n%s", fmtConns(rows))
		}
		// Persona 7 reached without SNI was shown persona 2's certificate; by
		// name, its own. Plain text shows none.
		if len(rows) == 3 && (rows[0].CertPersona != 0 || rows[1].CertPersona != 2 || rows[2].CertPersona != 7) {
			t.Errorf("certificates served: %d %d %d, want 0 2 7", rows[0].CertPersona, rows[1].CertPersona, rows[2].CertPersona)
		}
		for _, r := range rows {
			if r.TestID != test.ID {
				t.Errorf("connection %d not tied to the test", r.ID)
			}
		}
	})
}

// TestLocalPersonas is the deployment where MX hosts have addresses of
// their own: the address picks the persona without SNI.
func TestLocalPersonas(t *testing.T) {
	t.Parallel()
	ts := startOnTwoAddresses(t, store.DriverSQLite, func(o *Options) {
		o.DowngradeWindow = 0
		o.LocalPersonas = map[netip.Addr]int{mustAddr("127.0.0.2"): 4}
	})
	spki4, _ := ts.certs.keys.SPKISHA256(4)
	for _, tc := range []struct {
		addr    string
		sni     string
		plain   bool
		persona int
	}{
		{ts.addrs[1], "", false, 4},
		{ts.addrs[0], "", false, 2},
		{ts.addrs[1], "mx6." + zoneA, false, 6}, // the name the client asked for wins
		{ts.addrs[1], "unknown.example", false, 4},
		{ts.addrs[1], "", true, 1}, // no STARTTLS: persona 1 whatever the address
	} {
		c := dial(t, tc.addr)
		c.ehlo()
		if !tc.plain {
			cs, err := c.startTLS(insecure(tc.sni))
			if err != nil {
				t.Fatal(err)
			}
			leaf := cs.PeerCertificates[0]
			sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
			if tc.persona == 4 && !bytes.Equal(sum[:], spki4) {
				t.Errorf("%s SNI %q: not persona 4's key", tc.addr, tc.sni)
			}
			if !bytes.Equal(leaf.Raw, ts.certs.certs[tc.persona].Certificate[0]) {
				t.Errorf("%s SNI %q: not persona %d's certificate", tc.addr, tc.sni, tc.persona)
			}
			c.ehlo()
		}
		c.ok(250, "MAIL FROM:<a@example.org>")
		c.quit()
		cs := ts.waitEnded(t, 1)
		rec := cs[len(cs)-1]
		if rec.Persona != tc.persona || rec.Local.String() != tc.addr {
			t.Errorf("%s SNI %q: record persona %d local %s, want %d", tc.addr, tc.sni, rec.Persona, rec.Local, tc.persona)
		}
	}
}

func TestAcceptAll(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) { o.AcceptAll = true })
	c := dial(t, ts.addr())
	if !hasSTARTTLS(c.ehlo()) {
		t.Error("bench mode: no STARTTLS (the window does not apply)")
	}
	if _, err := c.startTLS(insecure("mx5." + zoneA)); err != nil {
		t.Fatal(err)
	}
	c.ehlo()
	c.ok(250, "MAIL FROM:<a@example.org>")
	c.ok(550, "RCPT TO:<x@example.org>") // still never a relay
	c.ok(250, "RCPT TO:<anything@%s>", zoneA)
	c.ok(354, "DATA")
	if code, _ := c.data(strings.Repeat(strings.Repeat("x", 78)+"\r\n", 128)); code != 250 {
		t.Errorf("bench mail: %d", code)
	}
	c.quit()
	cs := ts.waitEnded(t, 1)
	if cs[0].State != store.StateAcked || cs[0].Persona != 5 || cs[0].TestID != "" || cs[0].Reply != "250 2.0.0 accepted (bench mode)" {
		t.Errorf("record:\n%s", fmtConns(cs))
	}
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) { o.DowngradeWindow = 0; o.ShutdownGrace = 300 * time.Millisecond })
	ts.newTest(t, "tok1")
	idle := dial(t, ts.addr())
	idle.ehlo()
	busy := dial(t, ts.addr())
	busy.ehlo()
	busy.ok(250, "MAIL FROM:<a@example.org>")
	start := time.Now()
	ts.stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	cs := ts.conns(t, store.ConnectionFilter{})
	if len(cs) != 2 {
		t.Fatalf("%d records", len(cs))
	}
	for _, c := range cs {
		if c.Ended.IsZero() || c.Error != "server shutdown" {
			t.Errorf("after shutdown:\n%s", fmtConns([]store.SMTPConnection{c}))
		}
	}
	if out, _ := idle.readAll(time.Second); strings.Contains(out, "250") {
		t.Errorf("idle connection got %q", out)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	st, err := store.Open(context.Background(), t.TempDir()+"/x.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	certs := &testCerts{}
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"no store", Options{ZoneA: "a.example", ZoneB: "b.example", Certificates: certs}},
		{"no certificates", Options{ZoneA: "a.example", ZoneB: "b.example", Store: st}},
		{"same zones", Options{ZoneA: "a.example", ZoneB: "A.example.", Store: st, Certificates: certs}},
		{"local persona 1", Options{ZoneA: "a.example", ZoneB: "b.example", Store: st, Certificates: certs,
			LocalPersonas: map[netip.Addr]int{mustAddr("127.0.0.2"): 1}}},
		{"reserved fixed part", Options{ZoneA: "a.example", ZoneB: "b.example", Store: st, Certificates: certs,
			FixedLocalParts: []string{"t-x"}}},
	} {
		if _, err := New(tc.o); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

// TestSignatureResults verifies real signatures (go-msgauth signs in the
// test) and copies changed on the way: each result with its reason, so
// that a broken signature never reads as "signed".
func TestSignatureResults(t *testing.T) {
	t.Parallel()
	key, txt := dkimKey(t)
	keys := &fakeTXT{m: map[string][]string{"sel1._domainkey.example.org": {txt}}}
	s := &Server{opts: Options{DKIMTimeout: 5 * time.Second, DNS: lookupDNS(keys.LookupTXT)}}
	msg := "From: Jane <jane@example.org>\r\nTo: t-x@" + zoneA + "\r\nSubject: test\r\n\r\nHello.\r\n"
	signed := dkimSign(t, msg, "example.org", "sel1", key)
	expired := strings.Replace(dkimSign(t, msg, "example.org", "sel1", key), "DKIM-Signature: ", "DKIM-Signature: x=1; ", 1)
	for _, tc := range []struct {
		name, msg      string
		result, reason string
	}{
		{"as signed", signed, "pass", ""},
		{"body changed", strings.Replace(signed, "Hello.", "Hello!", 1), "fail", "body hash mismatch"},
		{"line appended to the body", signed + "-- \r\nA footer\r\n", "fail", "body hash mismatch"},
		{"signed header changed", strings.Replace(signed, "Subject: test", "Subject: tset", 1), "fail", "signature mismatch (a signed header field was changed)"},
		{"no key published", strings.Replace(signed, "s=sel1", "s=sel2", 1), "permerror", "no key for signature: lookup sel2._domainkey.example.org.: no such host"},
		{"expired (x= in the past)", expired, "permerror", "signature has expired"},
	} {
		got := s.signatures([]byte(tc.msg))
		if len(got) != 1 || got[0].Result != tc.result || got[0].Reason != tc.reason || got[0].Domain != "example.org" {
			t.Errorf("%s: %+v, want %s: %q", tc.name, got, tc.result, tc.reason)
		}
	}
}

func TestSignatures(t *testing.T) {
	t.Parallel()
	s := &Server{opts: Options{DKIMTimeout: time.Second, DNS: lookupDNS(func(ctx context.Context, d string) ([]string, error) {
		if strings.HasPrefix(d, "slow.") {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return nil, &net.DNSError{Err: "no such host", Name: d, IsNotFound: true}
	})}}
	for _, tc := range []struct {
		name string
		msg  string
		want []store.Signature
	}{
		{"none", "Subject: x\r\n\r\nbody\r\n", nil},
		{"folded tags, no separator", "DKIM-Signature: v=1; a=rsa-sha256; d=Example.ORG;\r\n\ts=se\r\n l1; h=from; bh=x; b=y\r\nARC-Seal: i=2; cv=pass", []store.Signature{
			{Type: "dkim", Domain: "example.org", Selector: "sel1", Result: "permerror", Reason: "failed to read header: EOF"}, {Type: "arc", Instance: 2}}},
		{"key lookup timeout", "DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=slow; h=from; bh=x; b=y\r\nFrom: a@x.example\r\n\r\nbody\r\n", []store.Signature{
			{Type: "dkim", Domain: "x.example", Selector: "slow", Result: "temperror", Reason: "key unavailable: lookup slow._domainkey.x.example.: context deadline exceeded"}}},
		{"control characters and an over-long d=", "DKIM-Signature: v=1; d=A\x00b\x1b[2J; s=x\x7fy\r\nDKIM-Signature: v=1; d=" + strings.Repeat("a", 300) + "; s=" + strings.Repeat("s", 300) + "\r\n\r\nbody\r\n", []store.Signature{
			{Type: "dkim", Domain: "a?b?[2j", Selector: "x?y", Result: "permerror", Reason: "signature missing required tag"},
			{Type: "dkim", Domain: strings.Repeat("a", maxSignatureText) + "…", Selector: strings.Repeat("s", maxSignatureText) + "…", Result: "permerror", Reason: "signature missing required tag"}}},
		{"body in the header only", "dkim-signature: v=1\n\nDKIM-Signature: v=1; d=late.example\n", []store.Signature{
			{Type: "dkim", Result: "permerror", Reason: "signature missing required tag"}}},
	} {
		got := s.signatures([]byte(tc.msg))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// TestBrokenHostAddress: a connection to the broken host's address is
// recorded and answered 421 in place of the greeting, whatever the
// connection caps, and the persona addresses are served as before.
func TestBrokenHostAddress(t *testing.T) {
	t.Parallel()
	ts := startOnTwoAddresses(t, store.DriverSQLite, func(o *Options) {
		o.DowngradeWindow = 0
		o.MaxConnectionsPerClient = 1
		o.BrokenHostAddrs = []netip.Addr{mustAddr("127.0.0.2")}
	})
	open := dial(t, ts.addrs[0]) // holds the client's one connection
	open.ehlo()
	c := dialNoGreeting(t, "", ts.addrs[1])
	code, text := c.read()
	if code != 421 || !strings.Contains(text, "DNSSEC") {
		t.Fatalf("broken host answered %d %q, want 421 naming DNSSEC", code, text)
	}
	if rest, err := c.readAll(5 * time.Second); err != nil || rest != "" {
		t.Errorf("after the 421: %q, %v (want the connection closed)", rest, err)
	}
	open.quit()
	cs := ts.waitEnded(t, 2)
	var broken []store.SMTPConnection
	for _, r := range cs {
		if r.Local.String() == ts.addrs[1] {
			broken = append(broken, r)
		}
	}
	if len(broken) != 1 || broken[0].Reply != brokenHostReply || broken[0].Persona != 0 || broken[0].EHLO != "" || broken[0].Error != "" {
		t.Fatalf("records:\n%s", fmtConns(cs))
	}
	if _, err := New(Options{Store: ts.st, Certificates: ts.certs, ZoneA: zoneA, ZoneB: zoneB,
		LocalPersonas: map[netip.Addr]int{mustAddr("127.0.0.2"): 4}, BrokenHostAddrs: []netip.Addr{mustAddr("127.0.0.2")}}); err == nil {
		t.Error("an address of both a persona and the broken host accepted")
	}
}

// TestIPv6HostAddress: a connection to the IPv6-only host's address (on
// ::1) is recorded as no client's and answered 421 in place of the
// greeting, while the persona address is served as before; an address may
// not be both the broken host's and the IPv6-only host's.
func TestIPv6HostAddress(t *testing.T) {
	t.Parallel()
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skip("::1 not available")
	} else {
		l.Close()
	}
	ts := startServerOn(t, store.DriverSQLite, func(o *Options) {
		o.DowngradeWindow = 0
		o.IPv6HostAddrs = []netip.Addr{mustAddr("::1")}
	}, "127.0.0.1:0", "[::1]:0")
	c := dialNoGreeting(t, "", ts.addrs[1])
	code, text := c.read()
	if code != 421 || !strings.Contains(text, "IPv6") {
		t.Fatalf("IPv6-only host answered %d %q, want 421 naming IPv6", code, text)
	}
	if rest, err := c.readAll(5 * time.Second); err != nil || rest != "" {
		t.Errorf("after the 421: %q, %v (want the connection closed)", rest, err)
	}
	persona := dial(t, ts.addrs[0])
	persona.ehlo()
	persona.quit()
	cs := ts.waitEnded(t, 2)
	var v6 []store.SMTPConnection
	for _, r := range cs {
		if r.Local.Addr() == mustAddr("::1") {
			v6 = append(v6, r)
		}
	}
	if len(v6) != 1 || v6[0].Reply != ipv6HostReply || v6[0].Persona != 0 || v6[0].EHLO != "" || v6[0].ClientKey != "" || !v6[0].Client.Addr().Is6() {
		t.Fatalf("records:\n%s", fmtConns(cs))
	}
	if _, err := New(Options{Store: ts.st, Certificates: ts.certs, ZoneA: zoneA, ZoneB: zoneB,
		BrokenHostAddrs: []netip.Addr{mustAddr("::1")}, IPv6HostAddrs: []netip.Addr{mustAddr("::1")}}); err == nil {
		t.Error("an address of both the broken host and the IPv6-only host accepted")
	}
}
