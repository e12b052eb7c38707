package web

import (
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/testslot"
)

// TestTLSRPTOnReportAndLivePage: a TLS-RPT report tied to a test is in
// its API report (tlsrpt_reports, valid against the schema), on its live
// page and in its report page; another test's report is not.
func TestTLSRPTOnReportAndLivePage(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Source.Evidence.Rules.Slots = testslot.Pool{ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example"}
	})
	ctx := t.Context()
	created := e.now.Add(-30 * time.Minute)
	key := e.ownedTest(t, store.Test{ID: "tlsrpttestaaaaaa", Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen})
	report := func(id string) []byte {
		return []byte(`{"organization-name": "Google Inc.", "report-id": "` + id + `", "date-range": {"start-datetime": "2026-01-01T00:00:00Z", "end-datetime": "2026-01-01T23:59:59Z"},
 "policies": [{"policy": {"policy-type": "sts", "policy-domain": "a.mailtest.example"}, "summary": {"total-successful-session-count": 2, "total-failure-session-count": 1},
 "failure-details": [{"result-type": "certificate-host-mismatch", "sending-mta-ip": "192.0.2.1", "receiving-mx-hostname": "mx3.example", "failed-session-count": 1}]}]}`)
	}
	for _, r := range []*store.TLSRPTReport{
		{Received: e.now, Source: store.TLSRPTByHTTPS, Report: report("mine-id"), Key: "1", Tests: []string{"tlsrpttestaaaaaa"}},
		{Received: e.now, Source: store.TLSRPTByMail, Report: report("other-id"), Key: "2", Tests: []string{"othertestaaaaaaa"}},
	} {
		if err := e.st.AddTLSRPTReport(ctx, r, store.TLSRPTQuota{}); err != nil {
			t.Fatal(err)
		}
	}
	ans := e.apiReport(t, "tlsrpttestaaaaaa", key)
	if r := ans.Report.TLSRPTReports; len(r) != 1 || r[0].ReportID != "mine-id" || r[0].Source != "https" || len(r[0].Policies) != 1 {
		t.Fatalf("tlsrpt_reports %+v", r)
	}
	want := "Google Inc. reports for"
	for _, path := range []string{"/t/" + key, "/t/" + key + "/report"} {
		resp, body := e.do(t, "GET", path, nil)
		if page := string(body); resp.StatusCode != 200 || !strings.Contains(page, want) || !strings.Contains(page, "certificate-host-mismatch at mx3.example") {
			t.Errorf("%s lacks the report: %d\n%s", path, resp.StatusCode, page)
		}
	}
}
