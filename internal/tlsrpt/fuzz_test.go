package tlsrpt

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzParseRecord: ParseRecord never panics, errors wrap ErrSyntax, and a
// parsed record formats (Record.String) to a text that parses to the same
// record and is stable.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{
		"v=TLSRPTv1; rua=mailto:tls@example.org",
		"v=TLSRPTv1 ;\trua=mailto:reports@example.com , https://reporting.example.com/v1/tlsrptsubmit ;",
		"v=TLSRPTv1; x-ext=1.2; rua=https://r.example:8443/a%2Cb%3Bc?x=1,mailto:a%2Bb@r.example?subject=tls; y=x/y ",
		"v=TLSRPTv1; rua=https://[2001:db8::1]/r,mailto:a@example.org,b@example.org",
		"v=TLSRPTv1; rua=mailto:a@example.org; rua=http://x/",
		"v=TLSRPTv1",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err != nil {
			if r != nil || !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseRecord = %v, %v", r, err)
			}
			return
		}
		if len(r.RUA) == 0 {
			t.Fatalf("record without rua from %q", s)
		}
		text := r.String()
		again, err := ParseRecord(text)
		if err != nil {
			t.Fatalf("formatted record %q (from %q) does not parse: %v", text, s, err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip changed the record: %q → %q", s, text)
		}
		if again.String() != text {
			t.Fatalf("String not stable: %q → %q", text, again.String())
		}
		if sel, err := Select([]string{"v=spf1 -all", s}); err != nil || !reflect.DeepEqual(sel, r) {
			t.Fatalf("Select disagrees with ParseRecord for %q: %v", s, err)
		}
	})
}
