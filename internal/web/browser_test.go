package web_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailsec/mailsec/internal/browsertest"
	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/sender"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/store"
)

// TestBrowser drives headless Chromium (a real browser) through the real
// service on loopback: start a test on the home page, a reference sender
// (internal/sender at level dane) sends to both addresses, the live page
// shows the connections arriving over server-sent events, and the report
// page shows the verdict, in English and, through the language switch, in
// German (report-de.png). A second test carries HTML in the EHLO and the
// envelope sender and checks the rendered DOM. Screenshots go to
// $MAILSEC_ARTIFACTS (default: a temporary directory, printed).
func TestBrowser(t *testing.T) {
	chromium := browsertest.Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Second)
	defer cancel()
	artifacts := os.Getenv("MAILSEC_ARTIFACTS")
	if artifacts == "" {
		// Not t.TempDir: the screenshots are meant to outlive the test.
		var err error
		if artifacts, err = os.MkdirTemp("", "mailsec-artifacts-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}

	cfg := serviceConfig(t)
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	svcCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	run, err := service.Start(svcCtx, cfg, log)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { stop(); _ = run.Wait() })
	if run.WebURL == "" {
		t.Fatal("the service serves no web UI")
	}

	if resp, err := http.Get(run.WebURL + "/"); err != nil {
		t.Fatalf("web UI: %v", err)
	} else {
		resp.Body.Close()
		t.Logf("web UI at %s: %s", run.WebURL, resp.Status)
	}

	bctx := browsertest.Start(t, ctx, chromium, 1200, 1400)
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		path := filepath.Join(artifacts, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
		fmt.Printf("browser test screenshot: %s\n", path)
	}

	// Start a test as a user would.
	// The first action on bctx starts the browser and ties it to bctx
	// (not to the shorter contexts below).
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	sctx, scancel := context.WithTimeout(bctx, 30*time.Second)
	defer scancel()
	if err := chromedp.Do(sctx, chromedp.Navigate(run.WebURL+"/"), chromedp.Click("#start"), chromedp.WaitVisible("#address-a")); err != nil {
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		body, _ := chromedp.Run(bctx, chromedp.OuterHTML("body"))
		t.Fatalf("starting a test in the browser: %v (at %s: %s)", err, loc, body)
	}
	addrA, err := chromedp.Run(bctx, chromedp.Text("#address-a"))
	if err != nil {
		t.Fatal(err)
	}
	addrB, _ := chromedp.Run(bctx, chromedp.Text("#address-b"))
	id := strings.TrimPrefix(addrA[:strings.IndexByte(addrA, '@')], "t-")
	t.Logf("test %s: %s, %s", id, addrA, addrB)
	// The live page's own address: /t/{owner key}, the one way back.
	live, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(live, run.WebURL+"/t/") || strings.Contains(live, id) {
		t.Fatalf("live page at %s: want /t/ and the owner key, not the test id", live)
	}

	// The reference sender sends in the background, through its queue.
	sent := make(chan error, 1)
	go func() { sent <- referenceSend(ctx, run, addrA, addrB) }()

	// Connections appear on the live page without a reload.
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`Number(document.getElementById("count").textContent) >= 2`,
		chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("the live page shows no connections: %v", err)
	}
	phase, _ := chromedp.Run(bctx, chromedp.Text("#phase"))
	t.Logf("live page phase: %s", phase)
	shot("live.png")
	if err := <-sent; err != nil {
		t.Fatalf("reference sender: %v", err)
	}
	// The test mail's authentication appears once a mail came.
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`!document.getElementById("auth-box").hidden &&
		document.getElementById("authentication").textContent.indexOf("SPF (MAIL FROM") >= 0`,
		chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("the live page shows no authentication of the test mail: %v", err)
	}
	// The verdict becomes final (timing.ack_after after the last
	// connection); the live page follows.
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`document.getElementById("phase").getAttribute("data-phase") === "done"`,
		chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		diagnoseNotFinal(t, run, id)
		t.Fatalf("the live page never showed the final verdict: %v", err)
	}
	policy, _ := chromedp.Run(bctx, chromedp.Text("#policy"))
	if policy != "dane" {
		t.Errorf("live page verdict %q, want dane", policy)
	}
	shot("live-final.png")

	if err := chromedp.Do(bctx, chromedp.Navigate(live+"/report"), chromedp.WaitVisible("#verdict")); err != nil {
		t.Fatal(err)
	}
	verdictText, _ := chromedp.Run(bctx, chromedp.Text("#verdict"))
	if !strings.Contains(verdictText, "dane") || !strings.Contains(verdictText, "RFC 7672") {
		t.Errorf("report verdict: %q", verdictText)
	}
	mail, _ := chromedp.Run(bctx, chromedp.Text(".mail"))
	if !strings.Contains(mail, "withheld") {
		// The reference sender's domain publishes no SPF: no backscatter.
		t.Errorf("result mail line: %q", mail)
	}
	shot("report.png")

	// German through the switch on the page (a link: no JavaScript), kept
	// by its cookie; then back to English for the rest.
	if err := chromedp.Do(bctx, chromedp.Click("#lang-switch a"), chromedp.WaitVisible(`html[lang="de"]`)); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(bctx, chromedp.Navigate(live+"/report"), chromedp.WaitVisible("#summary")); err != nil {
		t.Fatal(err)
	}
	german, _ := chromedp.Run(bctx, chromedp.Text("#verdict"))
	if !strings.Contains(german, "Ergebnis für ausgehende Mail") || !strings.Contains(german, "Ihr Server prüft Zertifikate mit DANE") {
		t.Errorf("German report verdict (kept by the cookie): %q", german)
	}
	shot("report-de.png")
	if err := chromedp.Do(bctx, chromedp.Click("#lang-switch a"), chromedp.WaitVisible(`html[lang="en"]`)); err != nil {
		t.Fatal(err)
	}

	// Injection: HTML in the EHLO and the envelope sender.
	if err := chromedp.Do(bctx, chromedp.Navigate(run.WebURL+"/"), chromedp.Click("#start"), chromedp.WaitVisible("#address-a")); err != nil {
		t.Fatal(err)
	}
	evilA, _ := chromedp.Run(bctx, chromedp.Text("#address-a"))
	evilLive, err := chromedp.Run(bctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	evilKey := strings.TrimPrefix(evilLive, run.WebURL+"/t/")
	const ehlo = `<script>window.pwned=1</script><b>bold</b>`
	if err := injectSession(ctx, run.SMTPAddrs[0].String(), ehlo, `"<script>window.pwned=2</script>"@evil.example`, evilA); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[bool](`Number(document.getElementById("count").textContent) >= 1`,
		chromedp.WithPollingTimeout(30*time.Second))); err != nil {
		t.Fatalf("the injected connection never showed: %v", err)
	}
	for _, page := range []string{"/t/" + evilKey, "/t/" + evilKey + "/report"} {
		if page != "/t/"+evilKey {
			if err := chromedp.Do(bctx, chromedp.Navigate(run.WebURL+page), chromedp.WaitVisible("#report")); err != nil {
				t.Fatal(err)
			}
		}
		got, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]any](`({
			pwned: window.pwned === undefined ? 0 : window.pwned,
			scripts: document.querySelectorAll("script").length,
			bold: document.querySelectorAll("#connections b, #history b").length,
			text: (document.getElementById("connections") || document.getElementById("history")).textContent
		})`))
		if err != nil {
			t.Fatal(err)
		}
		wantScripts := 1.0 // live.js
		if page != "/t/"+evilKey {
			wantScripts = 0
		}
		if got["pwned"] != 0.0 || got["scripts"] != wantScripts || got["bold"] != 0.0 || !strings.Contains(got["text"].(string), "<script>window.pwned=1</script><b>bold</b>") {
			t.Errorf("%s: injected markup was not escaped: %v", page, got)
		}
		if page == "/t/"+evilKey {
			shot("injection.png")
		}
	}
}

