package resultmail_test

import (
	"bytes"
	"crypto/rsa"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// The decision reads the evaluation made when the test mail arrived
// (store.SMTPConnection.Authentication, internal/mailauth).

const userAddr = "jane.doe@user.example"

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// mailConn is a connection from client that carried the test mail from
// userAddr with the SPF result spf for user.example ("" for a connection
// stored before the evaluation existed); dkimDomain "" for no signature.
func mailConn(client, spf, dkimDomain string) store.SMTPConnection {
	c := store.SMTPConnection{Started: t0.Add(time.Minute), Ended: t0.Add(time.Minute + time.Second),
		Client: netip.AddrPortFrom(netip.MustParseAddr(client), 4000), EHLO: "mail.user.example", Persona: 4,
		State: store.StateAcked, MailFrom: userAddr}
	var sigs []store.Signature
	if dkimDomain != "" {
		sigs = []store.Signature{{Type: "dkim", Domain: dkimDomain, Selector: "s", Result: "pass"}}
	}
	if spf == "" {
		c.Signatures = sigs
		return c
	}
	c.Authentication = &store.Authentication{DKIM: sigs, SPFMailFrom: store.SPFCheck{Domain: "user.example", Result: spf}}
	return c
}

func TestDecide(t *testing.T) {
	test := store.Test{ID: "t1", Created: t0, Sender: userAddr}
	failedDKIM := mailConn("127.0.0.8", "fail", "")
	failedDKIM.Authentication.DKIM = []store.Signature{{Type: "dkim", Domain: "user.example", Selector: "s", Result: "fail", Reason: "body hash mismatch"}}
	otherSender := mailConn("127.0.0.9", "pass", "")
	otherSender.MailFrom = "joe@other.example"
	tests := []struct {
		name      string
		in        resultmail.DecideInput
		state     string
		reason    string // a part of the reason
		recipient string
		auth      bool
	}{
		{"SPF pass", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.9", "pass", "")}},
			store.MailPending, "SPF pass for user.example from 127.0.0.9", userAddr, true},
		{"SPF fail, aligned DKIM", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.8", "fail", "mail.user.example")}},
			store.MailPending, "valid DKIM signature of mail.user.example", userAddr, true},
		{"SPF fail, DKIM of another domain", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.8", "fail", "other.example")}},
			store.MailWithheld, "not sent, to prevent backscatter: the test mail's sender was not authenticated: SPF fail", "", false},
		{"SPF fail, failing DKIM of the sender's domain", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{failedDKIM}},
			store.MailWithheld, "SPF fail for user.example from 127.0.0.8", "", false},
		{"SPF temperror when the mail came", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.9", "temperror", "")}},
			store.MailWithheld, "SPF temperror for user.example", "", false},
		{"the same SPF result of two mails is said once", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.8", "fail", ""), mailConn("127.0.0.8", "fail", "")}},
			store.MailWithheld, "sender was not authenticated: SPF fail for user.example from 127.0.0.8, and no", "", false},
		{"SPF pass for another envelope sender", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{otherSender}},
			store.MailWithheld, "no evaluated mail of the test came with the envelope sender's domain", "", false},
		{"stored before the evaluation: aligned DKIM", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.9", "", "user.example")}},
			store.MailPending, "valid DKIM signature of user.example", userAddr, true},
		{"stored before the evaluation: nothing", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.9", "", "")}},
			store.MailWithheld, "no valid DKIM signature aligned with user.example", "", false},
		{"no sender", resultmail.DecideInput{Test: store.Test{ID: "t3", Created: t0}},
			store.MailNone, "no envelope sender", "", false},
		{"mails off", resultmail.DecideInput{Test: test, Connections: []store.SMTPConnection{mailConn("127.0.0.9", "pass", "")}},
			store.MailNone, "turned off", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			in.Enabled = tc.name != "mails off"
			d := resultmail.Decide(in)
			if d.State != tc.state || !strings.Contains(d.Reason, tc.reason) || d.Recipient != tc.recipient {
				t.Fatalf("decision %+v, want state %q, reason with %q, recipient %q", d, tc.state, tc.reason, tc.recipient)
			}
			// Mails off or not, the decision says whether the sender was
			// authenticated: only then does the test feed the provider table.
			if d.SenderAuthenticated != tc.auth {
				t.Errorf("sender authenticated %v, want %v", d.SenderAuthenticated, tc.auth)
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
		URL: "https://mailsec.example/t/abc", Connections: []store.SMTPConnection{mailConn("127.0.0.9", "pass", "")}}
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
		"To: <" + userAddr + ">", "From: mailsec <results@a.mailtest.example>", "j***@user.example",
		"Authentication of your test mail", "SPF (MAIL FROM user.example): pass"} {
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
	if a := resultmail.Authenticate("", nil); a.OK {
		t.Fatalf("%+v", a)
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

// TestComposeGerman: a test created in German gets its result mail in
// German (subject, text and HTML), the subject still ending in the policy
// (lab/resultcheck.py), and still DKIM-signed.
func TestComposeGerman(t *testing.T) {
	k, err := resultmail.LoadOrCreateKey(filepath.Join(t.TempDir(), "dkim.pem"))
	if err != nil {
		t.Fatal(err)
	}
	id := resultmail.Identity{From: "results@a.mailtest.example", Domain: "a.mailtest.example", Selector: "mailsec1", Key: k}
	in := report.Input{Test: store.Test{ID: "abc", Created: t0, Sender: userAddr, Lang: "de"}, Final: true, Now: t0.Add(time.Hour),
		Lang: i18n.Lang("de"), Verdict: verdict.Verdict{Policy: verdict.PolicyMay}, Connections: []store.SMTPConnection{mailConn("127.0.0.9", "pass", "")}}
	r := report.Build(in)
	msg, _, err := resultmail.Compose(id, r, userAddr, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil || subject != "E-Mail-Sicherheitstest abc: "+r.Policy {
		t.Errorf("subject %q (%v)", subject, err)
	}
	body := decodeParts(t, m)
	for _, want := range []string{"Ergebnis für ausgehende Mail: " + r.Policy, "Verbindungsverlauf", `<html lang="de">`, "Authentifizierung Ihrer Testmail"} {
		if !strings.Contains(body, want) {
			t.Errorf("German mail lacks %q", want)
		}
	}
	for _, english := range []string{"Outbound verdict", "Connection history", "Your email security test"} {
		if strings.Contains(body, english) {
			t.Errorf("German mail says %q", english)
		}
	}
}

// decodeParts is the text of a multipart message's parts, decoded
// (multipart.Reader undoes their quoted-printable encoding).
func decodeParts(t *testing.T, m *mail.Message) string {
	t.Helper()
	_, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var b strings.Builder
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return b.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		text, err := io.ReadAll(p)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(text)
	}
}
