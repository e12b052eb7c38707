package delivery_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"github.com/mailsec/mailsec/internal/delivery"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/finalise"
	"github.com/mailsec/mailsec/internal/mailauth"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/reportsource"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/sender"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
	"github.com/mailsec/mailsec/internal/web"
)

// These tests run the finaliser and the deliverer as the service does,
// against a scripted DNS server (the users' domains: SPF, MX), a go-smtp
// server as the user's receiving MTA and, for the slow recipient, a TCP
// listener that accepts and never answers; all on loopback, the mail going
// through the real internal/sender.

// mta is the user's receiving MTA: go-smtp, answering per the reply
// function (nil error: 250).
type mta struct {
	mu    sync.Mutex
	mails [][]byte
	from  []string
	rcpt  []string
	reply func() error
	addr  string
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
	m.addr = l.Addr().String()
	return m
}

func (m *mta) received() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.mails...)
}

func (m *mta) setReply(f func() error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reply = f
}

// tarpit accepts connections and never says a word (no greeting).
type tarpit struct {
	addr     string
	accepted atomic.Int64
	open     atomic.Int64
}

func startTarpit(t *testing.T) *tarpit {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tarpit{addr: l.Addr().String()}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			tp.accepted.Add(1)
			tp.open.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				// Read until the client gives up; answer nothing.
				_, _ = io.Copy(io.Discard, c)
				tp.open.Add(-1)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return tp
}

// The MX addresses of the scripted domains; the sender's Dial hook maps
// them to the listeners.
const (
	userMX   = "127.0.0.1"
	tarpitMX = "127.0.0.2"
	userAddr = "jane.doe@user.example"
	slowAddr = "joe@tarpit.example"
)

type fixture struct {
	st     *store.Store
	dns    *peertest.ScriptedDNS
	res    *resolver.Resolver
	mta    *mta
	tarpit *tarpit
	now    time.Time
	key    *rsa.PrivateKey
	send   delivery.SendFunc
	ev     evidence.Gatherer
}

