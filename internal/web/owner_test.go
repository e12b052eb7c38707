package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// TestOwnerKeyOpensPrivateRoutes: each of a test's own routes answers only
// to the test's owner key; the test id (the mailbox every relay sees), a
// wrong key or another test's key get the 404 of a test that does not
// exist, and a deletion with them deletes nothing (issue 16).
func TestOwnerKeyOpensPrivateRoutes(t *testing.T) {
	e := newEnv(t, nil)
	created := e.now.Add(-time.Hour)
	const id, otherID = "ownedaaaaaaaaaaa", "otheraaaaaaaaaaa"
	open := func() string {
		return e.ownedTest(t, store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen})
	}
	key := open()
	otherKey := e.ownedTest(t, store.Test{ID: otherID, Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen})
	wrong, err := store.NewOwnerKey()
	if err != nil {
		t.Fatal(err)
	}
	// What a test that does not exist answers: the refusals must not
	// differ from it.
	_, missingPage := e.do(t, "GET", "/t/"+wrong+"/report", nil)
	_, missingAPI := e.do(t, "GET", "/api/v1/tests/nosuchtestaaaaaa", nil, bearer(wrong)...)

	routes := []struct {
		method string
		api    bool   // /api/v1/tests/{id}, else /t/{key}
		suffix string // the path after that
		ok     int
	}{
		{"GET", false, "", http.StatusOK},
		{"GET", false, "/report", http.StatusOK},
		{"GET", false, "/events", http.StatusOK},
		{"POST", false, "/delete", http.StatusOK},
		{"GET", true, "", http.StatusOK},
		{"GET", true, "/events", http.StatusOK},
		{"DELETE", true, "", http.StatusNoContent},
	}
	for _, rt := range routes {
		name := rt.method + " /t/{key}" + rt.suffix
		if rt.api {
			name = rt.method + " /api/v1/tests/{id}" + rt.suffix
		}
		t.Run(name, func(t *testing.T) {
			type try struct {
				name, path string
				hdr        []string
			}
			tries := []try{
				{"the test id", "/t/" + id + rt.suffix, nil},
				{"the test id upper case", "/t/OWNEDAAAAAAAAAAA" + rt.suffix, nil},
				{"a wrong key", "/t/" + wrong + rt.suffix, nil},
				{"a key cut short", "/t/" + key[:31] + rt.suffix, nil},
			}
			if rt.api {
				path := "/api/v1/tests/" + id + rt.suffix
				tries = []try{
					{"no key", path, nil},
					{"the test id as key", path, bearer(id)},
					{"a wrong key", path, bearer(wrong)},
					{"another test's key", path, bearer(otherKey)},
					{"the key in another scheme", path, []string{"Authorization", "Basic " + key}},
					{"the key in the path", "/api/v1/tests/" + key + rt.suffix, bearer(key)},
				}
			}
			for _, tr := range tries {
				code, body := e.doBounded(t, rt.method, tr.path, tr.hdr...)
				if code != http.StatusNotFound {
					t.Errorf("%s: %d, want 404", tr.name, code)
				}
				want := missingPage
				if rt.api || rt.suffix == "/events" {
					want = missingAPI
				}
				if !bytes.Equal(body, want) {
					t.Errorf("%s: answer %.100q… differs from a missing test's %.100q…", tr.name, body, want)
				}
			}
			if _, err := e.st.Test(t.Context(), id); err != nil {
				t.Fatalf("the test is gone after refused requests: %v", err)
			}
			// With the key.
			path, hdr := "/t/"+key+rt.suffix, []string(nil)
			if rt.api {
				path, hdr = "/api/v1/tests/"+id+rt.suffix, bearer(key)
			}
			var resp *http.Response
			if rt.suffix == "/events" { // a stream: headers only
				resp = e.doWith(t, rt.method, path, func(r *http.Request) {
					for i := 0; i+1 < len(hdr); i += 2 {
						r.Header.Set(hdr[i], hdr[i+1])
					}
				})
			} else {
				resp, _ = e.do(t, rt.method, path, nil, hdr...)
			}
			if resp.StatusCode != rt.ok {
				t.Fatalf("with the key: %d, want %d", resp.StatusCode, rt.ok)
			}
			if got := resp.Header.Get("Referrer-Policy"); got != "no-referrer" {
				t.Errorf("Referrer-Policy %q: the key in the URL would leak", got)
			}
			if rt.suffix == "/delete" || rt.method == "DELETE" {
				if _, err := e.st.Test(t.Context(), id); err == nil {
					t.Fatal("deleted with the key, but the test is still there")
				}
				if _, err := e.st.Test(t.Context(), otherID); err != nil {
					t.Fatalf("another test went with it: %v", err)
				}
				key = open()
			}
		})
	}
}

