package smtpd

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
	"github.com/mailsec/mailsec/internal/testslot"
	"github.com/mailsec/mailsec/internal/tlsrpt"
	"github.com/mailsec/mailsec/internal/verdict"
)

// reportSeq makes each report's report-id unique: the store keeps one
// report per organization and report-id.
var reportSeq atomic.Int64

// reportJSON is a valid TLS-RPT report for domain over the day of at,
// its contact-info padded by pad octets, with a failure from sending MTA
// addr when addr is not "".
func reportJSON(domain, addr string, at time.Time, pad int) []byte {
	day := at.UTC().Truncate(24 * time.Hour)
	failure := ""
	if addr != "" {
		failure = fmt.Sprintf(`, "failure-details": [{"result-type": "certificate-host-mismatch", "sending-mta-ip": %q, "receiving-mx-hostname": "mx3.%s", "failed-session-count": 1}]`, addr, domain)
	}
	return fmt.Appendf(nil, `{"organization-name": "Reporter Inc.", "contact-info": "tlsrpt@reporter.example%s",
 "report-id": "r%d", "date-range": {"start-datetime": %q, "end-datetime": %q},
 "policies": [{"policy": {"policy-type": "sts", "policy-domain": %q}, "summary": {"total-successful-session-count": 1, "total-failure-session-count": 1}%s}]}`,
		strings.Repeat(" ", pad), reportSeq.Add(1), day.Format(time.RFC3339), day.Add(24*time.Hour-time.Second).Format(time.RFC3339), domain, failure)
}