// serviceConfig is the service on loopback with the demo's short timings.
func serviceConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Log.Level = "warn"
	cfg.Zones.MXTTL = config.Duration{Duration: time.Second}
	cfg.Zones.NegativeTTL = config.Duration{Duration: time.Second}
	dnsAddr := peertest.FreeAddr(t).String()
	cfg.DNS.Listen = []string{dnsAddr}
	cfg.Resolver.Address = dnsAddr
	cfg.SMTP.Listen = []string{"127.0.0.1:0"}
	cfg.PolicyHost.Listen = []string{"127.0.0.1:0"}
	cfg.Web.Listen = []string{"127.0.0.1:0"}
	cfg.SMTP.ClientPrefixV4 = 32
	cfg.TLS.Issuer = "local"
	cfg.Timing.DowngradeWindow = config.Duration{Duration: 3 * time.Second}
	cfg.Timing.MXRotation = config.Duration{Duration: 4 * time.Second}
	cfg.Timing.AckAfter = config.Duration{Duration: 4 * time.Second}
	cfg.ResultMail.Interval = config.Duration{Duration: 200 * time.Millisecond}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// referenceSend is a dane sender's queue (internal/sender, as mailsec
// demo's): each address retried until delivered or the bound.
func referenceSend(ctx context.Context, run *service.Running, rcpts ...string) error {
	res, err := resolver.New(run.DNSAddrs[0].String())
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(run.Certs.RootsPEM())
	src := netip.MustParseAddr("127.0.0.31")
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	smtpAddr, policyAddr := run.SMTPAddrs[0].String(), run.PolicyAddrs[0].String()
	snd, err := sender.New(sender.Options{Hostname: "dane.senders.test.invalid", Level: sender.LevelDANE,
		Resolver: res.WithTrustAnchors(run.Zones.KeyA.DS(), run.Zones.KeyB.DS()), Roots: roots, SendSNI: true, LocalAddr: src,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", smtpAddr)
		},
		DialHTTPS: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", policyAddr)
		},
		ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second, DataTimeout: 10 * time.Second})
	if err != nil {
		return err
	}
	data := []byte("From: <dane@senders.test.invalid>\r\nTo: <" + rcpts[0] + ">\r\nSubject: <script>alert(1)</script>\r\n\r\nbrowser test\r\n")
	errs := make(chan error, len(rcpts))
	for _, rcpt := range rcpts {
		go func() {
			for attempt := 1; attempt <= 10 && ctx.Err() == nil; attempt++ {
				r := snd.Attempt(ctx, sender.Message{From: "dane@senders.test.invalid", To: []string{rcpt}, Data: data})
				if r.Status == sender.Delivered {
					errs <- nil
					return
				}
				if r.Status == sender.Bounced {
					errs <- fmt.Errorf("%s bounced: %s", rcpt, r.Reason)
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(min(time.Duration(attempt)*time.Second, 3*time.Second)):
				}
			}
			errs <- fmt.Errorf("%s not delivered", rcpt)
		}()
	}
	for range rcpts {
		if err := <-errs; err != nil {
			return err
		}
	}
	return nil
}