func newFixture(t *testing.T, driver string) *fixture {
	t.Helper()
	var err error
	f := &fixture{st: storetest.Open(t, driver), now: time.Now().UTC(), mta: startMTA(t), tarpit: startTarpit(t)}
	f.dns = peertest.StartDNS(t)
	if f.res, err = resolver.New(f.dns.Addr); err != nil {
		t.Fatal(err)
	}
	f.dns.Set(t, "user.example. 60 IN MX 10 mx.user.example.", "mx.user.example. 60 IN A "+userMX,
		"tarpit.example. 60 IN MX 10 mx.tarpit.example.", "mx.tarpit.example. 60 IN A "+tarpitMX,
		`tarpit.example. 60 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
	key, err := resultmail.LoadOrCreateKey(filepath.Join(t.TempDir(), "dkim.pem"))
	if err != nil {
		t.Fatal(err)
	}
	f.key = key.(*rsa.PrivateKey)
	var d net.Dialer
	f.send, err = delivery.NewSender(sender.Options{Hostname: "mx7.b.mailtest.example", Resolver: f.res,
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			if host == tarpitMX {
				return d.DialContext(ctx, network, f.tarpit.addr)
			}
			return d.DialContext(ctx, network, f.mta.addr)
		},
		ConnectTimeout: 5 * time.Second, CommandTimeout: 30 * time.Second, DataTimeout: 30 * time.Second, PolicyTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	f.ev = evidence.Gatherer{Store: f.st, Rules: evidence.Rules{Quiet: time.Minute, TestExpiry: time.Hour}}
	return f
}

func (f *fixture) clock() time.Time { return f.now }

func (f *fixture) finaliser(t *testing.T, now func() time.Time, interval time.Duration) *finalise.Finaliser {
	t.Helper()
	fin, err := finalise.New(finalise.Options{Store: f.st, Evidence: f.ev, MailEnabled: true, Now: now, Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return fin
}

func (f *fixture) deliverer(t *testing.T, now func() time.Time, tweak func(*delivery.Options)) *delivery.Deliverer {
	t.Helper()
	o := delivery.Options{
		Store:    f.st,
		Source:   reportsource.Source{Store: f.st, Evidence: f.ev, ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example", BaseURL: "https://mailsec.example"},
		Identity: resultmail.Identity{From: "results@a.mailtest.example", Name: "mailsec", Domain: "a.mailtest.example", Selector: "mailsec1", Key: f.key},
		Send:     f.send, RateLimit: 2, RateWindow: time.Hour, RetryBase: time.Minute, MaxAttempts: 3, Now: now,
	}
	if tweak != nil {
		tweak(&o)
	}
	d, err := delivery.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// round is one round of both loops, on the fixture's clock.
func (f *fixture) round(t *testing.T) {
	t.Helper()
	if _, err := f.finaliser(t, f.clock, 0).FinaliseDue(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.deliverer(t, f.clock, nil).SendDue(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// addTest stores an acknowledged test from sender with one delivered
// connection from client, ten minutes before now; dkimDomain "" for none.
func (f *fixture) addTest(t *testing.T, id, from, client, dkimDomain string, now time.Time) store.Test {
	t.Helper()
	created := now.Add(-10 * time.Minute)
	tt := store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, Sender: from, State: store.TestAcked, Acked: created.Add(time.Minute)}
	c := store.SMTPConnection{TestID: id, Started: created.Add(time.Minute), Ended: created.Add(time.Minute + time.Second),
		Client: netip.AddrPortFrom(netip.MustParseAddr(client), 4000), EHLO: "mail.user.example", Persona: 4, SNI: "mx4.a.mailtest.example",
		TLSVersion: "TLS 1.3", CertPersona: 4, State: store.StateAcked, MailFrom: from, RcptTo: []string{"t-" + id + "@a.mailtest.example"}}
	if dkimDomain != "" {
		c.Signatures = []store.Signature{{Type: "dkim", Domain: dkimDomain, Selector: "s", Result: "pass"}}
	}
	// What smtpd does when the mail arrives: one evaluation, stored.
	a := mailauth.Evaluate(t.Context(), f.res, mailauth.Envelope{Client: c.Client.Addr(), HELO: c.EHLO, MailFrom: from},
		[]byte("From: <"+from+">\r\n\r\nbody\r\n"), c.Signatures)
	c.Authentication = &a
	// The connection before the test: a running finaliser that saw the
	// test without its mail would defer it by a quiet time.
	if err := f.st.InsertConnection(t.Context(), &c); err != nil {
		t.Fatal(err)
	}
	if err := f.st.CreateTest(t.Context(), tt); err != nil {
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
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
		f.addTest(t, "spfpass", userAddr, "127.0.0.9", "", f.now)
		f.round(t)

		mails := f.mta.received()
		if len(mails) != 1 {
			t.Fatalf("%d mails received, want 1", len(mails))
		}
		msg := mails[0]
		f.verifyDKIM(t, msg)
		s := string(msg)
		for _, want := range []string{"multipart/alternative", "Auto-Submitted: auto-replied", "To: <" + userAddr + ">",
			"From: mailsec <results@a.mailtest.example>", "j***@user.example"} {
			if !strings.Contains(s, want) {
				t.Errorf("message lacks %q", want)
			}
		}
		// The link opens the test by a key made for the mail, not by its id.
		f.linkOpens(t, msg, "spfpass")
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
		// Sent: the stored copy keeps the link, not the key.
		if key := mailKey(t, msg); strings.Contains(unfoldQP(r.Message), key) || !strings.Contains(unfoldQP(r.Message), "https://mailsec.example/t/"+strings.Repeat("x", store.OwnerKeyLen)) {
			t.Errorf("the stored copy of a sent mail holds its key, or lost its link")
		}
	})
}

func TestAlignedDKIMSendsMail(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		// SPF fails, but the mail carried a valid signature of a subdomain of
		// the sender's organizational domain (relaxed alignment).
		f.dns.Set(t, `user.example. 60 IN TXT "v=spf1 -all"`)
		f.addTest(t, "dkimok", userAddr, "127.0.0.9", "mail.user.example", f.now)
		f.round(t)
		if n := len(f.mta.received()); n != 1 {
			t.Fatalf("%d mails, want 1", n)
		}
	})
}

func TestUnauthenticatedIsWithheld(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Set(t, `user.example. 60 IN TXT "v=spf1 ip4:192.0.2.1 -all"`)
		// A signature of another domain does not count.
		f.addTest(t, "forged", userAddr, "127.0.0.9", "other.example", f.now)
		f.round(t)
		if n := len(f.mta.received()); n != 0 {
			t.Fatalf("%d mails sent to an unauthenticated sender", n)
		}
		r, err := f.st.Result(t.Context(), "forged")
		if err != nil || r.MailState != store.MailWithheld || !strings.Contains(r.MailReason, "SPF fail") || strings.Contains(r.MailReason, "jane") {
			t.Fatalf("result %+v %v", r, err)
		}
	})
}

func TestRetriesSurviveRestart(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`)
		f.addTest(t, "retry", userAddr, "127.0.0.9", "", f.now)
		f.mta.setReply(func() error {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		})
		f.round(t)
		r, _ := f.st.Result(t.Context(), "retry")
		if r.MailState != store.MailPending || r.Attempts != 1 || !r.Next.Equal(f.now.Add(time.Minute)) || len(r.Message) == 0 {
			t.Fatalf("after a 451: %+v", r)
		}
		// Pending: the stored message is the one the retry sends, key and all.
		f.linkOpens(t, r.Message, "retry")
		// Not due yet: nothing happens.
		f.round(t)
		if r2, _ := f.st.Result(t.Context(), "retry"); r2.Attempts != 1 {
			t.Fatalf("retried before the backoff: %d attempts", r2.Attempts)
		}
		// New loops (a restart, as round makes them) on the same store, a
		// minute later.
		f.mta.setReply(nil)
		f.now = f.now.Add(time.Minute)
		f.round(t)
		r, _ = f.st.Result(t.Context(), "retry")
		if r.MailState != store.MailSent || r.Attempts != 2 {
			t.Fatalf("after the restart: %+v", r)
		}
		atts, _ := f.st.MailAttempts(t.Context(), "retry")
		if len(atts) != 2 || atts[0].Status != delivery.Deferred || atts[1].Status != delivery.Delivered {
			t.Fatalf("attempts %+v", atts)
		}
		// The retry sent the very message of the first attempt, its link
		// working.
		f.verifyDKIM(t, f.mta.received()[0])
		f.linkOpens(t, f.mta.received()[0], "retry")
		if keys, _ := f.st.OwnerKeys(t.Context(), "retry"); len(keys) != 1 || keys[0].Via != store.KeyResultMail {
			t.Errorf("owner keys %+v: want the one of the mail, made once", keys)
		}
	})
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`)
		f.addTest(t, "giveup", userAddr, "127.0.0.9", "", f.now)
		f.mta.setReply(func() error {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		})
		for range 5 {
			f.round(t)
			f.now = f.now.Add(time.Hour)
		}
		r, _ := f.st.Result(t.Context(), "giveup")
		if r.MailState != store.MailFailed || r.Attempts != 3 || r.Recipient != "" {
			t.Fatalf("%+v", r)
		}
	})
}

func TestRateLimitPerDomain(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.9 -all"`)
		for _, id := range []string{"rl1", "rl2", "rl3"} {
			f.addTest(t, id, userAddr, "127.0.0.9", "", f.now)
		}
		f.round(t)
		if n := len(f.mta.received()); n != 2 {
			t.Fatalf("%d mails in the window, want the limit 2", n)
		}
		waiting := 0
		for _, id := range []string{"rl1", "rl2", "rl3"} {
			r, _ := f.st.Result(t.Context(), id)
			if r.MailState == store.MailPending && r.Attempts == 0 && strings.HasPrefix(r.MailReason, "waiting") {
				waiting++
			}
		}
		if waiting != 1 {
			t.Fatalf("%d mails waiting for the rate limit, want 1", waiting)
		}
		f.now = f.now.Add(2 * time.Hour)
		f.round(t)
		if n := len(f.mta.received()); n != 3 {
			t.Fatalf("%d mails after the window, want 3", n)
		}
	})
}

