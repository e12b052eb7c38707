package demo

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/sender"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// episodeService is the demo's service with a short finaliser period (so
// that tests become final within seconds), and the senders' parts: the
// validating resolver and the local CA's roots.
type episodeService struct {
	run   *service.Running
	cfg   *config.Config
	dns   sender.DNS
	roots *x509.CertPool
}

// startEpisodeService starts the service with clients of prefixV4 bits, or
// skips the test in -short mode (it takes about the given time). The
// context bounds the test's senders.
func startEpisodeService(t *testing.T, prefixV4 int, takes string) (*episodeService, context.Context) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the service and real senders (" + takes + ")")
	}
	cfg, err := demoConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.SMTP.ClientPrefixV4 = prefixV4
	cfg.ResultMail.Interval = config.Duration{Duration: 500 * time.Millisecond}
	cfg.ResultMail.Enabled = false // the senders' domains take no mail
	ctx, stop := context.WithCancel(context.Background())
	run, err := service.Start(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		stop()
		t.Fatalf("starting the service: %v", err)
	}
	t.Cleanup(func() {
		stop()
		_ = run.Wait()
	})
	res, err := resolver.New(run.DNSAddrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(run.Certs.RootsPEM()) {
		t.Fatal("no local CA root")
	}
	sendCtx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return &episodeService{run: run, cfg: cfg, dns: res.WithTrustAnchors(run.Zones.KeyA.DS(), run.Zones.KeyB.DS()), roots: roots}, sendCtx
}

// send runs one test of the reference sender ref from src (its queue to A
// and B until delivered or given up) and returns the result; false (the
// failure reported) if no test was made. The helpers of these tests run in
// the senders' goroutines too, so they report with Errorf, not Fatalf.
func (s *episodeService) send(ctx context.Context, t *testing.T, ref Reference, src netip.Addr) (Result, bool) {
	t.Helper()
	r := runReference(ctx, s.run, s.cfg, ref, src, s.dns, s.roots, slog.New(slog.DiscardHandler))
	if r.Test == "" {
		t.Errorf("%s from %s: no test: %s", ref.Name, src, r.Why)
		return r, false
	}
	return r, true
}

// waitFinal polls until the finaliser has frozen the test's verdict and
// returns it ("" and the failure reported if it was not frozen in time).
func (s *episodeService) waitFinal(t *testing.T, id string) verdict.Policy {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := s.run.Store.Result(t.Context(), id)
		if err == nil {
			var v verdict.Verdict
			if err := json.Unmarshal(res.Verdict, &v); err != nil {
				t.Errorf("test %s: frozen verdict: %v", id, err)
			}
			return v.Policy
		}
		if time.Now().After(deadline) {
			t.Errorf("test %s: not final after 60 s: %v", id, err)
			return ""
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *episodeService) conns(t *testing.T, f store.ConnectionFilter) []store.SMTPConnection {
	t.Helper()
	cs, err := s.run.Store.Connections(t.Context(), f)
	if err != nil {
		t.Errorf("connections: %v", err)
	}
	return cs
}

func reference(t *testing.T, name string) Reference {
	t.Helper()
	for _, r := range References() {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no reference sender %q", name)
	return Reference{}
}

// TestRetestGetsItsOwnWindow (issue 13): a sender tests, its test becomes
// final, and it tests again from the same address. The second test's first
// connection is inside a downgrade window of its own (no STARTTLS), and
// both tests get the sender's policy — for a sender that falls back to
// plain text (may) and one that refuses it (encrypt), whose verdicts only
// the window tells apart.
func TestRetestGetsItsOwnWindow(t *testing.T) {
	s, ctx := startEpisodeService(t, 32, "two tests per sender one after the other: about 40 s")
	var wg sync.WaitGroup
	for i, name := range []string{"may", "encrypt"} {
		ref := reference(t, name)
		src := netip.AddrFrom4([4]byte{127, 0, 0, byte(60 + i)})
		wg.Go(func() {
			for n := 1; n <= 2; n++ {
				r, ok := s.send(ctx, t, ref, src)
				if !ok {
					return
				}
				cs := s.conns(t, store.ConnectionFilter{TestID: r.Test})
				if len(cs) == 0 {
					t.Errorf("%s test %d: no connection recorded", name, n)
					continue
				}
				if cs[0].STARTTLSOffered {
					t.Errorf("%s test %d: first connection (%s) offered STARTTLS: no downgrade window", name, n, cs[0].Started.Format(time.StampMilli))
				}
				if v := verdict.Policy(r.Verdict); v != ref.Expected {
					t.Errorf("%s test %d: verdict %s, want %s: %s", name, n, v, ref.Expected, r.Why)
				}
				if v := s.waitFinal(t, r.Test); v != ref.Expected {
					t.Errorf("%s test %d: frozen verdict %s, want %s", name, n, v, ref.Expected)
				}
			}
		})
	}
	wg.Wait()
}

// TestConcurrentTestKeepsEpisode: one provider (a /24), two MTAs. Test 2
// starts while test 1 is still open and past its window: the window is not
// reopened mid-episode, so test 1's sender keeps seeing STARTTLS and gets
// its verdict, and test 2 is offered STARTTLS from its first connection.
func TestConcurrentTestKeepsEpisode(t *testing.T) {
	s, ctx := startEpisodeService(t, 24, "two senders at once: about 10 s")
	src1, src2 := netip.MustParseAddr("127.0.0.70"), netip.MustParseAddr("127.0.0.71")
	encrypt, may := reference(t, "encrypt"), reference(t, "may")
	first := make(chan Result, 1)
	go func() {
		r, _ := s.send(ctx, t, encrypt, src1)
		first <- r
	}()

	// Wait until test 1 has a connection tied to it after its window
	// (STARTTLS offered): the episode is past its window and test 1 open.
	deadline := time.Now().Add(60 * time.Second)
	var test1 string
	for test1 == "" {
		for _, c := range s.conns(t, store.ConnectionFilter{ClientAddr: src1}) {
			if c.STARTTLSOffered && c.TestID != "" {
				test1 = c.TestID
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("test 1 got no connection after its window within 60 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if tt, err := s.run.Store.Test(t.Context(), test1); err != nil || tt.State == store.TestFinal {
		t.Fatalf("test 1 (%s) final before test 2 started (%v): nothing concurrent to check", test1, err)
	}
	r2, _ := s.send(ctx, t, may, src2)
	r1 := <-first

	for _, c := range s.conns(t, store.ConnectionFilter{ClientAddr: src2}) {
		if !c.STARTTLSOffered {
			t.Errorf("test 2 connection at %s: no STARTTLS: the window was reopened mid-episode", c.Started.Format(time.StampMilli))
		}
	}
	offeredSince := time.Time{}
	for _, c := range s.conns(t, store.ConnectionFilter{ClientAddr: src1}) {
		switch {
		case c.STARTTLSOffered && offeredSince.IsZero():
			offeredSince = c.Started
		case !c.STARTTLSOffered && !offeredSince.IsZero():
			t.Errorf("test 1 connection at %s: no STARTTLS after it was offered at %s", c.Started.Format(time.StampMilli), offeredSince.Format(time.StampMilli))
		}
	}
	if r1.Verdict != string(verdict.PolicyEncrypt) {
		t.Errorf("test 1: verdict %s, want encrypt: %s", r1.Verdict, r1.Why)
	}
	t.Logf("test 2 (no window of its own, by design): verdict %s: %s", r2.Verdict, r2.Why)
}
