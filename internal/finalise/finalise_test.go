package finalise_test

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/finalise"
	"github.com/mailsec/mailsec/internal/mailauth"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
	"github.com/mailsec/mailsec/internal/verdict"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

const userAddr = "jane.doe@user.example"

type fixture struct {
	st  *store.Store
	res *resolver.Resolver
	dns *peertest.ScriptedDNS
	now time.Time
}

func newFixture(t *testing.T, driver string) *fixture {
	t.Helper()
	var err error
	f := &fixture{st: storetest.Open(t, driver), dns: peertest.StartDNS(t), now: t0.Add(30 * time.Minute)}
	if f.res, err = resolver.New(f.dns.Addr); err != nil {
		t.Fatal(err)
	}
	f.dns.Set(t, `user.example. 60 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`)
	return f
}

func (f *fixture) finaliser(t *testing.T, mail bool, providers ...string) *finalise.Finaliser {
	t.Helper()
	o := finalise.Options{Store: f.st, Evidence: evidence.Gatherer{Store: f.st, Rules: evidence.Rules{Quiet: 10 * time.Minute, TestExpiry: 24 * time.Hour}},
		Providers: providers, Now: func() time.Time { return f.now }}
	if mail {
		o.MailEnabled = true
	}
	fin, err := finalise.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return fin
}

func (f *fixture) addTest(t *testing.T, tt store.Test) store.Test {
	t.Helper()
	if err := f.st.CreateTest(t.Context(), tt); err != nil {
		t.Fatal(err)
	}
	return tt
}

func (f *fixture) addConn(t *testing.T, c store.SMTPConnection) {
	t.Helper()
	if c.Ended.IsZero() {
		c.Ended = c.Started.Add(time.Second)
	}
	if c.Client == (netip.AddrPort{}) {
		c.Client = netip.MustParseAddrPort("192.0.2.7:40000")
	}
	c.EHLO = "mta.user.example"
	if c.MailFrom != "" && c.Authentication == nil {
		// What smtpd does when the mail arrives: one evaluation, stored.
		a := mailauth.Evaluate(t.Context(), f.res, mailauth.Envelope{Client: c.Client.Addr(), HELO: c.EHLO, MailFrom: c.MailFrom},
			[]byte("From: <"+c.MailFrom+">\r\n\r\nbody\r\n"), c.Signatures)
		c.Authentication = &a
	}
	if err := f.st.InsertConnection(t.Context(), &c); err != nil {
		t.Fatal(err)
	}
}

// delivered is a mail for A delivered over TLS to persona p.
func delivered(id string, p int, at time.Time) store.SMTPConnection {
	return store.SMTPConnection{TestID: id, Started: at, Persona: p, CertPersona: p, SNI: "mx.a.mailtest.example", STARTTLSOffered: true,
		TLSVersion: "TLS 1.3", State: store.StateAcked, MailFrom: userAddr, RcptTo: []string{"t-" + id + "@a.mailtest.example"}}
}

func TestFinaliseTiesBeforeFreezing(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		fin := f.finaliser(t, false)
		tt := f.addTest(t, store.Test{ID: "tie", Created: t0, Updated: t0, Kind: store.TestToken, Sender: userAddr, State: store.TestAcked, Acked: t0.Add(2 * time.Minute)})
		f.addConn(t, delivered("tie", 4, t0.Add(time.Minute)))
		// A refused persona 5 of the same client, before any RCPT (untied);
		// and one of another client, which stays untied.
		refused := store.SMTPConnection{Started: t0.Add(90 * time.Second), Persona: 5, CertPersona: 5, SNI: "mx5.a.mailtest.example", STARTTLSOffered: true, State: store.StateSniSeen}
		f.addConn(t, refused)
		refused.Client = netip.MustParseAddrPort("198.51.100.1:1")
		f.addConn(t, refused)

		ok, err := fin.Finalise(t.Context(), tt, false)
		if err != nil || !ok {
			t.Fatalf("finalised %v, %v", ok, err)
		}
		conns, err := f.st.Connections(t.Context(), store.ConnectionFilter{TestID: "tie"})
		if err != nil || len(conns) != 2 {
			t.Fatalf("the test has %d connections (%v), want its own and the tied one", len(conns), err)
		}
		r, err := f.st.Result(t.Context(), "tie")
		if err != nil {
			t.Fatal(err)
		}
		var v verdict.Verdict
		if err := json.Unmarshal(r.Verdict, &v); err != nil {
			t.Fatal(err)
		}
		if v.Seen["persona 5"] != "R" {
			t.Errorf("the frozen verdict does not see the tied refusal: %v", v.Seen)
		}
		if r.MailState != store.MailNone || !strings.Contains(r.MailReason, "turned off") {
			t.Errorf("mail %s %q, want none: turned off", r.MailState, r.MailReason)
		}
		if tt, _ := f.st.Test(t.Context(), "tie"); tt.State != store.TestFinal {
			t.Errorf("test state %s", tt.State)
		}
		// Once final, it stays as frozen.
		if ok, err := fin.Finalise(t.Context(), tt, true); ok || err != nil {
			t.Errorf("finalised twice: %v %v", ok, err)
		}
	})
}

