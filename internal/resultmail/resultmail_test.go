package resultmail_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/resultsend"
	"github.com/mailsec/mailsec/internal/sender"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// The unit tests here run the mailer against a scripted DNS server (the
// user's domain: SPF, MX) and a go-smtp server as the user's receiving
// MTA, both on loopback; the mail goes through the real internal/sender.

type scriptedDNS struct {
	mu  sync.Mutex
	rrs map[string][]dns.RR // "name./TYPE"
	bad map[string]int      // rcode overrides
}

func startDNS(t *testing.T) (*scriptedDNS, *resolver.Resolver) {
	t.Helper()
	f := &scriptedDNS{rrs: map[string][]dns.RR{}, bad: map[string]int{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		q := r.Question[0]
		m := new(dns.Msg)
		m.SetReply(r)
		key := strings.ToLower(q.Name) + "/" + dns.TypeToString[q.Qtype]
		f.mu.Lock()
		m.Answer = f.rrs[key]
		if rc, ok := f.bad[key]; ok {
			m.Rcode = rc
		} else if m.Answer == nil && !f.nameExists(strings.ToLower(q.Name)) {
			m.Rcode = dns.RcodeNameError
		}
		f.mu.Unlock()
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	res, err := resolver.New(pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	return f, res
}

func (f *scriptedDNS) nameExists(name string) bool {
	for k := range f.rrs {
		if strings.HasPrefix(k, name+"/") {
			return true
		}
	}
	return false
}

func (f *scriptedDNS) set(t *testing.T, records ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		k := strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
		f.rrs[k] = append(f.rrs[k], rr)
	}
}

// mta is the user's receiving MTA: go-smtp, answering per the reply
// function (nil error: 250).
type mta struct {
	mu    sync.Mutex
	mails [][]byte
	from  []string
	rcpt  []string
	reply func() error
	addr  netip.AddrPort
}

func (m *mta) NewSession(*smtp.Conn) (smtp.Session, error) { return &mtaSession{m: m}, nil }

type mtaSession struct{ m *mta }

func (s *mtaSession) Reset()        {}
func (s *mtaSession) Logout() error { return nil }
func (s *mtaSession) Mail(from string, _ *smtp.MailOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.from = append(s.m.from, from)
	return nil
}
func (s *mtaSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.rcpt = append(s.m.rcpt, to)
	return nil
}
func (s *mtaSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	if s.m.reply != nil {
		if err := s.m.reply(); err != nil {
			return err
		}
	}
	s.m.mails = append(s.m.mails, b)
	return nil
}

func startMTA(t *testing.T) *mta {
	t.Helper()
	m := &mta{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(m)
	srv.Domain = "mx.user.example"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	m.addr = l.Addr().(*net.TCPAddr).AddrPort()
	return m
}

func (m *mta) received() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.mails...)
}

type fixture struct {
	st    *store.Store
	dns   *scriptedDNS
	res   *resolver.Resolver
	mta   *mta
	now   time.Time
	key   *rsa.PrivateKey
	mailr *resultmail.Mailer
}

const userAddr = "jane.doe@user.example"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, now: time.Now().UTC()}
	f.dns, f.res = startDNS(t)
	f.mta = startMTA(t)
	f.dns.set(t, "user.example. 60 IN MX 10 mx.user.example.", "mx.user.example. 60 IN A 127.0.0.1")
	key, err := resultmail.LoadOrCreateKey(filepath.Join(t.TempDir(), "dkim.pem"))
	if err != nil {
		t.Fatal(err)
	}
	f.key = key.(*rsa.PrivateKey)
	f.mailr = f.newMailer(t)
	return f
}

