package hardening

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"net/http"
	"strings"
)

// ownerKey: a test's own routes (its live page, report, events and
// deletion; the API's test, events and DELETE) answer only to the test's
// owner key. The test ID (the mailbox every relay sees), a wrong key and
// another test's key get 404 and delete nothing; with the key each route
// works (docs/web.md "Owner keys", issue 16).
func (s *Suite) ownerKey(ctx context.Context) Check {
	var tests [3]createdTest
	for i := range tests {
		t, err := s.createTest(ctx, source(96, 1+i, 1))
		if err != nil {
			return result([]string{err.Error()}, nil, "")
		}
		if t.Key == "" {
			return result([]string{"POST /api/v1/tests gave no owner_key"}, nil, "")
		}
		tests[i] = t
	}
	a, b, c := tests[0], tests[1], tests[2]
	wrong := randomKey()
	type req struct {
		what, method, path, key string // key: sent as Authorization: Bearer
		want                    int
	}
	var reqs []req
	for _, sfx := range []string{"", "/report", "/events"} {
		reqs = append(reqs, req{"the ID as key", "GET", "/t/" + a.ID + sfx, "", 404}, req{"a wrong key", "GET", "/t/" + wrong + sfx, "", 404})
	}
	reqs = append(reqs, req{"the ID as key", "POST", "/t/" + a.ID + "/delete", "", 404}, req{"a wrong key", "POST", "/t/" + wrong + "/delete", "", 404})
	for _, api := range []struct{ method, sfx string }{{"GET", ""}, {"GET", "/events"}, {"DELETE", ""}} {
		p := "/api/v1/tests/" + a.ID + api.sfx
		reqs = append(reqs, req{"no key", api.method, p, "", 404}, req{"the ID as key", api.method, p, a.ID, 404},
			req{"a wrong key", api.method, p, wrong, 404}, req{"another test's key", api.method, p, b.Key, 404})
	}
	refused := len(reqs)
	// After those, nothing is deleted: with the key every route answers.
	reqs = append(reqs, req{"the key", "GET", "/t/" + a.Key, "", 200}, req{"the key", "GET", "/t/" + a.Key + "/report", "", 200},
		req{"the key", "GET", "/t/" + a.Key + "/events", "", 200},
		req{"the key", "GET", "/api/v1/tests/" + a.ID, a.Key, 200}, req{"the key", "GET", "/api/v1/tests/" + a.ID + "/events", a.Key, 200})
	var bad []string
	for _, r := range reqs {
		code, hdr, err := s.ownerRequest(ctx, r.method, r.path, r.key)
		switch {
		case err != nil:
			bad = append(bad, err.Error())
		case code != r.want:
			bad = append(bad, fmt.Sprintf("%s %s with %s: %d, want %d", r.method, redactPath(r.path, a), r.what, code, r.want))
		case code == http.StatusOK && hdr.Get("Referrer-Policy") != "no-referrer":
			bad = append(bad, fmt.Sprintf("%s %s: Referrer-Policy %q: the key in the URL would leak", r.method, redactPath(r.path, a), hdr.Get("Referrer-Policy")))
		}
	}
	opened := len(reqs) - refused
	// Deletion with the key: the API's and the delete button's.
	deleted := 0
	for _, d := range []struct {
		t            createdTest
		method, path string
		key          string
		want         int
	}{
		{a, "DELETE", "/api/v1/tests/" + a.ID, a.Key, http.StatusNoContent},
		{c, "POST", "/t/" + c.Key + "/delete", "", http.StatusOK},
	} {
		code, _, err := s.ownerRequest(ctx, d.method, d.path, d.key)
		if err != nil || code != d.want {
			bad = append(bad, fmt.Sprintf("%s %s with the key: %d %v, want %d", d.method, redactPath(d.path, d.t), code, err, d.want))
			continue
		}
		if code, _, err := s.ownerRequest(ctx, "GET", "/api/v1/tests/"+d.t.ID, d.t.Key); err != nil || code != http.StatusNotFound {
			bad = append(bad, fmt.Sprintf("test %s after its deletion: %d %v, want 404", d.t.ID, code, err))
			continue
		}
		deleted++
	}
	// The other test was not touched by any of it.
	if code, _, err := s.ownerRequest(ctx, "GET", "/api/v1/tests/"+b.ID, b.Key); err != nil || code != http.StatusOK {
		bad = append(bad, fmt.Sprintf("another test after all this: %d %v, want 200", code, err))
	}
	return result(bad, map[string]any{"refused": refused, "opened": opened, "deleted": deleted},
		fmt.Sprintf("%d requests without the right key (404 wanted, nothing deleted), %d with it, %d deletions with it", refused, opened, deleted))
}

// ownerRequest sends one request to a test's route; key, if set, as
// Authorization: Bearer. It reads no body (an event stream would not end)
// and returns the status and headers.
func (s *Suite) ownerRequest(ctx context.Context, method, path, key string) (int, http.Header, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, method, strings.TrimSuffix(s.Env.Web, "/")+path, nil)
	if err != nil {
		return 0, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := httpFrom(source(96, 9, 1)).Do(req)
	if err != nil {
		return 0, nil, err
	}
	resp.Body.Close() // unread: the client keeps no connection alive
	return resp.StatusCode, resp.Header, nil
}

// randomKey is a key of the owner keys' form that opens nothing.
func randomKey() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// redactPath is path with t's key shown as {key}: the report is kept.
func redactPath(path string, t createdTest) string {
	if t.Key == "" {
		return path
	}
	return strings.ReplaceAll(path, t.Key, "{key}")
}
