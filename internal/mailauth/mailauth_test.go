package mailauth_test

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/mailauth"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/store"
)

// The evaluation runs against a scripted DNS server on loopback through
// mailsec's own resolver, as in production.

const client = "127.0.0.9"

// startDNS serves the senders' domains of the table below.
func startDNS(t *testing.T) *resolver.Resolver {
	t.Helper()
	f := peertest.StartDNS(t)
	f.Set(t,
		`user.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`,
		`_dmarc.user.example. 60 IN TXT "v=DMARC1; p=reject"`,
		`mail.user.example. 60 IN TXT "v=spf1 a -all"`,
		`mail.user.example. 60 IN A 127.0.0.9`,
		`strict.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`,
		`_dmarc.strict.example. 60 IN TXT "v=DMARC1; p=quarantine; adkim=s; aspf=s"`,
		`bounce.strict.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`,
		`soft.example. 60 IN TXT "v=spf1 ~all"`,
		`_dmarc.org.example. 60 IN TXT "v=DMARC1; p=none; sp=reject"`,
		`dept.org.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`,
		`_dmarc.bad.example. 60 IN TXT "v=DMARC1; p=maybe"`,
		`void.example. 60 IN TXT "v=spf1 a:n1.void.example a:n2.void.example a:n3.void.example -all"`,
		`two.example. 60 IN TXT "v=spf1 -all"`,
		`two.example. 60 IN TXT "v=spf1 +all"`,
		`down.example. 60 IN MX 10 mx.down.example.`,
	)
	// Eleven includes: one more DNS-querying term than RFC 7208 §4.6.4
	// allows.
	var chain strings.Builder
	chain.WriteString("v=spf1")
	for i := range 11 {
		chain.WriteString(fmt.Sprintf(" include:i%d.many.example", i))
		f.Set(t, fmt.Sprintf(`i%d.many.example. 60 IN TXT "v=spf1 ip4:192.0.2.%d"`, i, i))
	}
	f.Set(t, `many.example. 60 IN TXT "`+chain.String()+` ip4:127.0.0.9 -all"`)
	f.Fail("down.example", "TXT", dns.RcodeServerFailure)
	f.Fail("_dmarc.down.example", "TXT", dns.RcodeServerFailure)
	res, err := resolver.New(f.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func message(from string) []byte {
	return []byte("From: Jane <" + from + ">\r\nTo: t-x@a.example\r\nSubject: test\r\n\r\nbody\r\n")
}

func dkim(d, result, reason string) store.Signature {
	return store.Signature{Type: "dkim", Domain: d, Selector: "sel1", Result: result, Reason: reason}
}

func TestEvaluate(t *testing.T) {
	res := startDNS(t)
	env := func(helo, from string) mailauth.Envelope {
		return mailauth.Envelope{Client: netip.MustParseAddr(client), HELO: helo, MailFrom: from}
	}
	for _, tc := range []struct {
		name      string
		env       mailauth.Envelope
		msg       []byte
		sigs      []store.Signature
		spf, helo store.SPFCheck
		dmarc     store.DMARCCheck
		dkimN     int
		arc       store.ARCCheck
	}{
		{name: "SPF pass, HELO pass, DMARC pass by SPF",
			env: env("mail.user.example", "jane@user.example"), msg: message("jane@user.example"),
			spf:   store.SPFCheck{Domain: "user.example", Result: "pass"},
			helo:  store.SPFCheck{Domain: "mail.user.example", Result: "pass"},
			dmarc: store.DMARCCheck{FromDomain: "user.example", RecordDomain: "user.example", Policy: "reject", Result: "pass", SPFAlignment: "relaxed", DKIMAlignment: "relaxed", SPFAligned: true},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "SPF fail from another client; aligned DKIM pass: DMARC pass",
			env: mailauth.Envelope{Client: netip.MustParseAddr("127.0.0.8"), HELO: "[127.0.0.8]", MailFrom: "jane@user.example"}, msg: message("jane@user.example"),
			sigs:  []store.Signature{dkim("mail.user.example", "pass", "")},
			spf:   store.SPFCheck{Domain: "user.example", Result: "fail", Reason: "127.0.0.8 is not permitted by the record"},
			helo:  store.SPFCheck{Result: "none", Reason: "the HELO name is not a domain name"},
			dmarc: store.DMARCCheck{FromDomain: "user.example", RecordDomain: "user.example", Policy: "reject", Result: "pass", SPFAlignment: "relaxed", DKIMAlignment: "relaxed", DKIMAligned: true},
			dkimN: 1, arc: store.ARCCheck{Result: "none"}},
		{name: "failing DKIM does not align: DMARC fail",
			env: mailauth.Envelope{Client: netip.MustParseAddr("127.0.0.8"), HELO: "mail.user.example", MailFrom: "jane@user.example"}, msg: message("jane@user.example"),
			sigs:  []store.Signature{dkim("user.example", "fail", "body hash mismatch")},
			spf:   store.SPFCheck{Domain: "user.example", Result: "fail", Reason: "127.0.0.8 is not permitted by the record"},
			helo:  store.SPFCheck{Domain: "mail.user.example", Result: "fail", Reason: "127.0.0.8 is not permitted by the record"},
			dmarc: store.DMARCCheck{FromDomain: "user.example", RecordDomain: "user.example", Policy: "reject", Result: "fail", SPFAlignment: "relaxed", DKIMAlignment: "relaxed", Reason: "neither a passing SPF nor a passing DKIM identity is aligned with user.example"},
			dkimN: 1, arc: store.ARCCheck{Result: "none"}},
		{name: "strict alignment: a subdomain's SPF and DKIM do not align",
			env: env("x.invalid", "b@bounce.strict.example"), msg: message("jane@strict.example"),
			sigs:  []store.Signature{dkim("mail.strict.example", "pass", "")},
			spf:   store.SPFCheck{Domain: "bounce.strict.example", Result: "pass"},
			helo:  store.SPFCheck{Domain: "x.invalid", Result: "none", Reason: "no SPF record"},
			dmarc: store.DMARCCheck{FromDomain: "strict.example", RecordDomain: "strict.example", Policy: "quarantine", Result: "fail", SPFAlignment: "strict", DKIMAlignment: "strict", Reason: "neither a passing SPF nor a passing DKIM identity is aligned with strict.example"},
			dkimN: 1, arc: store.ARCCheck{Result: "none"}},
		{name: "the organizational domain's record, sp=",
			env: env("x.invalid", "a@dept.org.example"), msg: message("a@dept.org.example"),
			spf:   store.SPFCheck{Domain: "dept.org.example", Result: "pass"},
			helo:  store.SPFCheck{Domain: "x.invalid", Result: "none", Reason: "no SPF record"},
			dmarc: store.DMARCCheck{FromDomain: "dept.org.example", RecordDomain: "org.example", Policy: "reject", Result: "pass", SPFAlignment: "relaxed", DKIMAlignment: "relaxed", SPFAligned: true},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "softfail, no DMARC record",
			env: env("x.invalid", "a@soft.example"), msg: message("a@soft.example"),
			spf:   store.SPFCheck{Domain: "soft.example", Result: "softfail", Reason: "127.0.0.9 is not permitted by the record"},
			helo:  store.SPFCheck{Domain: "x.invalid", Result: "none", Reason: "no SPF record"},
			dmarc: store.DMARCCheck{FromDomain: "soft.example", Result: "none", Reason: "no DMARC record"},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "null sender: MAIL FROM is postmaster@HELO",
			env: env("mail.user.example", ""), msg: message("jane@user.example"),
			spf:   store.SPFCheck{Domain: "mail.user.example", Result: "pass"},
			helo:  store.SPFCheck{Domain: "mail.user.example", Result: "pass"},
			dmarc: store.DMARCCheck{FromDomain: "user.example", RecordDomain: "user.example", Policy: "reject", Result: "pass", SPFAlignment: "relaxed", DKIMAlignment: "relaxed", SPFAligned: true},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "more than 10 look-ups: permerror",
			env: env("x.invalid", "a@many.example"), msg: message("a@many.example"),
			spf:   store.SPFCheck{Domain: "many.example", Result: "permerror", Reason: "more than 10 DNS look-ups (RFC 7208 §4.6.4)"},
			helo:  store.SPFCheck{Domain: "x.invalid", Result: "none", Reason: "no SPF record"},
			dmarc: store.DMARCCheck{FromDomain: "many.example", Result: "none", Reason: "no DMARC record"},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "more than 2 void look-ups: permerror",
			env: env("x.invalid", "a@void.example"), msg: message("a@void.example"),
			spf:   store.SPFCheck{Domain: "void.example", Result: "permerror", Reason: "more than 2 void DNS look-ups (RFC 7208 §4.6.4)"},
			helo:  store.SPFCheck{Domain: "x.invalid", Result: "none", Reason: "no SPF record"},
			dmarc: store.DMARCCheck{FromDomain: "void.example", Result: "none", Reason: "no DMARC record"},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "two SPF records: permerror",
			env: env("x.invalid", "a@two.example"), msg: message("a@two.example"),
			spf:   store.SPFCheck{Domain: "two.example", Result: "permerror", Reason: "more than one SPF record (RFC 7208 §4.5)"},
			helo:  store.SPFCheck{Domain: "x.invalid", Result: "none", Reason: "no SPF record"},
			dmarc: store.DMARCCheck{FromDomain: "two.example", Result: "none", Reason: "no DMARC record"},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "DNS failure: temperror",
			env: env("x.invalid", "a@down.example"), msg: message("a@down.example"),
			spf:   store.SPFCheck{Domain: "down.example", Result: "temperror"},
			helo:  store.SPFCheck{Domain: "x.invalid", Result: "none", Reason: "no SPF record"},
			dmarc: store.DMARCCheck{FromDomain: "down.example", Result: "temperror"},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "invalid DMARC record: permerror",
			env: env("x.invalid", "a@bad.example"), msg: message("a@bad.example"),
			spf:   store.SPFCheck{Domain: "bad.example", Result: "none", Reason: "no SPF record"},
			helo:  store.SPFCheck{Domain: "x.invalid", Result: "none", Reason: "no SPF record"},
			dmarc: store.DMARCCheck{FromDomain: "bad.example", RecordDomain: "bad.example", Result: "permerror", Reason: "invalid DMARC record: invalid policy for parameter 'p'"},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "two From addresses: DMARC permerror",
			env: env("mail.user.example", "jane@user.example"), msg: []byte("From: a@user.example, b@user.example\r\n\r\nx\r\n"),
			spf:   store.SPFCheck{Domain: "user.example", Result: "pass"},
			helo:  store.SPFCheck{Domain: "mail.user.example", Result: "pass"},
			dmarc: store.DMARCCheck{Result: "permerror", Reason: mailauth.ErrFromAddresses.Error()},
			arc:   store.ARCCheck{Result: "none"}},
		{name: "malformed header: DMARC permerror, the line quoted printable",
			env: env("mail.user.example", "jane@user.example"), msg: []byte("From: a@user.example\r\nBad\x1b[2J header\r\n\r\nx\r\n"),
			spf:   store.SPFCheck{Domain: "user.example", Result: "pass"},
			helo:  store.SPFCheck{Domain: "mail.user.example", Result: "pass"},
			dmarc: store.DMARCCheck{Result: "permerror", Reason: "unreadable header: malformed header line: Bad?[2J header"},
			arc:   store.ARCCheck{Result: "none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := mailauth.Evaluate(t.Context(), res, tc.env, tc.msg, tc.sigs)
			// temperror reasons carry the resolver's text; compare the
			// result and that there is a reason.
			if tc.spf.Result == "temperror" {
				if !strings.HasPrefix(a.SPFMailFrom.Reason, "DNS failure: down.example. TXT: ") {
					t.Errorf("SPF %+v: not the DNS failure", a.SPFMailFrom)
				}
				a.SPFMailFrom.Reason = ""
			}
			if tc.dmarc.Result == "temperror" {
				if a.DMARC.Reason == "" {
					t.Errorf("DMARC %+v: no reason", a.DMARC)
				}
				a.DMARC.Reason = ""
			}
			if a.SPFMailFrom != tc.spf {
				t.Errorf("SPF MAIL FROM\n %+v, want\n %+v", a.SPFMailFrom, tc.spf)
			}
			if a.SPFHELO != tc.helo {
				t.Errorf("SPF HELO\n %+v, want\n %+v", a.SPFHELO, tc.helo)
			}
			if a.DMARC != tc.dmarc {
				t.Errorf("DMARC\n %+v, want\n %+v", a.DMARC, tc.dmarc)
			}
			if len(a.DKIM) != tc.dkimN || a.ARC != tc.arc {
				t.Errorf("DKIM %+v ARC %+v, want %d DKIM, ARC %+v", a.DKIM, a.ARC, tc.dkimN, tc.arc)
			}
		})
	}
}

func TestEvaluateWithoutResolver(t *testing.T) {
	a := mailauth.Evaluate(t.Context(), nil, mailauth.Envelope{Client: netip.MustParseAddr(client), HELO: "mail.user.example", MailFrom: "a@user.example"},
		message("a@user.example"), nil)
	want := store.Authentication{DKIM: []store.Signature{},
		SPFMailFrom: store.SPFCheck{Domain: "user.example", Result: "temperror", Reason: "no resolver configured"},
		SPFHELO:     store.SPFCheck{Domain: "mail.user.example", Result: "temperror", Reason: "no resolver configured"},
		DMARC:       store.DMARCCheck{FromDomain: "user.example", Result: "temperror", Reason: "no resolver configured"},
		ARC:         store.ARCCheck{Result: "none"}}
	if !reflect.DeepEqual(a, want) {
		t.Errorf("%+v, want %+v", a, want)
	}
}

func TestFromDomain(t *testing.T) {
	for _, tc := range []struct {
		msg, want string
		err       error
	}{
		{"From: Jane <Jane@Example.ORG>\r\n\r\n", "example.org", nil},
		{"Subject: x\r\n\r\n", "", mailauth.ErrNoFrom},
		{"From: a@x.example\r\nFrom: b@y.example\r\n\r\n", "", mailauth.ErrManyFrom},
		{"From: a@x.example, b@x.example\r\n\r\n", "", mailauth.ErrFromAddresses},
		{"From: undisclosed:;\r\n\r\n", "", mailauth.ErrFromAddresses},
		{"From: a@[192.0.2.1]\r\n\r\n", "", mailauth.ErrFromDomain},
		{"From: a@localhost\r\n\r\n", "", mailauth.ErrFromDomain},
	} {
		got, err := mailauth.FromDomain([]byte(tc.msg))
		if got != tc.want || (tc.err == nil) != (err == nil) || tc.err != nil && err != tc.err {
			t.Errorf("%q: %q, %v; want %q, %v", tc.msg, got, err, tc.want, tc.err)
		}
	}
}

func TestOrgDomain(t *testing.T) {
	for in, want := range map[string]string{
		"mail.user.example": "user.example", "a.b.example.co.uk": "example.co.uk", "Example.ORG.": "example.org", "co.uk": "co.uk",
	} {
		if got := mailauth.OrgDomain(in); got != want {
			t.Errorf("OrgDomain(%q) = %q, want %q", in, got, want)
		}
	}
}
