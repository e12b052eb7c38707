package policyhost_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/policyhost"
	"github.com/mailsec/mailsec/internal/store"
)

// slotReport is a TLS-RPT report for slot 1's domain over today, id its
// report-id.
func slotReport(id string) []byte {
	day := time.Now().UTC().Truncate(24 * time.Hour)
	return fmt.Appendf(nil, `{"organization-name": "Reporter", "report-id": %q, "date-range": {"start-datetime": %q, "end-datetime": %q},
 "policies": [{"policy": {"policy-type": "sts", "policy-domain": "s001.a.mailtest.example"}, "summary": {"total-successful-session-count": 2, "total-failure-session-count": 0}}]}`,
		id, day.Format(time.RFC3339), day.Add(24*time.Hour-time.Second).Format(time.RFC3339))
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	_, _ = w.Write(data)
	_ = w.Close()
	return b.Bytes()
}

// post sends body to the report path with the media type ctype.
func (f *fixture) post(t *testing.T, ctype string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "https://"+host+policyhost.ReportPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	res, err := f.client(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, body: string(b)}
}

// TestReportPOST: a TLS-RPT report POSTed (RFC 8460 §5.4), JSON or gzip,
// is stored and tied to the test holding the slot its policy domain
// names (200); the same report again is received already; another media
// type (415), another method (405), a malformed report or a gzip bomb
// (400, with the reason) and an oversize body (413) store nothing; past
// the rate per client network, 429.
func TestReportPOST(t *testing.T) {
	f := start(t, options{reports: true, maxReport: 64 << 10, perClientR: 7})
	ctx := t.Context()
	tt := store.Test{ID: "slot1", Created: time.Now().Add(-time.Minute), Updated: time.Now(), Kind: store.TestToken, State: store.TestOpen, Slot: 1}
	if err := f.st.CreateTest(ctx, tt); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		ctype  string
		body   []byte
		status int
		want   string
	}{
		{"application/tlsrpt+gzip", gz(slotReport("r1")), 200, "TLS-RPT report received"},
		{"application/tlsrpt+json", slotReport("r2"), 200, "TLS-RPT report received"},
		{"application/tlsrpt+json", slotReport("r2"), 200, "received already"},
		{"application/json", slotReport("r3"), 415, "Content-Type must be"},
		{"application/tlsrpt+json", []byte(`{"organization-name": "x"`), 400, "TLS-RPT report refused: "},
		{"application/tlsrpt+gzip", gz(make([]byte, 60_000)), 400, "expands too much"},
		// Well past what net/http reads after a handler before it closes
		// (256 KiB): the client still reads the 413, not a reset.
		{"application/tlsrpt+json", append(slotReport("r4"), bytes.Repeat([]byte(" "), 320<<10)...), 413, "larger than 65536"},
	} {
		if r := f.post(t, tc.ctype, tc.body); r.status != tc.status || !strings.Contains(r.body, tc.want) {
			t.Errorf("case %d: %d %q, want %d %q", i, r.status, r.body, tc.status, tc.want)
		}
	}
	// Oversize without a Content-Length (chunked): cut off while read.
	req, err := http.NewRequest(http.MethodPost, "https://"+host+policyhost.ReportPath, io.MultiReader(bytes.NewReader(make([]byte, 70<<10))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/tlsrpt+json")
	if res, err := f.client(false).Do(req); err != nil || res.StatusCode != 413 {
		t.Errorf("chunked oversize: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if r := f.do(t, http.MethodGet, "https://"+host+policyhost.ReportPath, ""); r.status != 405 {
		t.Errorf("GET: %d", r.status)
	}
	// Seven POSTs so far count for 127.0.0.0/24 (only the 415 is
	// refused before the quota: an oversize report is read, bounded, so
	// it counts): the limit is reached.
	if r := f.post(t, "application/tlsrpt+json", slotReport("r5")); r.status != 429 {
		t.Errorf("past the rate: %d %q", r.status, r.body)
	}
	reps, err := f.st.TLSRPTReports(ctx, time.Time{}, 0)
	if err != nil || len(reps) != 2 {
		t.Fatalf("stored %d reports, %v; want r1, r2", len(reps), err)
	}
	tied, err := f.st.TLSRPTReportsOf(ctx, "slot1", 0)
	if err != nil || len(tied) != 2 || tied[0].Source != store.TLSRPTByHTTPS {
		t.Fatalf("tied %+v, %v", tied, err)
	}
}
