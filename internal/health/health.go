// Package health answers the operator's probes: GET /healthz (the process
// serves: liveness) and GET /readyz (every check passes: the store answers,
// the keys on disk are the keys in service, the certificates are in
// service with time to spare, the resolver answers and validates zone A).
// Each failing check is named with its reason, so that a probe's log says
// what to repair, not only that something is wrong.
//
// The probes are served beside /metrics (metrics.listen), never on the
// public web UI: the reasons name files and addresses.
package health

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Check is one readiness condition.
type Check struct {
	Name string
	// Run returns nil when the condition holds, else what is wrong.
	Run func(ctx context.Context) error
}

// Result is a check's outcome.
type Result struct {
	Name string
	Err  error
}

// Checker runs the checks.
type Checker struct {
	checks  []Check
	timeout time.Duration
}

// DefaultTimeout bounds each check: a probe must answer before the
// prober's own timeout (Kubernetes' and Prometheus' defaults are 1 s and
// 10 s; systemd watchdogs and load balancers often 5 s).
const DefaultTimeout = 4 * time.Second

// New returns a Checker running checks, each bounded by timeout
// (DefaultTimeout if zero).
func New(timeout time.Duration, checks ...Check) *Checker {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Checker{checks: checks, timeout: timeout}
}

// Run runs every check at once and returns the results in the checks'
// order. A check that outlives the timeout fails with the context's error.
func (c *Checker) Run(ctx context.Context) []Result {
	out := make([]Result, len(c.checks))
	var wg sync.WaitGroup
	for i, ch := range c.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- ch.Run(cctx) }()
			select {
			case err := <-done:
				out[i] = Result{Name: ch.Name, Err: err}
			case <-cctx.Done():
				out[i] = Result{Name: ch.Name, Err: fmt.Errorf("no answer within %s: %w", c.timeout, cctx.Err())}
			}
		}()
	}
	wg.Wait()
	return out
}

// Register adds GET /healthz and GET /readyz to mux. /readyz answers 200
// when every check passes and 503 otherwise, with one line per check:
// "ok NAME" or "fail NAME: REASON".
func (c *Checker) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		results := c.Run(r.Context())
		var b strings.Builder
		status := http.StatusOK
		for _, res := range results {
			if res.Err != nil {
				status = http.StatusServiceUnavailable
				// One line per check: a multi-line reason (errors.Join)
				// is folded.
				fmt.Fprintf(&b, "fail %s: %s\n", res.Name, strings.ReplaceAll(res.Err.Error(), "\n", "; "))
			} else {
				fmt.Fprintf(&b, "ok %s\n", res.Name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		fmt.Fprint(w, b.String())
	})
}
