package tlsrpt

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		txt   string
		want  *Record
		canon string // String() when it differs from txt
	}{
		{txt: "v=TLSRPTv1; rua=mailto:tls@example.org", want: &Record{RUA: []string{"mailto:tls@example.org"}}},
		{
			// RFC 8460 §3.1 examples joined; white space around ';' and ','.
			txt:   "v=TLSRPTv1 ;\trua=mailto:reports@example.com , https://reporting.example.com/v1/tlsrptsubmit ;",
			want:  &Record{RUA: []string{"mailto:reports@example.com", "https://reporting.example.com/v1/tlsrptsubmit"}},
			canon: "v=TLSRPTv1; rua=mailto:reports@example.com,https://reporting.example.com/v1/tlsrptsubmit",
		},
		{
			// Extensions before and after rua; %-encoded comma and
			// semicolon inside URIs; a port, a query, IPv6 literal.
			txt: "v=TLSRPTv1; x-ext=1.2; rua=https://r.example:8443/a%2Cb%3Bc?x=1,mailto:a%2Bb@r.example?subject=tls,https://[2001:db8::1]/r; Foo.bar_1=x/y ",
			want: &Record{
				RUA:        []string{"https://r.example:8443/a%2Cb%3Bc?x=1", "mailto:a%2Bb@r.example?subject=tls", "https://[2001:db8::1]/r"},
				Extensions: []Extension{{Name: "x-ext", Value: "1.2"}, {Name: "Foo.bar_1", Value: "x/y"}},
			},
			canon: "v=TLSRPTv1; rua=https://r.example:8443/a%2Cb%3Bc?x=1,mailto:a%2Bb@r.example?subject=tls,https://[2001:db8::1]/r; x-ext=1.2; Foo.bar_1=x/y",
		},
		{txt: "v=TLSRPTv1;rua=MAILTO:A@Example.ORG", want: &Record{RUA: []string{"MAILTO:A@Example.ORG"}}, canon: "v=TLSRPTv1; rua=MAILTO:A@Example.ORG"},
	} {
		t.Run(tc.txt, func(t *testing.T) {
			r, err := ParseRecord(tc.txt)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, tc.want) {
				t.Fatalf("got  %#v\nwant %#v", r, tc.want)
			}
			canon := tc.canon
			if canon == "" {
				canon = tc.txt
			}
			if r.String() != canon {
				t.Fatalf("String() = %q, want %q", r.String(), canon)
			}
		})
	}
}

func TestParseRecordErrors(t *testing.T) {
	for _, tc := range []struct{ txt, says string }{
		{"", "does not start"},
		{"rua=mailto:a@example.org; v=TLSRPTv1", "does not start"},
		{"v=tlsrptv1; rua=mailto:a@example.org", "does not start"},
		{"v=TLSRPTv1", "no rua"},
		{"v=TLSRPTv1;", "no rua"},
		{"v=TLSRPTv1; x=y", "no rua"},
		{"v=TLSRPTv1 rua=mailto:a@example.org", "expected ';'"},
		{"v=TLSRPTv1; rua=mailto:a@example.org rub=x", "contains ' '"},
		{"v=TLSRPTv1; rua=mailto:a@example.org; rua=mailto:b@example.org", "rua given twice"},
		{"v=TLSRPTv1; rua=", "empty rua"},
		{"v=TLSRPTv1; rua=mailto:a@example.org,", "empty rua URI"},
		{"v=TLSRPTv1; rua=mailto:a@example.org,,mailto:b@example.org", "empty rua URI"},
		{"v=TLSRPTv1; rua=mailto:a@example.org,b@example.org", "no scheme (commas inside a URI must be %-encoded"},
		{"v=TLSRPTv1; rua=https://r.example/a,b", "no scheme"},
		{"v=TLSRPTv1; rua=http://r.example/", `scheme "http" not supported`},
		{"v=TLSRPTv1; rua=ftp://r.example/", "not supported"},
		{"v=TLSRPTv1; rua=mailto:", "no address"},
		{"v=TLSRPTv1; rua=mailto:nobody", "not one e-mail address"},
		{"v=TLSRPTv1; rua=mailto:a@b@c", "not one e-mail address"},
		{"v=TLSRPTv1; rua=mailto:a@ex..ample", "not one e-mail address"},
		{"v=TLSRPTv1; rua=mailto:a%zz@example.org", "bad %-encoding"},
		{"v=TLSRPTv1; rua=mailto:a@[192.0.2.1]", "bad domain"},
		{"v=TLSRPTv1; rua=https:r.example", "without a host"},
		{"v=TLSRPTv1; rua=https:///x", "without a host"},
		{"v=TLSRPTv1; rua=https://u:p@r.example/", "user information"},
		{"v=TLSRPTv1; rua=https://r..example/", "bad host"},
		{"v=TLSRPTv1; rua=https://r.example:99999/", "invalid port"},
		{"v=TLSRPTv1; rua=https://r.example:0/", "invalid port"},
		{"v=TLSRPTv1; rua=mailto:a@example.org.", "not one e-mail address"},
		{"v=TLSRPTv1; rua=https://r.example/\u00e4", "contains"},
		{"v=TLSRPTv1; rua=mailto:a@example.org; v=TLSRPTv1", "version field repeated"},
		{"v=TLSRPTv1; rua=mailto:a@example.org; x=", "empty value"},
		{"v=TLSRPTv1; rua=mailto:a@example.org; x", "without '='"},
		{"v=TLSRPTv1; rua=mailto:a@example.org; -x=1", "bad field name"},
		{"v=TLSRPTv1; rua=mailto:a@example.org; " + strings.Repeat("x", 33) + "=1", "bad field name"},
		{"v=TLSRPTv1; rua=mailto:a@example.org; x=a=b", "expected ';'"},
	} {
		t.Run(tc.txt, func(t *testing.T) {
			r, err := ParseRecord(tc.txt)
			if !errors.Is(err, ErrSyntax) || r != nil {
				t.Fatalf("ParseRecord = %v, %v; want ErrSyntax", r, err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	for _, tc := range []struct {
		name string
		txts []string
		rua  string
		err  error
	}{
		{"none", nil, "", ErrNoRecord},
		{"others", []string{"v=spf1 -all", "v=TLSRPTv10; rua=mailto:a@example.org", "v=TLSRPT1"}, "", ErrNoRecord},
		{"one", []string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.org"}, "mailto:a@example.org", nil},
		{"two", []string{"v=TLSRPTv1; rua=mailto:a@example.org", "v=TLSRPTv1;rua=mailto:b@example.org"}, "", ErrMultipleRecords},
		{"one broken", []string{"v=TLSRPTv1"}, "", ErrSyntax},
		{"one broken with space", []string{"v=TLSRPTv1 rua=mailto:a@example.org"}, "", ErrSyntax},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Select(tc.txts)
			if !errors.Is(err, tc.err) {
				t.Fatalf("Select = %v, %v; want %v", r, err, tc.err)
			}
			if tc.err == nil && (len(r.RUA) != 1 || r.RUA[0] != tc.rua) {
				t.Fatalf("rua %q, want %q", r.RUA, tc.rua)
			}
		})
	}
}