func TestMailsOffSendNothing(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		d := f.deliverer(t, f.clock, func(o *delivery.Options) { o.Identity.Key = nil })
		if n, err := d.SendDue(t.Context()); n != 0 || err != nil {
			t.Fatalf("%d %v", n, err)
		}
		if _, err := delivery.New(delivery.Options{Store: f.st, Identity: resultmail.Identity{Key: f.key}}); err == nil {
			t.Fatal("a signing key without From, Domain, Selector and a sender accepted")
		}
	})
}

// TestTarpitHoldsUpNothingElse: a recipient MX that accepts and never
// answers holds one attempt until its deadline, and meanwhile another test
// is finalised and its mail to another domain delivered, with both loops
// running as the service runs them.
func TestTarpitHoldsUpNothingElse(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
		const deadline = 3 * time.Second
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		t.Cleanup(func() { cancel(); wg.Wait() })
		fin := f.finaliser(t, time.Now, 20*time.Millisecond)
		deliv := f.deliverer(t, time.Now, func(o *delivery.Options) {
			o.AttemptTimeout, o.Interval, o.RateLimit = deadline, 20*time.Millisecond, 0
		})
		wg.Add(2)
		go func() { defer wg.Done(); _ = fin.Run(ctx) }()
		go func() { defer wg.Done(); _ = deliv.Run(ctx) }()

		f.addTest(t, "slow", slowAddr, "127.0.0.9", "", time.Now())
		waitFor(t, 2*time.Second, "the tarpit's connection", func() bool { return f.tarpit.open.Load() == 1 })
		stuck := time.Now()

		f.addTest(t, "quick", userAddr, "127.0.0.9", "", time.Now())
		waitFor(t, deadline, "the other test's mail", func() bool {
			r, err := f.st.Result(t.Context(), "quick")
			return err == nil && r.MailState == store.MailSent
		})
		if held := time.Since(stuck); held >= deadline || f.tarpit.open.Load() != 1 {
			t.Fatalf("the other test's mail came after %s, the tarpit's connection open: %v", held, f.tarpit.open.Load() == 1)
		}
		if r, _ := f.st.Result(t.Context(), "slow"); r.Attempts != 0 {
			t.Fatalf("the slow attempt ended before its deadline: %+v", r)
		}

		// At the deadline the slow attempt is deferred, and says why.
		waitFor(t, deadline+2*time.Second, "the slow attempt's end", func() bool {
			r, err := f.st.Result(t.Context(), "slow")
			return err == nil && r.Attempts == 1
		})
		r, _ := f.st.Result(t.Context(), "slow")
		if r.MailState != store.MailPending || !strings.Contains(r.MailReason, "attempt deadline") {
			t.Fatalf("slow result %+v", r)
		}
		if took := time.Since(stuck); took < deadline-time.Second {
			t.Fatalf("the slow attempt ended after %s, before its deadline %s", took, deadline)
		}
		if n := len(f.mta.received()); n != 1 {
			t.Fatalf("%d mails at the user's MTA, want 1", n)
		}
	})
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !ok() {
		if time.Now().After(end) {
			t.Fatalf("no %s within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// unfoldQP undoes quoted-printable soft line breaks and "=3D" (enough to
// search a message's text).
func unfoldQP(msg []byte) string {
	return strings.NewReplacer("=\r\n", "", "=3D", "=").Replace(string(msg))
}

// mailKey is the owner key of the report link in a result mail.
func mailKey(t *testing.T, msg []byte) string {
	t.Helper()
	_, rest, ok := strings.Cut(unfoldQP(msg), "https://mailsec.example/t/")
	if !ok || len(rest) < store.OwnerKeyLen {
		t.Fatalf("no report link in the mail:\n%s", msg)
	}
	return rest[:store.OwnerKeyLen]
}

// linkOpens checks that the result mail's link opens test id: the report
// page at the link's path, served by the web UI on the same store, shows
// the test; its key is one of the test's, and the id is not the link.
func (f *fixture) linkOpens(t *testing.T, msg []byte, id string) {
	t.Helper()
	if strings.Contains(unfoldQP(msg), "/t/"+id) {
		t.Errorf("the mail links the test by its id")
	}
	key := mailKey(t, msg)
	got, err := f.st.TestByOwnerKey(t.Context(), key)
	if err != nil || got.ID != id {
		t.Fatalf("the mail's link opens %+v, %v; want test %s", got, err, id)
	}
	ts := httptest.NewServer(web.New(web.Options{Source: reportsource.Source{Store: f.st, Evidence: f.ev, ZoneA: "a.mailtest.example",
		ZoneB: "b.mailtest.example"}, ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example"}))
	defer ts.Close()
	resp, err := http.Get(ts.URL + "/t/" + key + "/report")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`data-test="`+id+`"`)) {
		t.Fatalf("the mail's link: %d, not the report of %s:\n%.300s", resp.StatusCode, id, body)
	}
}
