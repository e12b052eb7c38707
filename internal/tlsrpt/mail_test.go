package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func gzipped(t testing.TB, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPublishedReports: the reports large senders publish, in the shapes
// they send them (testdata/README.md says where each came from), parse.
func TestPublishedReports(t *testing.T) {
	for _, tc := range []struct {
		file, org, domain string
		ok, failed        int64
		details           int
	}{
		{"rfc8460-example.json", "Company-X", "company-y.example", 5326, 303, 3},
		{"google-2020.json", "Google Inc.", "example.com", 7, 0, 0},
		{"microsoft-2025.json", "Microsoft Corporation", "example.net", 40, 2, 2},
	} {
		t.Run(tc.file, func(t *testing.T) {
			r, err := ParseReport(readFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			p := r.Policies[0]
			if r.OrganizationName != tc.org || p.Policy.Domain != tc.domain || p.Summary.Successful != tc.ok ||
				p.Summary.Failed != tc.failed || len(p.FailureDetails) != tc.details {
				t.Fatalf("parsed %+v", r)
			}
		})
	}
}

// TestComposeAndParseMail: a report mail as RFC 8460 §5.3 describes it
// (multipart/report, the report base64 as an attachment, gzip or JSON)
// gives back the report and the §5.3 header fields.
func TestComposeAndParseMail(t *testing.T) {
	for _, file := range []string{"rfc8460-example.json", "google-2020.json", "microsoft-2025.json"} {
		for _, gz := range []bool{true, false} {
			report := readFixture(t, file)
			raw, err := ComposeMail(Envelope{From: "r@reporter.example", To: "tlsrpt@a.example", Submitter: "reporter.example",
				Date: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Gzip: gz}, report)
			if err != nil {
				t.Fatal(err)
			}
			want := MediaTypeJSON
			if gz {
				want = MediaTypeGzip
			}
			if !bytes.Contains(raw, []byte("Content-Type: "+want)) || !bytes.Contains(raw, []byte(`report-type=tlsrpt`)) {
				t.Fatalf("%s: composed mail lacks its media types:\n%s", file, raw)
			}
			m, err := ParseMail(raw)
			if err != nil {
				t.Fatalf("%s gzip=%v: %v", file, gz, err)
			}
			if !bytes.Equal(m.JSON, report) || m.Submitter != "reporter.example" || m.Domain != m.Report.Policies[0].Policy.Domain {
				t.Fatalf("%s: %+v", file, m)
			}
		}
	}
}

// TestParseMailShapes: the report is found as the whole body, nested in a
// multipart/mixed, and in quoted-printable; mails that are not reports,
// or are broken, get an error wrapping the right sentinel.
func TestParseMailShapes(t *testing.T) {
	report := readFixture(t, "google-2020.json")
	b64 := base64.StdEncoding.EncodeToString(gzipped(t, report))
	bomb := base64.StdEncoding.EncodeToString(gzipped(t, bytes.Repeat([]byte(" "), 900_000)))
	head := "From: r@x.example\r\nSubject: Report Domain: example.com\r\nMIME-Version: 1.0\r\n"
	for _, tc := range []struct {
		name, mail string
		want       error // nil: parses
	}{
		{"whole body JSON", head + "Content-Type: application/tlsrpt+json\r\n\r\n" + string(report), nil},
		{"whole body gzip base64", head + "Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64 + "\r\n", nil},
		{"nested mixed", head + "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: multipart/report; report-type=tlsrpt; boundary=i\r\n\r\n" +
			"--i\r\nContent-Type: text/plain\r\n\r\nhello\r\n--i\r\nContent-Type: application/tlsrpt+json\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			strings.ReplaceAll(string(report), "=", "=3D") + "\r\n--i--\r\n--o--\r\n", nil},
		{"plain text mail", head + "\r\nhello\r\n", ErrNoReportPart},
		{"attachment of another type", head + "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: application/gzip\r\n\r\nx\r\n--o--\r\n", ErrNoReportPart},
		{"no header", "\x00\x01", ErrReport},
		{"multipart without boundary", head + "Content-Type: multipart/report\r\n\r\nx", ErrReport},
		{"bad base64", head + "Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n", ErrReport},
		{"unknown transfer encoding", head + "Content-Type: application/tlsrpt+json\r\nContent-Transfer-Encoding: x-uue\r\n\r\n{}", ErrReport},
		{"bad JSON", head + "Content-Type: application/tlsrpt+json\r\n\r\n{\"organization-name\": 1}", ErrReport},
		{"gzip bomb", head + "Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n" + bomb + "\r\n", ErrGzipBomb},
		{"oversize part", head + "Content-Type: application/tlsrpt+json\r\n\r\n" + strings.Repeat(" ", MaxReportBytes+1), ErrTooLarge},
		{"too deep", head + "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: multipart/mixed; boundary=c\r\n\r\n" +
			"--c\r\nContent-Type: multipart/mixed; boundary=d\r\n\r\n--d\r\nContent-Type: multipart/mixed; boundary=e\r\n\r\n--e\r\n\r\nx\r\n--e--\r\n--d--\r\n--c--\r\n--b--\r\n--a--\r\n", ErrReport},
		{"too many parts", head + "Content-Type: multipart/mixed; boundary=a\r\n\r\n" + strings.Repeat("--a\r\nContent-Type: text/plain\r\n\r\nx\r\n", 20) + "--a--\r\n", ErrReport},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMail([]byte(tc.mail))
			switch {
			case tc.want == nil && err != nil:
				t.Fatal(err)
			case tc.want == nil && m.Report.ReportID != "2020-05-22T00:00:00Z_example.com":
				t.Fatalf("parsed %+v", m.Report)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDecode: the two media types of RFC 8460 §5.4 decode, with
// parameters; any other is refused.
func TestDecode(t *testing.T) {
	report := readFixture(t, "microsoft-2025.json")
	if _, data, err := Decode("application/tlsrpt+json; charset=utf-8", report); err != nil || !bytes.Equal(data, report) {
		t.Fatalf("json: %v", err)
	}
	if r, _, err := Decode(MediaTypeGzip, gzipped(t, report)); err != nil || r.OrganizationName != "Microsoft Corporation" {
		t.Fatalf("gzip: %v", err)
	}
	for _, mt := range []string{"application/json", "", "text/plain", "application/tlsrpt+json; ="} {
		if _, _, err := Decode(mt, report); !errors.Is(err, ErrReport) {
			t.Errorf("%q: %v", mt, err)
		}
	}
}

// FuzzParseMail: ParseMail never panics, its errors wrap a sentinel, and
// what it returns is a report that passes its checks and whose JSON
// parses to it.
func FuzzParseMail(f *testing.F) {
	report := readFixture(f, "rfc8460-example.json")
	for _, gz := range []bool{true, false} {
		raw, err := ComposeMail(Envelope{From: "a@b.example", To: "tlsrpt@a.example", Submitter: "b.example", Gzip: gz}, report)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: application/tlsrpt+json\r\n\r\n{}\r\n--a--\r\n"))
	f.Add([]byte("Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\nH4sI\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMail(raw)
		if err != nil {
			if !errors.Is(err, ErrReport) && !errors.Is(err, ErrNoReportPart) && !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrGzipBomb) {
				t.Fatalf("error %v wraps no sentinel", err)
			}
			return
		}
		if err := m.Report.check(); err != nil {
			t.Fatalf("returned a report that fails its checks: %v", err)
		}
		if _, err := ParseReport(m.JSON); err != nil {
			t.Fatalf("returned JSON that does not parse: %v", err)
		}
	})
}
