package resultmail_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
)

// The decision runs against a scripted DNS server on loopback (the user's
// domain: SPF) through mailsec's resolver, as in production.

const userAddr = "jane.doe@user.example"

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// mailConn is a connection from client that carried the test mail from
// userAddr; dkimDomain "" for no signature.
func mailConn(client, dkimDomain string) store.SMTPConnection {
	c := store.SMTPConnection{Started: t0.Add(time.Minute), Ended: t0.Add(time.Minute + time.Second),
		Client: netip.AddrPortFrom(netip.MustParseAddr(client), 4000), EHLO: "mail.user.example", Persona: 4,
		State: store.StateAcked, MailFrom: userAddr}
	if dkimDomain != "" {
		c.Signatures = []store.Signature{{Type: "dkim", Domain: dkimDomain, Selector: "s", Result: "pass"}}
	}
	return c
}

func TestDecide(t *testing.T) {
	f := peertest.StartDNS(t)
	f.Set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`, `broken.example. 60 IN MX 10 mx.broken.example.`)
	f.Fail("broken.example", "TXT", dns.RcodeServerFailure)
	res, err := resolver.New(f.Addr)
	if err != nil {
		t.Fatal(err)
	}
	test := store.Test{ID: "t1", Created: t0, Sender: userAddr}
	brokenTest := store.Test{ID: "t2", Created: t0, Sender: "joe@broken.example"}
	brokenConn := mailConn("127.0.0.9", "")
	brokenConn.MailFrom = "joe@broken.example"
	tests := []struct {
		name      string
		in        resultmail.DecideInput
		state     string
		reason    string // a part of the reason
		recipient string
		err       error
	}{
		{"SPF pass", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.9", "")}},
			store.MailPending, "SPF pass for user.example from 127.0.0.9", userAddr, nil},
		{"SPF fail, aligned DKIM", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.8", "mail.user.example")}},
			store.MailPending, "valid DKIM signature of mail.user.example", userAddr, nil},
		{"SPF fail, DKIM of another domain", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.8", "other.example")}},
			store.MailWithheld, "not sent, to prevent backscatter: the test mail's sender was not authenticated: SPF fail", "", nil},
		{"no sender", resultmail.DecideInput{Test: store.Test{ID: "t3", Created: t0}},
			store.MailNone, "no envelope sender", "", nil},
		{"mails off", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.9", "")}, Enabled: false},
			store.MailNone, "turned off", "", nil},
		{"temperror, recent: later", resultmail.DecideInput{Test: brokenTest, Connections: []store.SMTPConnection{brokenConn}, RetryFor: time.Hour},
			"", "", "", resultmail.ErrUndecided},
		{"mails off, DKIM only", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.9", "")}, Enabled: false},
			store.MailNone, "turned off", "", nil},
		{"temperror, old: withheld", resultmail.DecideInput{Test: brokenTest, Connections: []store.SMTPConnection{brokenConn}, RetryFor: time.Minute},
			store.MailWithheld, "could not be evaluated (temperror", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.DNS, in.Now = res, t0.Add(10*time.Minute)
			switch tc.name {
			case "mails off":
			case "mails off, DKIM only": // no resolver: SPF is not evaluated
				in.DNS = nil
			default:
				in.Enabled = true
			}
			d, err := resultmail.Decide(t.Context(), in)
			if !errors.Is(err, tc.err) || tc.err == nil && err != nil {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if d.State != tc.state || !strings.Contains(d.Reason, tc.reason) || d.Recipient != tc.recipient {
				t.Fatalf("decision %+v, want state %q, reason with %q, recipient %q", d, tc.state, tc.reason, tc.recipient)
			}
			// Mails off or not, the decision says whether the sender was
			// authenticated: only then does the test feed the provider table.
			wantAuth := tc.name == "SPF pass" || tc.name == "SPF fail, aligned DKIM" || tc.name == "mails off"
			if d.SenderAuthenticated != wantAuth {
				t.Errorf("sender authenticated %v, want %v", d.SenderAuthenticated, wantAuth)
			}
			if d.State != store.MailPending && strings.Contains(d.Reason, "jane") {
				t.Errorf("the reason names the person: %q", d.Reason)
			}
		})
	}
}

func TestComposeSignedMail(t *testing.T) {
	k, err := resultmail.LoadOrCreateKey(filepath.Join(t.TempDir(), "dkim.pem"))
	if err != nil {
		t.Fatal(err)
	}
	key := k.(*rsa.PrivateKey)
	id := resultmail.Identity{From: "results@a.mailtest.example", Name: "mailsec", Domain: "a.mailtest.example", Selector: "mailsec1", Key: key}
	in := report.Input{Test: store.Test{ID: "abc", Created: t0, Sender: userAddr}, Now: t0.Add(time.Hour), ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example",
		URL: "https://mailsec.example/t/abc", Connections: []store.SMTPConnection{mailConn("127.0.0.9", "")}}
	msg, msgID, err := resultmail.Compose(id, report.Build(in), userAddr, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msgID, "<abc.") || !strings.HasSuffix(msgID, "@a.mailtest.example>") {
		t.Errorf("Message-ID %q", msgID)
	}
	rec, err := resultmail.DNSRecord(key)
	if err != nil {
		t.Fatal(err)
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: func(name string) ([]string, error) {
		if name != "mailsec1._domainkey.a.mailtest.example" {
			return nil, errors.New("unexpected key look-up " + name)
		}
		return []string{rec}, nil
	}})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "a.mailtest.example" {
		t.Fatalf("DKIM: %v %+v", err, verifs)
	}
	s := string(msg)
	for _, want := range []string{"multipart/alternative", "Content-Type: text/plain", "Content-Type: text/html", "Auto-Submitted: auto-replied",
		"To: <" + userAddr + ">", "From: mailsec <results@a.mailtest.example>", "j***@user.example"} {
		if !strings.Contains(s, want) {
			t.Errorf("message lacks %q", want)
		}
	}
	// The one full address is the envelope recipient's, in To:.
	if n := strings.Count(s, userAddr); n != 1 {
		t.Errorf("full address appears %d times, want once (To:)", n)
	}
}

func TestAuthenticateNoSender(t *testing.T) {
	a, err := resultmail.Authenticate(context.Background(), nil, "", nil)
	if err != nil || a.OK {
		t.Fatalf("%+v %v", a, err)
	}
}

func TestDNSRecordAndKeyReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.pem")
	k1, err := resultmail.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := resultmail.LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := resultmail.DNSRecord(k1)
	r2, _ := resultmail.DNSRecord(k2)
	if r1 != r2 || !strings.HasPrefix(r1, "v=DKIM1; k=rsa; p=MII") {
		t.Fatalf("records differ or look wrong: %q %q", r1, r2)
	}
}
