package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailsec/mailsec/internal/dnsname"
)

// maxFuzzDomain bounds the fuzzed input: longer input than the form's
// field is refused as a whole, and the properties do not depend on size.
const maxFuzzDomain = 2 << 10

// FuzzCheckDomain posts arbitrary text as the domain of the inbound
// check's API. The check runs exactly for the name the check itself would
// normalise the text to; anything else is refused as bad input (400), with
// an error that is bounded, printable text; and nothing reaches the check
// that it would refuse (which the page would show as a failed check).
func FuzzCheckDomain(f *testing.F) {
	for _, s := range []string{
		"example.org", " Example.ORG. ", "Bücher.example", "例え.テスト。", "xn--bcher-kva.example",
		"user@example.org", "192.0.2.1", "[2001:db8::1]", "a..b", "-a.example", "a_b.example", "localhost",
		"a\x00b.example", "exa\\046mple.org", "a\r\nb.example", strings.Repeat("a.", 130) + "example", "\xff.example", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) > maxFuzzDomain {
			t.Skip()
		}
		// A server per input: its check cache must not answer for an
		// earlier input's check.
		var got []string
		srv := New(Options{CheckLimit: 1 << 30, Check: func(ctx context.Context, domain string) ([]byte, error) {
			got = append(got, domain)
			return []byte(`{}`), nil
		}})
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/api/v1/check?domain="+url.QueryEscape(in), nil))
		want, err := dnsname.NormalizeDomain(in)
		if err == nil {
			if w.Code != http.StatusOK || len(got) != 1 || got[0] != want {
				t.Fatalf("%q: status %d, checked %q; want 200 and a check of %q", in, w.Code, got, want)
			}
			return
		}
		if w.Code != http.StatusBadRequest || len(got) != 0 {
			t.Fatalf("%q: status %d, checked %q; want 400 (%v)", in, w.Code, got, err)
		}
		var body struct{ Error string }
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error == "" {
			t.Fatalf("%q: body %q, %v", in, w.Body.String(), err)
		}
		if len(body.Error) > 300 || !utf8.ValidString(body.Error) || strings.ContainsFunc(body.Error, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("%q: error %q is not short printable text", in, body.Error)
		}
	})
}
