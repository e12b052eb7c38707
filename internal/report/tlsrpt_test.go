package report

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// TestTLSRPTReports: the report lists the TLS-RPT reports tied to the
// test, each policy with its sessions and failures, in the JSON model,
// the text and the HTML; without reports, an empty list and no section.
func TestTLSRPTReports(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 1, 0, time.UTC)
	day := at.Truncate(24 * time.Hour)
	in := Input{Test: store.Test{ID: "t1", Created: at}, Now: at, Location: time.UTC,
		TLSRPT: []verdict.TLSRPTReport{{ID: 7, Source: store.TLSRPTByHTTPS, Received: at, Organization: "Google Inc.", ReportID: "x",
			Start: day, End: day.Add(24*time.Hour - time.Second),
			Policies: []verdict.TLSRPTPolicy{{Type: "sts", Domain: "s001.a.example", Successful: 3, Failed: 1,
				Failures: []verdict.TLSRPTFailure{{ResultType: "certificate-host-mismatch", Sessions: 1, ReceivingMX: "mx3.s001.a.example",
					SendingMTA: netip.MustParseAddr("192.0.2.1")}}}}}}}
	r := Build(in)
	want := "01.12.2026 12:00:01 by https: Google Inc. reports for 01.12.2026 00:00:00 to 01.12.2026 23:59:59: sts policy for s001.a.example, " +
		"3 sessions succeeded, 1 failed (1 certificate-host-mismatch at mx3.s001.a.example from 192.0.2.1)"
	if len(r.TLSRPTReports) != 1 || r.TLSRPTReports[0].Text != want || r.TLSRPTReports[0].Policies[0].Failed != 1 {
		t.Fatalf("reports %+v\nwant %q", r.TLSRPTReports, want)
	}
	text, err := Text(r)
	if err != nil || !strings.Contains(text, "TLS-RPT reports (RFC 8460) about this test:\n"+want) {
		t.Errorf("text lacks the report (%v):\n%s", err, text)
	}
	html, err := HTML(r)
	if err != nil || !strings.Contains(html, `id="tlsrpt"`) || !strings.Contains(html, "certificate-host-mismatch at mx3.s001.a.example") {
		t.Errorf("HTML lacks the report (%v)", err)
	}
	in.Lang = i18n.German
	de := Build(in)
	if text, _ := Text(de); !strings.Contains(text, "TLS-RPT-Berichte (RFC 8460) zu diesem Test:") ||
		!strings.Contains(de.TLSRPTReports[0].Text, "sts-Richtlinie für s001.a.example, 3 Sitzungen erfolgreich, 1 fehlgeschlagen") {
		t.Errorf("German: %q\n%s", de.TLSRPTReports[0].Text, text)
	}
	empty := Build(Input{Test: store.Test{ID: "t2", Created: at}, Now: at, Location: time.UTC})
	if empty.TLSRPTReports == nil || len(empty.TLSRPTReports) != 0 {
		t.Errorf("no reports: %#v, want an empty list", empty.TLSRPTReports)
	}
	if html, _ := HTML(empty); strings.Contains(html, `id="tlsrpt"`) {
		t.Error("an empty report section is shown")
	}
}
