package i18n

import "testing"

// FuzzLanguage: whatever a browser or a client sends as Accept-Language,
// ?lang= or the cookie, the answer is a supported language, never a panic;
// Parse accepts only a supported one.
func FuzzLanguage(f *testing.F) {
	for _, s := range []string{"de-DE,de;q=0.9,en;q=0.8", "en", "*", "de;q=0", ";;;q=x", "zh-Hant-TW, de-CH;q=0.5", "x-klingon"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if l := FromAcceptLanguage(s); !l.Valid() {
			t.Fatalf("FromAcceptLanguage(%q) = %q", s, l)
		}
		if l, err := Parse(s); err == nil && !l.Valid() {
			t.Fatalf("Parse(%q) = %q without an error", s, l)
		}
	})
}
