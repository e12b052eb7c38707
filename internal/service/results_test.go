package service

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"

	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
)

// TestResultMailIdentity: the running service publishes what makes its
// result mails pass at a receiver — the DKIM key under the selector in
// zone A, an SPF record of A that covers result_mail.source_address, and
// DMARC — checked through mailsec's own DNS server with go-msgauth and the
// SPF evaluation the result mailer itself uses.
func TestResultMailIdentity(t *testing.T) {
	cfg := loopbackConfig(t)
	cfg.Resolver.Address = cfg.DNS.Listen[0]
	cfg.ResultMail.SourceAddress = "127.0.0.77"
	run := startLoopback(t, cfg)
	if run.Zones.DKIMKey == nil || !strings.HasPrefix(run.WebURL, "http://127.0.0.1:") {
		t.Fatalf("DKIM key %v, web %q", run.Zones.DKIMKey, run.WebURL)
	}
	res, err := resolver.New(run.DNSAddrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(name string) ([]string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		return res.LookupTXT(ctx, name)
	}

	id := resultmail.Identity{From: cfg.ResultMailFrom(), Domain: "a.mailtest.example", Selector: cfg.ResultMail.Selector, Key: run.Zones.DKIMKey}
	msg, _, err := resultmail.Compose(id, report.Build(report.Input{Test: store.Test{ID: "x"}}), "j@example.org", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{LookupTXT: lookup})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != "a.mailtest.example" {
		t.Fatalf("DKIM through the zone: %v %+v", err, verifs)
	}

	// SPF: the mailer's own evaluation, as a receiver of a mail from the
	// source address with MAIL FROM in A.
	c := store.SMTPConnection{State: store.StateMail, MailFrom: cfg.ResultMailFrom(), EHLO: "a.mailtest.example",
		Client: netip.MustParseAddrPort("127.0.0.77:25")}
	auth, err := resultmail.Authenticate(t.Context(), res, cfg.ResultMailFrom(), []store.SMTPConnection{c})
	if err != nil || !auth.OK || auth.Method != "spf" {
		t.Fatalf("SPF of A for the source address: %+v %v", auth, err)
	}
	c.Client = netip.MustParseAddrPort("127.0.0.78:25")
	if auth, _ := resultmail.Authenticate(t.Context(), res, cfg.ResultMailFrom(), []store.SMTPConnection{c}); auth.OK {
		t.Fatalf("SPF of A passes for any address: %+v", auth)
	}

	// DMARC of A: strict alignment, which From in A, d=A and MAIL FROM
	// in A meet.
	rec, err := dmarc.LookupWithOptions("a.mailtest.example", &dmarc.LookupOptions{LookupTXT: lookup})
	if err != nil || rec.Policy != dmarc.PolicyReject || rec.DKIMAlignment != dmarc.AlignmentStrict {
		t.Fatalf("DMARC: %+v %v", rec, err)
	}
}
