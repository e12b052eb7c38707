package scan

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// testNorm stands in for dnsname.NormalizeDomain in this package's unit
// tests: UTS #46 lookup mapping to A-labels, one trailing dot allowed.
func testNorm(s string) (string, error) {
	s = strings.TrimSuffix(s, ".")
	if s == "" || strings.Contains(s, "..") || strings.ContainsAny(s, "@/: ") {
		return "", errors.New("not a host name")
	}
	a, err := idna.Lookup.ToASCII(s)
	if err != nil {
		return "", err
	}
	for l := range strings.SplitSeq(a, ".") {
		if l == "" {
			return "", errors.New("empty label")
		}
	}
	return strings.ToLower(a), nil
}

func TestParseLine(t *testing.T) {
	tests := []struct {
		in, def            string
		skip               bool
		domain, label, in2 string
		err                string // substring; "" = no error
	}{
		{in: "", skip: true},
		{in: "   \t", skip: true},
		{in: "# a comment", skip: true},
		{in: "  # indented comment, example.org", skip: true},
		{in: "example.org", domain: "example.org", in2: "example.org"},
		{in: "Example.ORG.\r\n", domain: "example.org", in2: "Example.ORG."},
		{in: "example.org,law firm", domain: "example.org", label: "law firm"},
		{in: "example.org, \"law firm\" ", domain: "example.org", label: "law firm"},
		{in: "example.org\tpublic authority", domain: "example.org", label: "public authority"},
		{in: "example.org   authority", domain: "example.org", label: "authority"},
		{in: "example.org", def: "unlabelled", domain: "example.org", label: "unlabelled"},
		{in: "bücher.example,shop", domain: "xn--bcher-kva.example", label: "shop", in2: "bücher.example"},
		{in: "bad..name", in2: "bad..name", err: "not a domain name"},
		{in: ",law firm", err: "no domain"},
		{in: "x.example,a\x01b", err: "control character"},
		{in: "x.example," + strings.Repeat("l", 201), err: "longer than 200"},
		{in: "\xff\xfe.example", err: "UTF-8"},
		{in: "user@example.org", err: "not a domain name"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			l, skip := ParseLine(7, tt.in, testNorm, tt.def)
			if skip != tt.skip {
				t.Fatalf("skip = %v, want %v", skip, tt.skip)
			}
			if skip {
				return
			}
			if tt.err != "" {
				if !strings.Contains(l.Err, tt.err) || l.Domain != "" {
					t.Fatalf("got %+v, want error containing %q", l, tt.err)
				}
				return
			}
			if l.Err != "" || l.Domain != tt.domain || l.Label != tt.label || l.N != 7 {
				t.Fatalf("got %+v, want domain %q label %q", l, tt.domain, tt.label)
			}
			if tt.in2 != "" && l.Input != tt.in2 {
				t.Errorf("input %q, want %q", l.Input, tt.in2)
			}
		})
	}
}

func TestReadLines(t *testing.T) {
	in := "\uFEFFa.example\n\n# c\n" + strings.Repeat("x", 5000) + ".example\nb.example,lab\nno-newline.example"
	var got []string
	n, err := ReadLines(strings.NewReader(in), testNorm, "", func(l Line) error {
		got = append(got, fmt.Sprintf("%d|%s|%s|%v", l.N, l.Domain, l.Label, l.Err != ""))
		return nil
	})
	if err != nil || n != 6 {
		t.Fatalf("n=%d err=%v", n, err)
	}
	want := []string{"1|a.example||false", "4|||true", "5|b.example|lab|false", "6|no-newline.example||false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	// An error from fn stops the reading.
	stop := errors.New("stop here")
	if _, err := ReadLines(strings.NewReader("a.example\nb.example\n"), testNorm, "", func(Line) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("err = %v", err)
	}
	// A read error is reported with the line.
	if _, err := ReadLines(io.MultiReader(strings.NewReader("a.example\n"), errReader{}), testNorm, "", func(Line) error { return nil }); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("read error: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"example.org", "example.org,law firm", "bücher.example\tx", "# c", "", ",", "a..b", "\xff", "x.example,\"\"", "\uFEFFa.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, skip := ParseLine(1, s, testNorm, "def")
		if skip {
			if c := strings.TrimSpace(strings.TrimPrefix(strings.TrimRight(s, "\r\n"), "\uFEFF")); c != "" && !strings.HasPrefix(c, "#") {
				t.Fatalf("skipped a line with content: %q", s)
			}
			return
		}
		if (l.Err == "") == (l.Domain == "") {
			t.Fatalf("exactly one of domain and error must be set: %+v", l)
		}
		if l.Err == "" {
			if d, err := testNorm(l.Domain); err != nil || d != l.Domain {
				t.Fatalf("domain %q is not normal: %q %v", l.Domain, d, err)
			}
			if l.Label == "" {
				t.Fatalf("default label lost: %+v", l)
			}
		}
		if !utf8.ValidString(l.Input) || !utf8.ValidString(l.Label) || !utf8.ValidString(l.Err) {
			t.Fatalf("invalid UTF-8 in %+v", l)
		}
		if len(l.Label) > MaxLabelBytes+len("…") {
			t.Fatalf("label too long: %d", len(l.Label))
		}
		// Whatever is parsed reads back the same through ReadLines.
		var got []Line
		if _, err := ReadLines(strings.NewReader(strings.ReplaceAll(s, "\n", " ")+"\n"), testNorm, "def", func(x Line) error {
			got = append(got, x)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}
