package web

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// TestCheckConcurrency: with CheckConcurrency checks running, one more is
// answered 503 with Retry-After, and runs once a slot is free.
func TestCheckConcurrency(t *testing.T) {
	started, release := make(chan string, 4), make(chan struct{})
	e := newEnv(t, func(o *Options) {
		o.CheckLimit, o.CheckConcurrency = 10, 1
		o.Check = func(ctx context.Context, domain string) ([]byte, error) {
			started <- domain
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return []byte(`{"schema":"mailsec.check.v1","domain":"` + domain + `"}`), nil
		}
	})
	first := make(chan int, 1)
	go func() {
		resp, _ := e.do(t, "POST", "/api/v1/check?domain=a.example", nil)
		first <- resp.StatusCode
	}()
	if d := <-started; d != "a.example" {
		t.Fatalf("started %q", d)
	}
	// Bounded: without the limit the second check would wait for the
	// first one's release.
	type answer struct {
		resp *http.Response
		body []byte
	}
	second := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), "POST", e.ts.URL+"/api/v1/check?domain=b.example", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			second <- answer{}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		second <- answer{resp, b}
	}()
	var a answer
	select {
	case a = <-second:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the second check was not refused while the first ran")
	}
	resp, body := a.resp, a.body
	if resp == nil {
		t.Fatal("second check: no answer")
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second check while one runs: %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	validate(t, schemas(t)["error"], body)
	close(release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first check: %d", code)
	}
	if resp, body := e.do(t, "POST", "/api/v1/check?domain=b.example", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("after the first ended: %d %s", resp.StatusCode, body)
	}
}

// TestCheckCache: a domain checked less than CheckCache ago, in whatever
// spelling, is answered from the cache; after it, it is checked again.
func TestCheckCache(t *testing.T) {
	var calls atomic.Int32
	e := newEnv(t, func(o *Options) {
		o.CheckLimit, o.CheckCache = 10, 5*time.Minute
		o.Check = func(_ context.Context, domain string) ([]byte, error) {
			calls.Add(1)
			return []byte(`{"schema":"mailsec.check.v1","domain":"` + domain + `"}`), nil
		}
	})
	for _, d := range []string{"example.org", "Example.ORG.", "example.org"} {
		if resp, body := e.do(t, "POST", "/api/v1/check?domain="+d, nil); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", d, resp.StatusCode, body)
		}
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("%d checks of one domain within the cache period, want 1", n)
	}
	e.do(t, "POST", "/api/v1/check?domain=other.example", nil)
	e.now = e.now.Add(5 * time.Minute)
	e.do(t, "POST", "/api/v1/check?domain=example.org", nil)
	if n := calls.Load(); n != 3 {
		t.Fatalf("%d checks, want 3 (the cache expired)", n)
	}
}
