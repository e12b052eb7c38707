package web

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/reportsource"
	"github.com/mailsec/mailsec/internal/store"
)

// FuzzOwnerKey sends arbitrary text as the owner key of a test's page
// (the path segment of /t/{key}/report) and as the Authorization header of
// its API answer. Only input that carries the test's key opens it; nothing
// else does (the test id included), and nothing makes the server fail.
func FuzzOwnerKey(f *testing.F) {
	st, err := store.Open(f.Context(), filepath.Join(f.TempDir(), "db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	const id = "fuzzedtestaaaaaa"
	key, err := store.NewOwnerKey()
	if err != nil {
		f.Fatal(err)
	}
	now := time.Now().UTC()
	if err := st.CreateTest(f.Context(), store.Test{ID: id, Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen, OwnerKey: key}); err != nil {
		f.Fatal(err)
	}
	srv := New(Options{Source: reportsource.Source{Store: st, ZoneA: "a.example", ZoneB: "b.example",
		Evidence: evidence.Gatherer{Store: st, Rules: evidence.Rules{Quiet: time.Minute, PrefixV4: 24, PrefixV6: 48}}}, ZoneA: "a.example", ZoneB: "b.example"})
	for _, s := range []string{key, strings.ToUpper(key), id, "Bearer " + key, "bearer  " + key + " ", "Basic " + key, key[:31], key + "a",
		"", " ", "%2e%2e", "../" + key, key + "\x00", "Bearer\t" + key, "Bearer " + id, strings.Repeat("a", 70)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if len(in) > 4<<10 {
			t.Skip()
		}
		carries := strings.Contains(strings.ToLower(in), key)
		if req, err := http.NewRequest("GET", "/t/"+url.PathEscape(in)+"/report", nil); err == nil {
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, req)
			if w.Code == http.StatusOK && !carries || w.Code >= 500 {
				t.Fatalf("GET /t/%q/report: %d", in, w.Code)
			}
			if strings.EqualFold(in, key) && w.Code != http.StatusOK {
				t.Fatalf("GET /t/{the key in any case}/report: %d", w.Code)
			}
		}
		req := httptest.NewRequest("GET", "/api/v1/tests/"+id, nil)
		req.Header["Authorization"] = []string{in}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if w.Code == http.StatusOK && !carries || w.Code >= 500 {
			t.Fatalf("Authorization %q: %d", in, w.Code)
		}
	})
}
