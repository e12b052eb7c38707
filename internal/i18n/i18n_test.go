package i18n

import (
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// verbs are the fmt verbs of a format, in order ("%s", "%[2]s"); "%%" is
// no verb.
var verbRE = regexp.MustCompile(`%(\[\d+\])?[-+# 0]*\d*(\.\d+)?[a-zA-Z%]`)

func verbs(format string) []string {
	var out []string
	for _, v := range verbRE.FindAllString(format, -1) {
		if v != "%%" {
			out = append(out, v)
		}
	}
	return out
}

// completeness lists what is wrong with catalogue cat measured against the
// English one: keys missing, keys English lacks, verbs that differ, empty
// messages.
func completeness(t *testing.T, name string, cat, en map[string]string) []string {
	t.Helper()
	var bad []string
	for k, v := range en {
		m, ok := cat[k]
		switch {
		case !ok:
			bad = append(bad, name+": missing "+k)
		case strings.TrimSpace(m) == "":
			bad = append(bad, name+": empty "+k)
		case !slices.Equal(verbs(m), verbs(v)):
			bad = append(bad, name+": "+k+": placeholders "+strings.Join(verbs(m), " ")+" but English has "+strings.Join(verbs(v), " "))
		}
	}
	for k := range cat {
		if _, ok := en[k]; !ok {
			bad = append(bad, name+": "+k+" is not in the English catalogue")
		}
	}
	slices.Sort(bad)
	return bad
}

// TestCatalogues: every language has every message, with the same
// placeholders in the same order.
func TestCatalogues(t *testing.T) {
	for _, l := range Supported {
		for _, p := range completeness(t, string(l), catalogues[l], catalogues[English]) {
			t.Error(p)
		}
	}
}

// TestCompletenessCatches: the check above fails on a missing message and
// on a placeholder that differs (so that TestCatalogues can fail).
func TestCompletenessCatches(t *testing.T) {
	en := map[string]string{"a": "%s of %d", "b": "plain"}
	for _, tc := range []struct {
		name string
		cat  map[string]string
		want int
	}{
		{"complete", map[string]string{"a": "%s von %d", "b": "schlicht"}, 0},
		{"missing", map[string]string{"a": "%s von %d"}, 1},
		{"verb swapped", map[string]string{"a": "%d von %s", "b": "schlicht"}, 1},
		{"verb dropped", map[string]string{"a": "%s", "b": "schlicht"}, 1},
		{"extra key", map[string]string{"a": "%s von %d", "b": "x", "c": "y"}, 1},
		{"empty", map[string]string{"a": "%s von %d", "b": " "}, 1},
	} {
		if got := completeness(t, tc.name, tc.cat, en); len(got) != tc.want {
			t.Errorf("%s: %d problems %q, want %d", tc.name, len(got), got, tc.want)
		}
	}
}

// TestGermanDiffers: a German message that equals the English one is
// most likely untranslated (a few words are the same in both).
func TestGermanDiffers(t *testing.T) {
	same := map[string]bool{"report.history.server": true, "web.live.h1": true, "web.title.test": true}
	for k, v := range catalogues[English] {
		if strings.HasPrefix(k, "text.") || !strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyz") {
			continue
		}
		if catalogues[German][k] == v && !same[k] && len(strings.Fields(v)) > 1 {
			t.Errorf("%s: German is the English %q", k, v)
		}
	}
}

func TestT(t *testing.T) {
	if got := T(German, "report.summary.so-far", "x"); got != "Bisher: x" {
		t.Errorf("German: %q", got)
	}
	if got := T(English, "report.summary.so-far", "x"); got != "So far: x" {
		t.Errorf("English: %q", got)
	}
	if got := T("fr", "report.summary.so-far", "x"); got != "So far: x" {
		t.Errorf("unsupported language: %q, want English", got)
	}
	if !Has("report.summary.so-far") || Has("no.such.key") {
		t.Error("Has")
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Lang
		ok   bool
	}{
		{"de", German, true}, {"DE", German, true}, {"de-AT", German, true}, {"en-GB", English, true},
		{"en", English, true}, {"fr", "", false}, {"", "", false}, {"x y", "", false},
	} {
		got, err := Parse(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFromRequest(t *testing.T) {
	for _, tc := range []struct {
		name, query, cookie, accept string
		want                        Lang
	}{
		{"default", "", "", "", English},
		{"accept german", "", "", "de-DE,de;q=0.9,en;q=0.8", German},
		{"accept weighted", "", "", "en;q=0.5, de;q=0.9", German},
		{"accept other", "", "", "fr-FR, it", English},
		{"accept malformed", "", "", ";;;q=x", English},
		{"cookie over accept", "", "en", "de", English},
		{"query over cookie", "de", "en", "en", German},
		{"bad query ignored", "xx", "de", "", German},
		{"bad cookie ignored", "", "xx", "de", German},
	} {
		r := httptest.NewRequest("GET", "/?lang="+tc.query, nil)
		if tc.cookie != "" {
			r.Header.Set("Cookie", Cookie+"="+tc.cookie)
		}
		if tc.accept != "" {
			r.Header.Set("Accept-Language", tc.accept)
		}
		if got := FromRequest(r); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestFormatted: a text formatted in English at run time and stored (a
// result mail's reason) reads in German through the catalogued formats,
// its arguments too; English and unknown texts stay as they are.
func TestFormatted(t *testing.T) {
	withheld := "not sent, to prevent backscatter: the test mail's sender was not authenticated: SPF fail for example.org from 192.0.2.1 (no match), and no valid DKIM signature aligned with example.org"
	for _, tc := range []struct {
		l        Lang
		in, want string
	}{
		{German, withheld, "nicht gesendet, um Rückstreuung (Backscatter) zu vermeiden: der Absender der Testmail war nicht authentifiziert: SPF fail für example.org von 192.0.2.1 (no match), und keine gültige DKIM-Signatur passend zu example.org"},
		{German, "sender authenticated: SPF pass for example.org from 192.0.2.1", "Absender authentifiziert: SPF pass für example.org von 192.0.2.1"},
		{German, "result mails are turned off on this service", "Ergebnismails sind auf diesem Dienst abgeschaltet"},
		{German, "550 5.1.1 no such user", "550 5.1.1 no such user"},
		{English, withheld, withheld},
	} {
		if got := Formatted(tc.l, tc.in); got != tc.want {
			t.Errorf("Formatted(%s, %q)\n got %q\nwant %q", tc.l, tc.in, got, tc.want)
		}
	}
}

// TestTextsOnce: an English text has one entry across texts.go, inbound.go
// and why.go; a second would silently replace the first one's German.
func TestTextsOnce(t *testing.T) {
	seen := map[string]bool{}
	for _, list := range [][]struct{ en, de string }{texts, inboundTexts, whyTexts} {
		for _, x := range list {
			if seen[x.en] {
				t.Errorf("%q has two entries", x.en)
			}
			seen[x.en] = true
		}
	}
}
