package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"strings"
	"testing"
)

// TestParseRFCExample: the report of RFC 8460 Appendix B (with the line
// break of its additional-information URL joined) parses, its mx-host
// given as one string.
func TestParseRFCExample(t *testing.T) {
	data, err := os.ReadFile("testdata/rfc8460-example.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseReport(data)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Policies[0]
	if r.OrganizationName != "Company-X" || r.DateRange.End.Sub(r.DateRange.Start).Hours() < 23 || p.Policy.Type != PolicySTS ||
		p.Policy.Domain != "company-y.example" || len(p.Policy.MXHost) != 1 || p.Summary.Failed != 303 || len(p.FailureDetails) != 3 ||
		p.FailureDetails[1].ResultType != "starttls-not-supported" || p.FailureDetails[1].ReceivingIP != "203.0.113.56" {
		t.Fatalf("parsed %+v", r)
	}
}

// TestParseReportErrors: malformed reports get an error wrapping ErrReport
// (or ErrTooLarge) and say what is wrong.
func TestParseReportErrors(t *testing.T) {
	good, err := os.ReadFile("testdata/rfc8460-example.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, old, new, want string
	}{
		{"not JSON", "{", "[", "invalid character"},
		{"no organization", `"Company-X"`, `""`, "no organization-name"},
		{"no report id", `"5065427c-23d3-47ca-b6e0-946ea0e8c4be"`, `" "`, "no report-id"},
		{"dates reversed", `"2016-04-01T23:59:59Z"`, `"2016-03-01T00:00:00Z"`, "ends before it starts"},
		{"bad date", `"2016-04-01T23:59:59Z"`, `"yesterday"`, "cannot parse"},
		{"policy type", `"policy-type": "sts"`, `"policy-type": "smtp"`, "unknown policy-type"},
		{"policy domain", `"policy-domain": "company-y.example"`, `"policy-domain": "bad..name"`, "policy-domain"},
		{"negative count", `"total-failure-session-count": 303`, `"total-failure-session-count": -1`, "negative session count"},
		{"no result type", `"result-type": "certificate-expired"`, `"result-type": ""`, "no result-type"},
		{"mx-host a number", `"mx-host": "*.mail.company-y.example"`, `"mx-host": 5`, "a string or a list"},
		{"trailing data", "}]\n}\n", "}]\n}\n{}", "data after the JSON object"},
		{"no policies", `"policies": [{`, `"policies": [], "x": [{`, "no policies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := strings.Replace(string(good), tc.old, tc.new, 1)
			if data == string(good) {
				t.Fatalf("the case changes nothing")
			}
			_, err := ParseReport([]byte(data))
			if !errors.Is(err, ErrReport) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrReport with %q", err, tc.want)
			}
		})
	}
	if _, err := ParseReport(bytes.Repeat([]byte(" "), MaxReportBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize: %v", err)
	}
}

// TestGunzip: a gzip report decompresses; a gzip bomb (a small body that
// expands past MaxGzipRatio) and a body past the size cap are refused,
// and garbage is not a report.
func TestGunzip(t *testing.T) {
	gz := func(data []byte) []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = w.Write(data)
		_ = w.Close()
		return b.Bytes()
	}
	good, _ := os.ReadFile("testdata/rfc8460-example.json")
	out, err := Gunzip(gz(good))
	if err != nil || !bytes.Equal(out, good) {
		t.Fatalf("gunzip: %v", err)
	}
	if _, err := ParseReport(out); err != nil {
		t.Fatal(err)
	}
	bomb := gz(bytes.Repeat([]byte("a"), 900_000)) // about 1 KiB compressed
	if _, err := Gunzip(bomb); !errors.Is(err, ErrGzipBomb) {
		t.Errorf("bomb of %d octets: %v", len(bomb), err)
	}
	if _, err := Gunzip(bytes.Repeat([]byte{0x1f}, MaxReportBytes+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversize body: %v", err)
	}
	if _, err := Gunzip([]byte("not gzip")); !errors.Is(err, ErrReport) {
		t.Errorf("garbage: %v", err)
	}
}

// FuzzParseReport: ParseReport never panics, and every error wraps
// ErrReport or ErrTooLarge; a parsed report passes its own checks.
func FuzzParseReport(f *testing.F) {
	good, err := os.ReadFile("testdata/rfc8460-example.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"organization-name":"x","report-id":"1","date-range":{"start-datetime":"2026-01-01T00:00:00Z","end-datetime":"2026-01-02T00:00:00Z"},"policies":[{"policy":{"policy-type":"no-policy-found","policy-domain":"s001.a.example"},"summary":{}}]}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseReport(data)
		if err != nil {
			if !errors.Is(err, ErrReport) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if err := r.check(); err != nil {
			t.Fatalf("parsed a report that fails its checks: %v", err)
		}
	})
}