func TestFinaliseDue(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		fin := f.finaliser(t, true)
		// Acknowledged and quiet: final; SPF passes, so the mail is pending.
		f.addTest(t, store.Test{ID: "done", Created: t0, Updated: t0, Kind: store.TestToken, Sender: userAddr, State: store.TestAcked, Acked: t0.Add(2 * time.Minute)})
		f.addConn(t, delivered("done", 4, t0.Add(time.Minute)))
		// Answered 451 a minute ago: not quiet yet.
		f.addTest(t, store.Test{ID: "busy", Created: t0, Updated: t0, Kind: store.TestToken, Sender: userAddr, State: store.TestOpen})
		c := delivered("busy", 4, f.now.Add(-time.Minute))
		c.State = store.StateMail
		f.addConn(t, c)
		// Nothing yet.
		f.addTest(t, store.Test{ID: "empty", Created: t0, Updated: t0, Kind: store.TestToken, State: store.TestOpen})

		n, err := fin.FinaliseDue(t.Context())
		if err != nil || n != 1 {
			t.Fatalf("finalised %d (%v), want 1", n, err)
		}
		r, err := f.st.Result(t.Context(), "done")
		if err != nil || r.MailState != store.MailPending || r.Recipient != userAddr || !r.Next.Equal(f.now) || !strings.Contains(r.MailReason, "SPF pass") {
			t.Fatalf("result %+v %v", r, err)
		}
		for _, id := range []string{"busy", "empty"} {
			if _, err := f.st.Result(t.Context(), id); err == nil {
				t.Errorf("%s finalised", id)
			}
		}
		// A day later (test_expiry) everything is final.
		f.now = f.now.Add(24 * time.Hour)
		if n, err := fin.FinaliseDue(t.Context()); err != nil || n != 2 {
			t.Fatalf("after the expiry: %d %v", n, err)
		}
	})
}

// TestFinaliseSPFTempError: SPF is evaluated once, when the mail came; a
// temperror then withholds the result mail and says why.
func TestFinaliseSPFTempError(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Fail("user.example", "TXT", dns.RcodeServerFailure)
		fin := f.finaliser(t, true)
		tt := f.addTest(t, store.Test{ID: "temp", Created: t0, Updated: t0, Kind: store.TestToken, Sender: userAddr, State: store.TestAcked, Acked: t0.Add(2 * time.Minute)})
		f.addConn(t, delivered("temp", 4, t0.Add(time.Minute)))
		f.now = t0.Add(15 * time.Minute)
		if ok, err := fin.Finalise(t.Context(), tt, false); !ok || err != nil {
			t.Fatalf("not finalised: %v %v", ok, err)
		}
		r, _ := f.st.Result(t.Context(), "temp")
		if r.MailState != store.MailWithheld || !strings.Contains(r.MailReason, "SPF temperror for user.example") {
			t.Fatalf("result %+v", r)
		}
	})
}

// TestFinaliseProviderHistory: the verdict of a test whose sender
// authenticated a domain of web.providers goes into the provider's
// history with the result; an unauthenticated sender in the same domain
// (anyone can write its MAIL FROM) and a domain that is no provider add
// nothing.
func TestFinaliseProviderHistory(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Set(t, `other.example. 60 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`)
		fin := f.finaliser(t, false, "User.Example.")
		add := func(id, sender, client string) {
			t.Helper()
			f.addTest(t, store.Test{ID: id, Created: t0, Updated: t0, Kind: store.TestToken, Sender: sender, State: store.TestAcked, Acked: t0.Add(2 * time.Minute)})
			c := delivered(id, 4, t0.Add(time.Minute))
			c.MailFrom, c.Client = sender, netip.MustParseAddrPort(client)
			f.addConn(t, c)
		}
		add("prov", userAddr, "192.0.2.7:40000")
		add("forged", userAddr, "198.51.100.9:40000") // SPF fails
		add("other", "x@other.example", "192.0.2.8:40000")
		if n, err := fin.FinaliseDue(t.Context()); err != nil || n != 3 {
			t.Fatalf("finalised %d (%v), want 3", n, err)
		}
		h, err := f.st.ProviderHistory(t.Context(), "user.example", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 1 || h[0].TestID != "prov" || h[0].Policy == "" || h[0].Colour == "" || !h[0].Final.Equal(f.now) {
			t.Fatalf("history of user.example: %+v, want the one authenticated test", h)
		}
		if h, _ := f.st.ProviderHistory(t.Context(), "other.example", 0); len(h) != 0 {
			t.Errorf("a domain that is no provider has a history: %+v", h)
		}
	})
}

func TestNewChecks(t *testing.T) {
	if _, err := finalise.New(finalise.Options{}); err == nil {
		t.Error("no store accepted")
	}
}
