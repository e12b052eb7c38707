package smtpd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

// tlsrptBody is a report mail of about n octets, in lines of 78 (a
// base64 attachment's).
func tlsrptBody(n int) string {
	var b strings.Builder
	b.WriteString("From: reports@example.net\r\nSubject: Report Domain: " + zoneA + "\r\n\r\n")
	for b.Len() < n-78 {
		b.WriteString(strings.Repeat("x", 76) + "\r\n")
	}
	return b.String()
}

func storedReports(t *testing.T, ts *testServer) []store.TLSRPTReport {
	t.Helper()
	reps, err := ts.st.TLSRPTReports(context.Background(), time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return reps
}

// TestTLSRPTLimits: mail to the TLS-RPT address is bounded in size (552
// while DATA is read, or at RCPT when SIZE announces it), in rate per
// client (450 at RCPT) and in what is stored (452 past the quota); the
// connection stays usable after each refusal.
func TestTLSRPTLimits(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		t.Run("size", func(t *testing.T) {
			t.Parallel()
			ts := startServerOn(t, driver, func(o *Options) { o.DowngradeWindow = 0; o.TLSRPTMaxBytes = 4096 })
			c := dial(t, ts.addr())
			c.ehlo()
			rcpt := []string{"tlsrpt@" + zoneA}
			// 64 KiB: more than the TLS-RPT limit, far less than the
			// message limit (10 MiB) that applies to test mail.
			if code, msg := c.mail("reports@example.net", rcpt, tlsrptBody(64<<10)); code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
				t.Errorf("oversized report: %d %s", code, msg)
			}
			c.ok(250, "MAIL FROM:<reports@example.net> SIZE=5000")
			if code, msg := c.cmd("RCPT TO:<tlsrpt@%s>", zoneA); code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
				t.Errorf("RCPT after SIZE=5000: %d %s", code, msg)
			}
			c.ok(250, "RSET")
			if code, msg := c.mail("reports@example.net", rcpt, tlsrptBody(4000)); code != 250 {
				t.Errorf("report within the limit: %d %s", code, msg)
			}
			c.quit()
			if reps := storedReports(t, ts); len(reps) != 1 || len(reps[0].Raw) > 4096 {
				t.Fatalf("%d reports stored, want the one within the limit", len(reps))
			}
		})
		t.Run("rate", func(t *testing.T) {
			t.Parallel()
			ts := startServerOn(t, driver, func(o *Options) { o.DowngradeWindow = 0; o.TLSRPTPerClient = 2 })
			c := dial(t, ts.addr())
			c.ehlo()
			for i := range 2 {
				if code, msg := c.mail("", []string{"tlsrpt@" + zoneA}, tlsrptBody(500)); code != 250 {
					t.Fatalf("report %d: %d %s", i, code, msg)
				}
			}
			c.ok(250, "MAIL FROM:<>")
			if code, msg := c.cmd("RCPT TO:<tlsrpt@%s>", zoneA); code != 450 || !strings.HasPrefix(msg, "4.7.1 ") {
				t.Errorf("third report in the hour: %d %s", code, msg)
			}
			c.ok(250, "RSET")
			ts.clock.Advance(time.Hour)
			if code, msg := c.mail("", []string{"tlsrpt@" + zoneA}, tlsrptBody(500)); code != 250 {
				t.Errorf("report an hour later: %d %s", code, msg)
			}
			c.quit()
			if reps := storedReports(t, ts); len(reps) != 3 {
				t.Fatalf("%d reports stored, want 3", len(reps))
			}
		})
		t.Run("quota", func(t *testing.T) {
			t.Parallel()
			ts := startServerOn(t, driver, func(o *Options) {
				o.DowngradeWindow = 0
				o.TLSRPTQuota = store.TLSRPTQuota{MaxReports: 2}
			})
			c := dial(t, ts.addr())
			c.ehlo()
			for i := range 2 {
				if code, msg := c.mail("reports@example.net", []string{"tlsrpt@" + zoneA}, tlsrptBody(500)); code != 250 {
					t.Fatalf("report %d: %d %s", i, code, msg)
				}
			}
			if code, msg := c.mail("reports@example.net", []string{"tlsrpt@" + zoneA}, tlsrptBody(500)); code != 452 || !strings.HasPrefix(msg, "4.3.1 ") {
				t.Errorf("report past the quota: %d %s", code, msg)
			}
			// Test mail is not affected by the TLS-RPT quota.
			ts.newTest(t, "tok1")
			if code, msg := c.mail("s@example.org", []string{"t-tok1@" + zoneA}, "Subject: t\r\n\r\nx\r\n"); code != 451 && code != 250 {
				t.Errorf("test mail after the quota: %d %s", code, msg)
			}
			c.quit()
			if reps := storedReports(t, ts); len(reps) != 2 {
				t.Fatalf("%d reports stored, want 2", len(reps))
			}
		})
	})
}