// TestOwnerKeyGivenOnceAndLinked: the start answers give the key once
// (the API's owner_key and url, the form's redirect), the pages link to
// themselves by it, and the test's later answers do not repeat it.
func TestOwnerKeyGivenOnceAndLinked(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Source.BaseURL = "https://mailsec.example" })
	resp, body := e.do(t, "POST", "/api/v1/tests", nil)
	var a addresses
	if err := json.Unmarshal(body, &a); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	if a.URL != "https://mailsec.example/t/"+a.OwnerKey || len(a.OwnerKey) != 32 {
		t.Fatalf("start: url %q, key %q", a.URL, a.OwnerKey)
	}
	if got, err := e.st.TestByOwnerKey(t.Context(), a.OwnerKey); err != nil || got.ID != a.ID {
		t.Fatalf("the key opens %+v, %v; want test %s", got, err, a.ID)
	}
	resp, body = e.do(t, "GET", "/api/v1/tests/"+a.ID, nil, bearer(a.OwnerKey)...)
	var ans TestAnswer
	if err := json.Unmarshal(body, &ans); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("get: %d %s", resp.StatusCode, body)
	}
	if ans.Test.OwnerKey != "" || ans.Test.URL != a.URL || ans.Report.URL != a.URL {
		t.Errorf("get: owner key %q, url %q, report url %q", ans.Test.OwnerKey, ans.Test.URL, ans.Report.URL)
	}
	for _, page := range []string{"/t/" + a.OwnerKey, "/t/" + a.OwnerKey + "/report"} {
		_, body := e.do(t, "GET", page, nil)
		if !bytes.Contains(body, []byte(`action="/t/`+a.OwnerKey+`/delete"`)) || bytes.Contains(body, []byte("/t/"+a.ID)) {
			t.Errorf("%s: the delete form is not by the key, or a link is by the id:\n%s", page, body)
		}
	}
	_, body = e.do(t, "GET", "/t/"+a.OwnerKey, nil)
	if !bytes.Contains(body, []byte(`data-key="`+a.OwnerKey+`"`)) {
		t.Errorf("live page: the event stream's key is missing:\n%s", body)
	}
	resp, _ = e.do(t, "POST", "/start", nil)
	key, _ := bytes.CutPrefix([]byte(resp.Header.Get("Location")), []byte("/t/"))
	if got, err := e.st.TestByOwnerKey(t.Context(), string(key)); resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("the form's redirect %q opens %+v, %v", resp.Header.Get("Location"), got, err)
	}
}

// TestLegacyTestOpensByID: a test from before owner keys (migration 0015
// made its id its key) opens by its id, as its old links do.
func TestLegacyTestOpensByID(t *testing.T) {
	e := newEnv(t, nil)
	created := e.now.Add(-time.Hour)
	const id = "legacyaaaaaaaaaa"
	if err := e.st.CreateTest(t.Context(), store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.do(t, "GET", "/t/"+id, nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("a test without keys opened by its id: %d", resp.StatusCode)
	}
	if err := e.st.AddOwnerKey(t.Context(), id, id, store.KeyLegacyID, created); err != nil {
		t.Fatal(err)
	}
	if resp, _ := e.do(t, "GET", "/t/"+id+"/report", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("legacy report by id: %d", resp.StatusCode)
	}
	if resp, _ := e.do(t, "GET", "/api/v1/tests/"+id, nil, bearer(id)...); resp.StatusCode != http.StatusOK {
		t.Errorf("legacy API by id: %d", resp.StatusCode)
	}
}

// doBounded is do for a request that may wrongly open an event stream: it
// reads the answer for at most a few seconds (a bound, not an assertion:
// an answer still streaming then is returned as read so far).
func (e *env) doBounded(t *testing.T, method, path string, hdr ...string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}
