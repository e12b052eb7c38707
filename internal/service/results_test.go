package service

import (
	"bytes"
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/mailauth"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
)

// TestResultMailIdentity: the running service publishes what makes its
// result mails pass at a receiver — the DKIM key under the selector in
// zone A, an SPF record of A that covers result_mail.source_address, and
// DMARC — checked through mailsec's own DNS server with go-msgauth and the
// evaluation mailsec makes of every test mail (internal/mailauth).
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

	// SPF and DMARC: the evaluation mailsec makes of every test mail, as
	// a receiver of a mail from the source address with MAIL FROM in A.
	dkimPass := []store.Signature{{Type: "dkim", Domain: verifs[0].Domain, Selector: cfg.ResultMail.Selector, Result: "pass"}}
	env := mailauth.Envelope{Client: netip.MustParseAddr("127.0.0.77"), HELO: "a.mailtest.example", MailFrom: cfg.ResultMailFrom()}
	a := mailauth.Evaluate(t.Context(), res, env, msg, dkimPass)
	if a.SPFMailFrom.Result != "pass" || a.DMARC.Result != "pass" || !a.DMARC.SPFAligned || !a.DMARC.DKIMAligned || a.DMARC.Policy != "reject" {
		t.Fatalf("SPF and DMARC of A for the source address: %+v", a)
	}
	env.Client = netip.MustParseAddr("127.0.0.78")
	if a := mailauth.Evaluate(t.Context(), res, env, msg, dkimPass); a.SPFMailFrom.Result != "fail" || a.DMARC.SPFAligned || a.DMARC.Result != "pass" {
		t.Fatalf("from another address SPF must fail and DMARC pass by DKIM alone: %+v", a)
	}

	// DMARC of A: strict alignment, which From in A, d=A and MAIL FROM
	// in A meet.
	rec, err := dmarc.LookupWithOptions("a.mailtest.example", &dmarc.LookupOptions{LookupTXT: lookup})
	if err != nil || rec.Policy != dmarc.PolicyReject || rec.DKIMAlignment != dmarc.AlignmentStrict {
		t.Fatalf("DMARC: %+v %v", rec, err)
	}
}

// TestBrokenMXWiring: a broken host with an address of its own reaches the
// evidence rules (and so the verdict) with its label and address; one
// without stays out.
func TestBrokenMXWiring(t *testing.T) {
	cfg := config.Default()
	cfg.DNSSEC.BrokenHosts = []string{"broken", "other"}
	cfg.Zones.HostAddresses = map[string][]string{"broken": {"127.0.0.29"}}
	r := EvidenceRules(&cfg)
	if !slices.Equal(r.BrokenHosts, []string{"broken"}) || !slices.Equal(r.BrokenAddrs, []netip.Addr{netip.MustParseAddr("127.0.0.29")}) {
		t.Fatalf("evidence rules: broken hosts %v, addresses %v", r.BrokenHosts, r.BrokenAddrs)
	}
}

// TestBrokenMXInPolicy: the broken MX host is in the MTA-STS policy of
// zone A and of every slot, so an MTA-STS sender does not skip it unseen.
func TestBrokenMXInPolicy(t *testing.T) {
	cfg := config.Default()
	cfg.Zones.Slots = 2
	cfg.DNSSEC.BrokenHosts = []string{"broken"}
	if p := SlotPolicy(&cfg, 2); slices.Contains(p.MX, "broken.s002."+strings.TrimSuffix(cfg.Zones.A, ".")) {
		t.Fatalf("broken host without an address of its own in the policy: %v", p.MX)
	}
	cfg.Zones.HostAddresses = map[string][]string{"broken": {"127.0.0.29"}}
	if p := SlotPolicy(&cfg, 2); !slices.Contains(p.MX, "broken.s002."+strings.TrimSuffix(cfg.Zones.A, ".")) {
		t.Fatalf("slot policy mx lines %v lack the broken host", p.MX)
	}
	if p := Policy(&cfg); !slices.Contains(p.MX, "broken."+strings.TrimSuffix(cfg.Zones.A, ".")) {
		t.Fatalf("zone A's policy mx lines %v lack the broken host", p.MX)
	}
}

// TestIPv6MXWiring: the IPv6-only host's address reaches the evidence
// rules, the SMTP listener (one address per slot, on smtp.listen's first
// port) and the SMTP options, and its name every slot's MTA-STS policy;
// without it nothing changes.
func TestIPv6MXWiring(t *testing.T) {
	cfg := config.Default()
	cfg.Zones.Slots = 2
	cfg.SMTP.Listen = []string{"127.0.0.20:25", "[fd00::6:1]:25"}
	if r := EvidenceRules(&cfg); r.IPv6Host.IsValid() {
		t.Fatalf("not deployed, evidence rules: %v", r.IPv6Host)
	}
	if got := SMTPListen(&cfg); !slices.Equal(got, cfg.SMTP.Listen) {
		t.Fatalf("not deployed, listen %v", got)
	}
	if p := SlotPolicy(&cfg, 2); slices.ContainsFunc(p.MX, func(h string) bool { return strings.HasPrefix(h, "mx-v6.") }) {
		t.Fatalf("not deployed, policy %v", p.MX)
	}
	cfg.Zones.HostAddresses = map[string][]string{"mx-v6": {"fd00::6:0"}}
	if r := EvidenceRules(&cfg); r.IPv6Host != netip.MustParseAddr("fd00::6:0") {
		t.Fatalf("evidence rules: IPv6-only host %v", r.IPv6Host)
	}
	if got, want := SMTPListen(&cfg), []string{"127.0.0.20:25", "[fd00::6:1]:25", "[fd00::6:0]:25", "[fd00::6:2]:25"}; !slices.Equal(got, want) {
		t.Fatalf("listen %v, want %v", got, want)
	}
	for _, wild := range []string{"[::]:25", ":25", "0.0.0.0:25"} {
		cfg := cfg
		cfg.SMTP.Listen = []string{"127.0.0.20:25", wild}
		if got := SMTPListen(&cfg); !slices.Equal(got, cfg.SMTP.Listen) {
			t.Errorf("under %s: listen %v", wild, got)
		}
	}
	if p := SlotPolicy(&cfg, 2); !slices.Contains(p.MX, "mx-v6.s002."+strings.TrimSuffix(cfg.Zones.A, ".")) {
		t.Fatalf("policy of slot 2 without the IPv6-only host: %v", p.MX)
	}
	o := SMTPOptions(&cfg, &Zones{}, nil, nil, nil, nil)
	if len(o.IPv6HostAddrs) != 3 || o.IPv6HostAddrs[2] != netip.MustParseAddr("fd00::6:2") {
		t.Fatalf("SMTP options: IPv6-only host addresses %v", o.IPv6HostAddrs)
	}
}