func (f *fixture) newMailer(t *testing.T) *resultmail.Mailer {
	t.Helper()
	send, err := resultsend.New(sender.Options{Hostname: "mx7.b.mailtest.example",
		Resolver: f.res, SMTPPort: int(f.mta.addr.Port()), ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second,
		DataTimeout: 10 * time.Second, PolicyTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	m, err := resultmail.New(resultmail.Options{
		Source:   resultmail.Source{Store: f.st, ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example", Quiet: time.Minute, PrefixV4: 24, PrefixV6: 48, BaseURL: "https://mailsec.example"},
		Identity: resultmail.Identity{From: "results@a.mailtest.example", Name: "mailsec", Domain: "a.mailtest.example", Selector: "mailsec1", Key: f.key},
		Send:     send, DNS: f.res, Expiry: time.Hour, RateLimit: 2, RateWindow: time.Hour,
		RetryBase: time.Minute, MaxAttempts: 3, Now: func() time.Time { return f.now },
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// addTest stores an acknowledged test from userAddr with one delivered
// connection from client; dkimDomain "" for none.
func (f *fixture) addTest(t *testing.T, id, client, dkimDomain string) store.Test {
	t.Helper()
	created := f.now.Add(-10 * time.Minute)
	tt := store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, Sender: userAddr, State: store.TestAcked, Acked: created.Add(time.Minute)}
	if err := f.st.CreateTest(t.Context(), tt); err != nil {
		t.Fatal(err)
	}
	c := store.SMTPConnection{TestID: id, Started: created.Add(time.Minute), Ended: created.Add(time.Minute + time.Second),
		Client: netip.AddrPortFrom(netip.MustParseAddr(client), 4000), EHLO: "mail.user.example", Persona: 4, SNI: "mx4.a.mailtest.example",
		TLSVersion: "TLS 1.3", CertPersona: 4, State: store.StateAcked, MailFrom: userAddr, RcptTo: []string{"t-" + id + "@a.mailtest.example"}}
	if dkimDomain != "" {
		c.Signatures = []store.Signature{{Type: "dkim", Domain: dkimDomain, Selector: "s", Result: "pass"}}
	}
	if err := f.st.InsertConnection(t.Context(), &c); err != nil {
		t.Fatal(err)
	}
	return tt
}

func (f *fixture) verifyDKIM(t *testing.T, msg []byte) {
	t.Helper()
	rec, err := resultmail.DNSRecord(f.key)
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
}

func TestSPFPassSendsSignedMail(t *testing.T) {
	f := newFixture(t)
	f.dns.set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
	f.addTest(t, "spfpass", "127.0.0.9", "")
	f.mailr.Tick(t.Context())

	mails := f.mta.received()
	if len(mails) != 1 {
		t.Fatalf("%d mails received, want 1", len(mails))
	}
	msg := mails[0]
	f.verifyDKIM(t, msg)
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
	if f.mta.from[0] != "results@a.mailtest.example" || f.mta.rcpt[0] != userAddr {
		t.Errorf("envelope %v -> %v", f.mta.from, f.mta.rcpt)
	}
	r, err := f.st.Result(t.Context(), "spfpass")
	if err != nil || r.MailState != store.MailSent || r.Recipient != "" || !strings.Contains(r.DeliveredTo, "mx.user.example") || r.Attempts != 1 {
		t.Fatalf("result %+v %v", r, err)
	}
	if tt, _ := f.st.Test(t.Context(), "spfpass"); tt.State != store.TestFinal {
		t.Errorf("test state %s", tt.State)
	}
}

func TestAlignedDKIMSendsMail(t *testing.T) {
	f := newFixture(t)
	// SPF fails, but the mail carried a valid signature of a subdomain of
	// the sender's organizational domain (relaxed alignment).
	f.dns.set(t, `user.example. 60 IN TXT "v=spf1 -all"`)
	f.addTest(t, "dkimok", "127.0.0.9", "mail.user.example")
	f.mailr.Tick(t.Context())
	if n := len(f.mta.received()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
}

func TestUnauthenticatedIsWithheld(t *testing.T) {
	f := newFixture(t)
	f.dns.set(t, `user.example. 60 IN TXT "v=spf1 ip4:192.0.2.1 -all"`)
	// A signature of another domain does not count.
	f.addTest(t, "forged", "127.0.0.9", "other.example")
	f.mailr.Tick(t.Context())
	if n := len(f.mta.received()); n != 0 {
		t.Fatalf("%d mails sent to an unauthenticated sender", n)
	}
	r, err := f.st.Result(t.Context(), "forged")
	if err != nil || r.MailState != store.MailWithheld || !strings.Contains(r.MailReason, "SPF fail") || strings.Contains(r.MailReason, "jane") {
		t.Fatalf("result %+v %v", r, err)
	}
}

func TestRetriesSurviveRestart(t *testing.T) {
	f := newFixture(t)
	f.dns.set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`)
	f.addTest(t, "retry", "127.0.0.9", "")
	f.mta.reply = func() error {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	f.mailr.Tick(t.Context())
	r, _ := f.st.Result(t.Context(), "retry")
	if r.MailState != store.MailPending || r.Attempts != 1 || !r.Next.Equal(f.now.Add(time.Minute)) || len(r.Message) == 0 {
		t.Fatalf("after a 451: %+v", r)
	}
	// Not due yet: nothing happens.
	f.mailr.Tick(t.Context())
	if r2, _ := f.st.Result(t.Context(), "retry"); r2.Attempts != 1 {
		t.Fatalf("retried before the backoff: %d attempts", r2.Attempts)
	}
	// A new mailer (a restart) on the same store, a minute later.
	f.mta.reply = nil
	f.now = f.now.Add(time.Minute)
	f.newMailer(t).Tick(t.Context())
	r, _ = f.st.Result(t.Context(), "retry")
	if r.MailState != store.MailSent || r.Attempts != 2 {
		t.Fatalf("after the restart: %+v", r)
	}
	atts, _ := f.st.MailAttempts(t.Context(), "retry")
	if len(atts) != 2 || atts[0].Status != "deferred" || atts[1].Status != "delivered" {
		t.Fatalf("attempts %+v", atts)
	}
	// The retry sent the very message of the first attempt.
	f.verifyDKIM(t, f.mta.received()[0])
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	f := newFixture(t)
	f.dns.set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`)
	f.addTest(t, "giveup", "127.0.0.9", "")
	f.mta.reply = func() error {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	for range 5 {
		f.mailr.Tick(t.Context())
		f.now = f.now.Add(time.Hour)
	}
	r, _ := f.st.Result(t.Context(), "giveup")
	if r.MailState != store.MailFailed || r.Attempts != 3 || r.Recipient != "" {
		t.Fatalf("%+v", r)
	}
}

func TestRateLimitPerDomain(t *testing.T) {
	f := newFixture(t)
	f.dns.set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`)
	for _, id := range []string{"rl1", "rl2", "rl3"} {
		f.addTest(t, id, "127.0.0.9", "")
	}
	f.mailr.Tick(t.Context())
	if n := len(f.mta.received()); n != 2 {
		t.Fatalf("%d mails in the window, want the limit 2", n)
	}
	r, _ := f.st.Result(t.Context(), "rl3")
	if r.MailState != store.MailPending || r.Attempts != 0 || !strings.HasPrefix(r.MailReason, "waiting") {
		t.Fatalf("third: %+v", r)
	}
	f.now = f.now.Add(2 * time.Hour)
	f.mailr.Tick(t.Context())
	if n := len(f.mta.received()); n != 3 {
		t.Fatalf("%d mails after the window, want 3", n)
	}
}

func TestIsFinal(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	conn := store.SMTPConnection{Started: t0.Add(time.Minute), Ended: t0.Add(2 * time.Minute)}
	open := store.SMTPConnection{Started: t0.Add(time.Minute)}
	acked := store.Test{Created: t0, State: store.TestAcked, Acked: t0.Add(2 * time.Minute)}
	pending := store.Test{Created: t0, State: store.TestOpen}
	complete := verdict.Verdict{Complete: true, Candidates: []verdict.Policy{verdict.PolicyDANE, verdict.PolicyDANEMTASTS}}
	single := verdict.Verdict{Complete: true, Candidates: []verdict.Policy{verdict.PolicyVerify}}
	q, exp := 10*time.Minute, time.Hour
	for _, c := range []struct {
		name  string
		t     store.Test
		conns []store.SMTPConnection
		v     verdict.Verdict
		now   time.Time
		want  bool
	}{
		{"no mail yet", pending, nil, verdict.Verdict{}, t0.Add(30 * time.Minute), false},
		{"no mail ever", pending, nil, verdict.Verdict{}, t0.Add(exp), true},
		{"acked and quiet", acked, []store.SMTPConnection{conn}, complete, t0.Add(12 * time.Minute), true},
		{"acked, not quiet", acked, []store.SMTPConnection{conn}, complete, t0.Add(5 * time.Minute), false},
		{"451 given, several candidates", pending, []store.SMTPConnection{conn}, complete, t0.Add(30 * time.Minute), false},
		{"451 given, one candidate", pending, []store.SMTPConnection{conn}, single, t0.Add(30 * time.Minute), true},
		{"connection open", acked, []store.SMTPConnection{open}, complete, t0.Add(30 * time.Minute), false},
		{"expired", pending, []store.SMTPConnection{conn}, verdict.Verdict{}, t0.Add(2*time.Minute + exp), true},
	} {
		if got := resultmail.IsFinal(c.t, c.conns, c.v, c.now, q, exp); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
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
