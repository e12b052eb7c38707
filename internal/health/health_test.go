package health

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbes(t *testing.T) {
	broken := errors.New("disk gone\nsecond line")
	stuck := make(chan struct{}) // a check that never returns (released at the end)
	defer close(stuck)
	tests := []struct {
		name   string
		checks []Check
		status int
		body   string
	}{
		{"all pass", []Check{{"store", func(context.Context) error { return nil }}, {"keys", func(context.Context) error { return nil }}},
			http.StatusOK, "ok store\nok keys\n"},
		{"one fails", []Check{{"store", func(context.Context) error { return broken }}, {"keys", func(context.Context) error { return nil }}},
			http.StatusServiceUnavailable, "fail store: disk gone; second line\nok keys\n"},
		{"one hangs", []Check{{"resolver", func(context.Context) error { <-stuck; return nil }}},
			http.StatusServiceUnavailable, "fail resolver: no answer within 50ms: context deadline exceeded\n"},
		{"none", nil, http.StatusOK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mux := http.NewServeMux()
			New(50*time.Millisecond, tt.checks...).Register(mux)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			get := func(path string) (int, string) {
				t.Helper()
				resp, err := http.Get(srv.URL + path)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			if code, body := get("/readyz"); code != tt.status || body != tt.body {
				t.Errorf("/readyz: %d %q, want %d %q", code, body, tt.status, tt.body)
			}
			if code, body := get("/healthz"); code != http.StatusOK || body != "ok\n" {
				t.Errorf("/healthz: %d %q", code, body)
			}
		})
	}
}
