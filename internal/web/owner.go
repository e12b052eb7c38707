package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/mailsec/mailsec/internal/store"
)

// Owner keys (docs/web.md "Owner keys", docs/api.md "Authentication").
//
// The test id cannot open a test: it is the local part of the test's
// addresses, so the sender's mail logs, its queue and every relay see it.
// A test opens with one of its owner keys (store.NewOwnerKey: 160 random
// bits; the store keeps only their SHA-256): the one made at creation and
// given once to the creator, and the one its result mail carries.
//
//   - The pages a browser opens (the live page, the report, its event
//     stream, the delete button) are at /t/{key}: a browser cannot send
//     a header on a link or an EventSource, and the result mail's link
//     must open the report. A key in a URL can leak through Referer and
//     logs, so every answer has Referrer-Policy: no-referrer and private
//     pages Cache-Control: no-store (web.go, private.go), our logs never
//     name a path under /t/, and the pages link only to themselves.
//   - The API names the test by id in its path (as before) and takes the
//     key in "Authorization: Bearer <key>" (RFC 6750 §2.1), out of URLs,
//     proxy logs and shell history.
//
// Anything that does not open the test — no key, a wrong key, a key of
// another test, the test id — is 404, as for a test that does not exist
// (403 would confirm the id exists); the look-up is by the key's hash
// (store.TestByOwnerKey), so its time says nothing about the key.

// errNoSuchTest is what a request that opens no test is told.
const errNoSuchTest = "no such test (it may have been deleted)"

// owned returns the test the request opens, and the key that opened it;
// an error wrapping store.ErrNotFound if it opens none.
func (s *Server) owned(r *http.Request) (store.Test, string, error) {
	if key := r.PathValue("key"); key != "" {
		t, err := s.o.Source.Store.TestByOwnerKey(r.Context(), key)
		return t, strings.ToLower(key), err
	}
	key, ok := bearerKey(r)
	if !ok {
		return store.Test{}, "", fmt.Errorf("web: no owner key: %w", store.ErrNotFound)
	}
	t, err := s.o.Source.Store.TestByOwnerKey(r.Context(), key)
	if err != nil {
		return store.Test{}, "", err
	}
	// The key opens one test; the path must name that one.
	if t.ID != strings.ToLower(r.PathValue("id")) {
		return store.Test{}, "", fmt.Errorf("web: owner key of another test: %w", store.ErrNotFound)
	}
	return t, strings.ToLower(key), nil
}

// bearerKey is the key of "Authorization: Bearer <key>" (RFC 6750 §2.1;
// the scheme is case-insensitive, RFC 9110 §11.1).
func bearerKey(r *http.Request) (string, bool) {
	scheme, key, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	key = strings.TrimSpace(key)
	return key, key != ""
}