// reportMail is a report mail (RFC 8460 §5.3) for report.
func reportMail(t testing.TB, report []byte, gz bool) string {
	t.Helper()
	raw, err := tlsrpt.ComposeMail(tlsrpt.Envelope{From: "reports@example.net", To: "tlsrpt@" + zoneA, Submitter: "example.net", Gzip: gz}, report)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// tlsrptBody is a valid report mail of about n octets (at least its
// smallest, about 1 KiB), in lines of 78 (a base64 attachment's).
func tlsrptBody(t testing.TB, n int) string {
	t.Helper()
	pad := 0
	for {
		m := reportMail(t, reportJSON(zoneA, "", time.Now(), pad), false)
		if len(m) >= n-100 {
			return m
		}
		pad += (n - len(m)) * 3 / 4
	}
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
			if code, msg := c.mail("reports@example.net", rcpt, tlsrptBody(t, 64<<10)); code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
				t.Errorf("oversized report: %d %s", code, msg)
			}
			c.ok(250, "MAIL FROM:<reports@example.net> SIZE=5000")
			if code, msg := c.cmd("RCPT TO:<tlsrpt@%s>", zoneA); code != 552 || !strings.HasPrefix(msg, "5.3.4 ") {
				t.Errorf("RCPT after SIZE=5000: %d %s", code, msg)
			}
			c.ok(250, "RSET")
			if code, msg := c.mail("reports@example.net", rcpt, tlsrptBody(t, 4000)); code != 250 {
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
				if code, msg := c.mail("", []string{"tlsrpt@" + zoneA}, tlsrptBody(t, 500)); code != 250 {
					t.Fatalf("report %d: %d %s", i, code, msg)
				}
			}
			c.ok(250, "MAIL FROM:<>")
			if code, msg := c.cmd("RCPT TO:<tlsrpt@%s>", zoneA); code != 450 || !strings.HasPrefix(msg, "4.7.1 ") {
				t.Errorf("third report in the hour: %d %s", code, msg)
			}
			c.ok(250, "RSET")
			ts.clock.Advance(time.Hour)
			if code, msg := c.mail("", []string{"tlsrpt@" + zoneA}, tlsrptBody(t, 500)); code != 250 {
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
				if code, msg := c.mail("reports@example.net", []string{"tlsrpt@" + zoneA}, tlsrptBody(t, 500)); code != 250 {
					t.Fatalf("report %d: %d %s", i, code, msg)
				}
			}
			if code, msg := c.mail("reports@example.net", []string{"tlsrpt@" + zoneA}, tlsrptBody(t, 500)); code != 452 || !strings.HasPrefix(msg, "4.3.1 ") {
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

// TestTLSRPTIntake: a report mail is parsed, tied to the test that holds
// the slot its policy domain names, and stored parsed (250); the same
// report again is received already (250) and not stored twice; a mail
// that is no report, a malformed report and a gzip bomb are refused
// permanently (554 5.6.0) with the reason, and store nothing.
func TestTLSRPTIntake(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		ts := startServerOn(t, driver, func(o *Options) {
			o.DowngradeWindow = 0
			o.TLSRPTPerClient = 100
			o.Evidence.Slots = testslot.Pool{ZoneA: zoneA, ZoneB: zoneB, Count: 3}
		})
		tt := store.Test{ID: "slotted", Created: ts.clock.Now().Add(-time.Minute), Updated: ts.clock.Now(), Kind: store.TestToken, State: store.TestOpen, Slot: 2}
		if err := ts.st.CreateTest(t.Context(), tt); err != nil {
			t.Fatal(err)
		}
		c := dial(t, ts.addr())
		c.ehlo()
		rcpt := []string{"tlsrpt@" + zoneA}
		good := reportJSON("s002."+zoneA, "192.0.2.1", ts.clock.Now(), 0)
		if code, msg := c.mail("reports@example.net", rcpt, reportMail(t, good, true)); code != 250 || msg != "2.0.0 TLS-RPT report received" {
			t.Fatalf("report: %d %s", code, msg)
		}
		if code, msg := c.mail("reports@example.net", rcpt, reportMail(t, good, false)); code != 250 || !strings.Contains(msg, "already") {
			t.Fatalf("the same report again: %d %s", code, msg)
		}
		bomb := gzipBombMail()
		for _, tc := range []struct{ name, mail, why string }{
			{"not a report", "Subject: hello\r\n\r\nhello\r\n", "no application/tlsrpt+json"},
			{"malformed", strings.Replace(reportMail(t, good, false), "Content-Transfer-Encoding: base64", "Content-Transfer-Encoding: 7bit", 1), "invalid character"},
			{"gzip bomb", bomb, "expands too much"},
		} {
			if code, msg := c.mail("reports@example.net", rcpt, tc.mail); code != 554 || !strings.HasPrefix(msg, "5.6.0 TLS-RPT report refused: ") || !strings.Contains(msg, tc.why) {
				t.Errorf("%s: %d %s", tc.name, code, msg)
			}
		}
		c.quit()
		reps := storedReports(t, ts)
		if len(reps) != 1 || reps[0].Source != store.TLSRPTByMail || len(reps[0].Report) == 0 {
			t.Fatalf("stored %+v, want the one report", reps)
		}
		tied, err := ts.st.TLSRPTReportsOf(t.Context(), "slotted", 0)
		if err != nil || len(tied) != 1 || tied[0].ID != reps[0].ID {
			t.Fatalf("reports of the slot's test: %+v, %v", tied, err)
		}
		// The report's certificate failure under the sts policy, from
		// the sender's own address, proves "validates PKIX" and "applies
		// MTA-STS", which its one connection (refused in plain text) left
		// open; the same test and connection without the report (the
		// test made anew: its ties go with it) leave them open.
		judge := func() verdict.Verdict {
			t.Helper()
			v, _, err := ts.srv.evidence.Judge(t.Context(), tt, ts.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		c2 := store.SMTPConnection{TestID: "slotted", Started: ts.clock.Now(), Ended: ts.clock.Now().Add(time.Second), Persona: 1,
			Client: netip.MustParseAddrPort("192.0.2.1:4000"), State: store.StateNone, Error: "client quit without STARTTLS"}
		if err := ts.st.InsertConnection(t.Context(), &c2); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{verdict.FactAppliesMTASTS, verdict.FactValidatesPKIX} {
			f := factOf(judge(), name)
			if f.Confidence != verdict.Proven || !f.Value || !strings.Contains(f.Why, "TLS-RPT report") || !slices.Equal(f.Evidence, []int64{c2.ID}) {
				t.Errorf("%s with the report: %+v", name, f)
			}
		}
		if err := ts.st.DeleteTest(t.Context(), "slotted"); err != nil {
			t.Fatal(err)
		}
		if err := ts.st.CreateTest(t.Context(), tt); err != nil {
			t.Fatal(err)
		}
		c2.ID = 0
		if err := ts.st.InsertConnection(t.Context(), &c2); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{verdict.FactAppliesMTASTS, verdict.FactValidatesPKIX} {
			if f := factOf(judge(), name); f.Confidence != verdict.Unknown {
				t.Errorf("%s without the report: %+v", name, f)
			}
		}
	})
}

// gzipBombMail is a report mail whose gzip part expands a thousandfold.
func gzipBombMail() string {
	var b strings.Builder
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write(make([]byte, 900_000))
	_ = zw.Close()
	return "Subject: Report Domain: " + zoneA + "\r\nMIME-Version: 1.0\r\nContent-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64.StdEncoding.EncodeToString([]byte(b.String())) + "\r\n"
}

// factOf is the fact of v named name.
func factOf(v verdict.Verdict, name string) verdict.Fact {
	for _, f := range v.Facts {
		if f.Name == name {
			return f
		}
	}
	return verdict.Fact{Name: name}
}