// injectSession speaks SMTP by hand: an EHLO name and an envelope sender
// carrying HTML, one recipient of the test; the mail is left at 451.
func injectSession(ctx context.Context, addr, ehlo, from, rcpt string) error {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 41)}, Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	rd := bufio.NewReader(c)
	reply := func() (string, error) {
		var all string
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				return all, err
			}
			all += line
			if len(line) < 4 || line[3] != '-' {
				return all, nil
			}
		}
	}
	if _, err := reply(); err != nil {
		return err
	}
	for _, cmd := range []string{"EHLO " + ehlo, "MAIL FROM:<" + from + ">", "RCPT TO:<" + rcpt + ">", "DATA"} {
		fmt.Fprintf(c, "%s\r\n", cmd)
		r, err := reply()
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		if !strings.HasPrefix(r, "2") && !strings.HasPrefix(r, "3") {
			return fmt.Errorf("%s: %s", cmd, r)
		}
	}
	fmt.Fprintf(c, "From: <%s>\r\nSubject: <script>window.pwned=3</script>\r\n\r\nx\r\n.\r\n", "x@evil.example")
	if _, err := reply(); err != nil {
		return err
	}
	fmt.Fprintf(c, "QUIT\r\n")
	return nil
}

// diagnoseNotFinal logs what the service recorded of a test that did not
// become final: its state, result and connections.
func diagnoseNotFinal(t *testing.T, run *service.Running, id string) {
	t.Helper()
	ctx := context.Background()
	tst, err := run.Store.Test(ctx, id)
	t.Logf("test %s: %+v (err %v)", id, tst, err)
	conns, err := run.Store.Connections(ctx, store.ConnectionFilter{TestID: id})
	if err != nil {
		t.Logf("connections: %v", err)
	}
	for _, c := range conns {
		t.Logf("  conn %d persona %d cert %d sni %q tls %q state %s started %s ended %s reply %q err %q",
			c.ID, c.Persona, c.CertPersona, c.SNI, c.TLSVersion, c.State, c.Started.Format("15:04:05.000"),
			c.Ended.Format("15:04:05.000"), c.Reply, c.Error)
	}
}
