package web

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestForwardedClient(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48")}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"direct", "198.51.100.7:1234", []string{"192.0.2.1"}, "198.51.100.7:1234"},
		{"one proxy", "10.0.0.1:1234", []string{"192.0.2.1"}, "192.0.2.1:0"},
		{"spoofed left entries ignored", "10.0.0.1:1234", []string{"203.0.113.9, 192.0.2.1"}, "192.0.2.1:0"},
		{"two proxies", "10.0.0.1:1234", []string{"192.0.2.1, 10.0.0.2"}, "192.0.2.1:0"},
		{"several headers", "10.0.0.1:1234", []string{"203.0.113.9", "192.0.2.1, 10.9.9.9"}, "192.0.2.1:0"},
		{"v6 and ports", "[2001:db8:1::5]:443", []string{"[2001:db8:2::1]:5555"}, "[2001:db8:2::1]:0"},
		{"mapped", "10.0.0.1:1234", []string{"::ffff:192.0.2.1"}, "192.0.2.1:0"},
		{"garbage stops the walk", "10.0.0.1:1234", []string{"192.0.2.1, bogus, 10.0.0.3"}, "10.0.0.3:0"},
		{"only proxies", "10.0.0.1:1234", []string{"10.0.0.2"}, "10.0.0.2:0"},
		{"no header", "10.0.0.1:1234", nil, "10.0.0.1:0"},
	} {
		s := New(Options{TrustedProxies: proxies})
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.peer
		for _, h := range tc.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		s.forwardedClient(r)
		if r.RemoteAddr != tc.want {
			t.Errorf("%s: client %s, want %s", tc.name, r.RemoteAddr, tc.want)
		}
	}
}

// TestRateLimitBehindProxy: behind a trusted proxy each forwarded client
// has its own start limit; without trusted proxies the header changes
// nothing.
func TestRateLimitBehindProxy(t *testing.T) {
	starts := func(e *env, xff string) (ok int) {
		for range 4 {
			if resp, _ := e.do(t, "POST", "/api/v1/tests", nil, "X-Forwarded-For", xff); resp.StatusCode == http.StatusCreated {
				ok++
			}
		}
		return ok
	}
	behind := newEnv(t, func(o *Options) { o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	if a, b := starts(behind, "192.0.2.1"), starts(behind, "203.0.113.9, 192.0.2.2"); a != 3 || b != 3 {
		t.Errorf("behind a trusted proxy: %d and %d tests started, want 3 each (start_limit)", a, b)
	}
	if c := starts(behind, "192.0.2.99, 192.0.2.1"); c != 0 {
		t.Errorf("a spoofed left entry gave %d more tests", c)
	}
	direct := newEnv(t, nil)
	if a, b := starts(direct, "192.0.2.1"), starts(direct, "192.0.2.2"); a != 3 || b != 0 {
		t.Errorf("no trusted proxy: %d and %d tests started, want 3 and 0", a, b)
	}
}
