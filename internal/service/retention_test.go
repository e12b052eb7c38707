package service

import (
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/store"
)

// loopbackConfig is the default configuration with every listener on a
// free loopback port and the local CA.
func loopbackConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.DNS.Listen = []string{peertest.FreeAddr(t).String()}
	cfg.SMTP.Listen = []string{"127.0.0.1:0"}
	cfg.PolicyHost.Listen = []string{"127.0.0.1:0"}
	cfg.Web.Listen = []string{"127.0.0.1:0"}
	cfg.TLS.Issuer = "local"
	return cfg
}

// startLoopback validates cfg and runs the service until the test ends.
func startLoopback(t *testing.T, cfg config.Config) *Running {
	t.Helper()
	run, _ := startNode(t, cfg)
	return run
}

// sendTestMail delivers one mail in plain text to rcpt at addr, from
// someone@sender.example.org.
func sendTestMail(addr, rcpt string) error {
	return sendMail(addr, "sender.example.org", "someone@sender.example.org", rcpt,
		"From: someone@sender.example.org\r\nSubject: test\r\n\r\nhello\r\n")
}

// sendMail delivers body in plain text from from to rcpt at addr; an SMTP
// reply that refuses is the error (*smtp.SMTPError).
func sendMail(addr, helo, from, rcpt, body string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello(helo); err != nil {
		return err
	}
	if err := c.Mail(from, nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// TestRetentionWithoutWeb: the retention purge runs when the web server is
// not enabled (web.listen empty): an old test and an old TLS-RPT report,
// stored before the start, are deleted by the running service.
func TestRetentionWithoutWeb(t *testing.T) {
	cfg := loopbackConfig(t)
	cfg.Web.Listen = nil
	// A store that holds tests has had its zone keys made (a start
	// without them refuses: TestMissingZoneKeyRefusesStart).
	if _, err := BuildZones(&cfg, time.Now(), CreateZoneKeys); err != nil {
		t.Fatal(err)
	}

	st, err := store.Open(t.Context(), cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-cfg.Web.Retention.Duration - cfg.SMTP.TLSRPTRetention.Duration - time.Hour)
	if err := st.CreateTest(t.Context(), store.Test{ID: "oldtestaaaaaaaaa", Created: old, Updated: old, Kind: store.TestToken, State: store.TestOpen}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddTLSRPTReport(t.Context(), &store.TLSRPTReport{Received: old, Raw: []byte("r")}, store.TLSRPTQuota{}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	run := startLoopback(t, cfg)
	if len(run.WebAddrs) != 0 {
		t.Fatalf("web listening on %v", run.WebAddrs)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, terr := run.Store.Test(t.Context(), "oldtestaaaaaaaaa")
		reps, rerr := run.Store.TLSRPTReports(t.Context(), time.Time{}, 0)
		if terr != nil && rerr == nil && len(reps) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not purged: test lookup %v, reports %d (%v)", terr, len(reps), rerr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
