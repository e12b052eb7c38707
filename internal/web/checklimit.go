package web

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// The inbound check connects to whatever a user names, so the web form and
// the API must not make the service a scanner for hire (issue 16): at most
// Options.CheckConcurrency checks run at once, all clients together (one
// more is answered 503 with Retry-After), and a domain's result is kept
// for Options.CheckCache, so repeated checks of one domain, and checks of
// it already under way, do not probe again. The per-client hourly limit
// (check_limit) is counted as before.

// checkRetryAfter is the Retry-After (seconds) of a check refused as busy.
const checkRetryAfter = 30

// maxCachedChecks bounds the cache: past it, expired entries go, then the
// oldest.
const maxCachedChecks = 1000

// isCheck tells whether r runs an inbound check.
func isCheck(r *http.Request) bool {
	return r.Method == http.MethodPost && (r.URL.Path == "/check" || r.URL.Path == "/api/v1/check")
}

// guardCheck takes one of the check slots for a request that runs a
// check; ok false after it answered 503. The caller calls release.
func (s *Server) guardCheck(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	if !isCheck(r) || s.o.Check == nil {
		return func() {}, true
	}
	select {
	case s.checkSlots <- struct{}{}:
		return func() { <-s.checkSlots }, true
	default:
	}
	w.Header().Set("Retry-After", strconv.Itoa(checkRetryAfter))
	s.fail(w, r, r.URL.Path == "/api/v1/check", http.StatusServiceUnavailable, "too many checks are running; try again in a minute")
	return nil, false
}

// checkCache keeps check results per normalised domain for ttl and
// shares a check under way with later callers for the same domain.
type checkCache struct {
	check CheckFunc
	ttl   time.Duration
	now   func() time.Time

	flight singleflight.Group
	mu     sync.Mutex
	m      map[string]cachedCheck
}

type cachedCheck struct {
	report []byte
	at     time.Time
}

// run returns the cached report of domain if it is fresh, else runs the
// check (once for concurrent callers) and keeps a successful report.
func (c *checkCache) run(ctx context.Context, domain string) ([]byte, error) {
	if b, ok := c.get(domain); ok {
		return b, nil
	}
	v, err, _ := c.flight.Do(domain, func() (any, error) {
		b, err := c.check(ctx, domain)
		if err == nil {
			c.put(domain, b)
		}
		return b, err
	})
	b, _ := v.([]byte)
	return b, err
}

func (c *checkCache) get(domain string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[domain]
	if !ok || c.now().Sub(e.at) >= c.ttl {
		return nil, false
	}
	return e.report, true
}

func (c *checkCache) put(domain string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.m == nil {
		c.m = map[string]cachedCheck{}
	}
	if len(c.m) >= maxCachedChecks {
		oldest := ""
		for d, e := range c.m {
			if now.Sub(e.at) >= c.ttl {
				delete(c.m, d)
			} else if oldest == "" || e.at.Before(c.m[oldest].at) {
				oldest = d
			}
		}
		if len(c.m) >= maxCachedChecks {
			delete(c.m, oldest)
		}
	}
	c.m[domain] = cachedCheck{report: b, at: now}
}
