package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// TestPrivatePages: a test's pages and API answers carry Cache-Control:
// no-store and answer only under the configured host names (421 for
// others); public pages are neither marked nor refused.
func TestPrivatePages(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Hostnames = []string{"127.0.0.1", "MailSec.Example."} })
	resp, body := e.do(t, "POST", "/api/v1/tests", nil)
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("start: %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	var created struct {
		ID  string
		Key string `json:"owner_key"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatal(err)
	}
	id, key := created.ID, created.Key
	private := []struct{ method, path string }{
		{"GET", "/t/" + key}, {"GET", "/t/" + key + "/report"}, {"GET", "/api/v1/tests/" + id},
		{"GET", "/t/" + key + "/events"}, {"GET", "/api/v1/tests/" + id + "/events"},
		{"POST", "/api/v1/tests"}, {"POST", "/start"},
		{"POST", "/t/" + key + "/delete"}, {"DELETE", "/api/v1/tests/" + id},
	}
	host := func(h string) func(*http.Request) {
		return func(r *http.Request) { r.Host = h; r.Header.Set("Authorization", "Bearer "+key) }
	}
	// Refused under another name: nothing is served, nothing deleted.
	for _, p := range private {
		for _, h := range []string{"attacker.example", "attacker.example:" + port(t, e)} {
			resp := e.doWith(t, p.method, p.path, host(h))
			if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s as %s: %d, Cache-Control %q; want 421, no-store", p.method, p.path, h, resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
		}
	}
	// Served under the configured names, never cacheable.
	for _, p := range private[:3] {
		for _, h := range []string{"mailsec.example", "mailsec.example:443", "127.0.0.1:" + port(t, e)} {
			resp := e.doWith(t, p.method, p.path, host(h))
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("%s %s as %s: %d, Cache-Control %q; want 200, no-store", p.method, p.path, h, resp.StatusCode, resp.Header.Get("Cache-Control"))
			}
		}
	}
	// Public pages: any host, cacheability unchanged.
	for _, path := range []string{"/", "/providers", "/api/v1/providers", "/static/style.css"} {
		resp := e.doWith(t, "GET", path, host("attacker.example"))
		if resp.StatusCode == http.StatusMisdirectedRequest || resp.Header.Get("Cache-Control") == "no-store" {
			t.Errorf("public %s: %d, Cache-Control %q", path, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
	}
}

func port(t *testing.T, e *env) string {
	t.Helper()
	u, err := url.Parse(e.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}

// doWith sends a request changed by edit (its Host), reading headers only:
// event streams do not end, so the body is left unread.
func (e *env) doWith(t *testing.T, method, path string, edit func(*http.Request)) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	edit(req)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}
