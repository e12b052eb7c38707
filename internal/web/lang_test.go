package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestStartLanguage: a test's result-mail language is the one the start
// asks for ("lang"), else the request's (Accept-Language, the switch's
// cookie); an unsupported one is refused, not silently English; the
// report in the API answer reads in the request's language.
func TestStartLanguage(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.StartLimit = 100 })
	asJSON := []string{"Content-Type", "application/json"}
	for _, tc := range []struct {
		name, body string
		hdr        []string
		code       int
		want       string
	}{
		{"json lang", `{"lang": "de"}`, asJSON, http.StatusCreated, "de"},
		{"form lang", "lang=de", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusCreated, "de"},
		{"accept-language", `{}`, append(asJSON, "Accept-Language", "de-DE,de;q=0.9"), http.StatusCreated, "de"},
		{"cookie", `{}`, append(asJSON, "Cookie", "lang=de"), http.StatusCreated, "de"},
		{"default", `{}`, asJSON, http.StatusCreated, "en"},
		{"lang over accept-language", `{"lang": "en"}`, append(asJSON, "Accept-Language", "de"), http.StatusCreated, "en"},
		{"unsupported", `{"lang": "fr"}`, asJSON, http.StatusBadRequest, ""},
	} {
		resp, body := e.do(t, "POST", "/api/v1/tests", strings.NewReader(tc.body), tc.hdr...)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.code)
			continue
		}
		if tc.code != http.StatusCreated {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if got["lang"] != tc.want {
			t.Errorf("%s: lang %v, want %s", tc.name, got["lang"], tc.want)
		}
		// Stored with the test: the result mail's language.
		stored, err := e.st.Test(t.Context(), got["id"].(string))
		if err != nil || stored.Lang != tc.want {
			t.Errorf("%s: stored lang %q (%v), want %s", tc.name, stored.Lang, err, tc.want)
		}
	}
}

// TestPageLanguage: pages follow Accept-Language, the ?lang= switch sets
// a cookie, and the switch links to the other language.
func TestPageLanguage(t *testing.T) {
	e := newEnv(t, nil)
	_, en := e.do(t, "GET", "/providers", nil)
	if !strings.Contains(string(en), `<html lang="en">`) || !strings.Contains(string(en), `href="?lang=de"`) {
		t.Errorf("English page:\n%s", en)
	}
	_, de := e.do(t, "GET", "/providers", nil, "Accept-Language", "de")
	if !strings.Contains(string(de), `<html lang="de">`) || !strings.Contains(string(de), "Domain prüfen") || !strings.Contains(string(de), `href="?lang=en"`) {
		t.Errorf("German page:\n%s", de)
	}
	resp, _ := e.do(t, "GET", "/providers?lang=de", nil)
	var set bool
	for _, c := range resp.Cookies() {
		set = set || c.Name == "lang" && c.Value == "de"
	}
	if !set {
		t.Errorf("?lang=de set no cookie: %v", resp.Header["Set-Cookie"])
	}
}
