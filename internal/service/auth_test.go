package service

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/store"
)

// TestTestMailAuthentication: the running service evaluates a test mail's
// authentication through its own resolver (resolver.address, here a
// scripted server for the user's domain) and stores it with the
// connection: a mail signed by the user's domain and sent from an address
// its SPF record lists passes DKIM, SPF and DMARC; the same mail with its
// body changed on the way fails DKIM with the reason and passes DMARC by
// SPF alone.
func TestTestMailAuthentication(t *testing.T) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	userDNS := peertest.StartDNS(t)
	userDNS.Set(t,
		`user.example. 60 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`,
		`_dmarc.user.example. 60 IN TXT "v=DMARC1; p=reject"`,
		`sel1._domainkey.user.example. 60 IN TXT "v=DKIM1; k=ed25519; p=`+base64.StdEncoding.EncodeToString(pub)+`"`)
	cfg := loopbackConfig(t)
	cfg.Web.Listen = nil
	cfg.Resolver.Address = userDNS.Addr
	run := startLoopback(t, cfg)

	msg := "From: Jane <jane@user.example>\r\nTo: t-x@a.example\r\nSubject: test\r\n\r\nHello.\r\n"
	var signed bytes.Buffer
	if err := dkim.Sign(&signed, strings.NewReader(msg), &dkim.SignOptions{Domain: "user.example", Selector: "sel1", Signer: key}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, body   string
		dkim       store.Signature
		dkimAligns bool
	}{
		{"authokaaaaaaaaaa", signed.String(), store.Signature{Type: "dkim", Domain: "user.example", Selector: "sel1", Result: "pass"}, true},
		{"authbrokenaaaaaa", strings.Replace(signed.String(), "Hello.", "Hello, changed.", 1),
			store.Signature{Type: "dkim", Domain: "user.example", Selector: "sel1", Result: "fail", Reason: "body hash mismatch"}, false},
	} {
		now := time.Now()
		if err := run.Store.CreateTest(t.Context(), store.Test{ID: tc.id, Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen}); err != nil {
			t.Fatal(err)
		}
		sendAnswered(t, run.SMTPAddrs[0].String(), "jane@user.example", "t-"+tc.id+"@"+strings.TrimSuffix(cfg.Zones.A, "."), tc.body)
		conns, err := run.Store.Connections(t.Context(), store.ConnectionFilter{TestID: tc.id})
		if err != nil || len(conns) != 1 || conns[0].Authentication == nil {
			t.Fatalf("%s: connections %+v, %v", tc.id, conns, err)
		}
		a := conns[0].Authentication
		if len(a.DKIM) != 1 || a.DKIM[0] != tc.dkim || a.SPFMailFrom.Result != "pass" || a.DMARC.Result != "pass" || a.DMARC.Policy != "reject" ||
			!a.DMARC.SPFAligned || a.DMARC.DKIMAligned != tc.dkimAligns {
			t.Errorf("%s: authentication %+v", tc.id, a)
		}
	}
}

// sendAnswered sends one mail over plain SMTP (sendMail); the
// acknowledgement's 451 4.7.1 counts as answered.
func sendAnswered(t *testing.T, addr, from, rcpt, body string) {
	t.Helper()
	var reply *smtp.SMTPError
	if err := sendMail(addr, "mail.user.example", from, rcpt, body); err != nil && !(errors.As(err, &reply) && reply.Code == 451) {
		t.Fatalf("mail to %s: %v", rcpt, err)
	}
}
