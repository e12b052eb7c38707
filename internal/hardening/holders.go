package hardening

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// holders opens an idle SMTP connection and one that sends NOOP within
// every command timeout: the server cuts the first after
// timing.smtp_command_timeout and the second after smtp.session_max (421),
// so neither holds a connection slot for ever.
func (s *Suite) holders(ctx context.Context) Check {
	idleMax, lifeMax := s.Env.Config.Timing.SMTPCommandTimeout.Duration, s.Env.Config.SMTP.SessionMax.Duration
	if lifeMax > 5*time.Minute || idleMax > 5*time.Minute {
		return result([]string{fmt.Sprintf("the lab's command timeout (%s) and session lifetime (%s) are too long to watch", idleMax, lifeMax)}, nil, "")
	}
	type cut struct {
		after time.Duration
		last  string
		err   error
	}
	hold := func(src int, noop bool) cut {
		start := time.Now()
		sess, err := dialSMTP(ctx, source(91, src, 1), s.Env.SMTP)
		if err != nil {
			return cut{err: err}
		}
		defer sess.c.Close()
		r := bufio.NewReader(sess.c)
		deadline := start.Add(lifeMax + idleMax + 30*time.Second)
		every := max(idleMax/3, time.Second)
		for time.Now().Before(deadline) {
			if noop {
				if _, err := fmt.Fprintf(sess.c, "NOOP\r\n"); err != nil {
					return cut{after: time.Since(start), err: nil}
				}
			}
			_ = sess.c.SetReadDeadline(time.Now().Add(every))
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						break // still open: go on
					}
					return cut{after: time.Since(start), last: strings.TrimSpace(line)} // closed by the server
				}
				if strings.HasPrefix(line, "421") {
					return cut{after: time.Since(start), last: strings.TrimSpace(line)}
				}
				if noop {
					break
				}
			}
		}
		return cut{after: time.Since(start), err: fmt.Errorf("still open after %s", time.Since(start).Round(time.Second))}
	}
	var idle, noop cut
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); idle = hold(1, false) }()
	go func() { defer wg.Done(); noop = hold(2, true) }()
	wg.Wait()
	var bad []string
	if idle.err != nil || idle.after > idleMax+15*time.Second {
		bad = append(bad, fmt.Sprintf("idle connection: cut after %s (%v), command timeout %s", idle.after.Round(time.Second), idle.err, idleMax))
	}
	if noop.err != nil || noop.after > lifeMax+15*time.Second || noop.after < lifeMax-time.Second {
		bad = append(bad, fmt.Sprintf("NOOP holder: cut after %s (%v, %q), session lifetime %s", noop.after.Round(time.Second), noop.err, noop.last, lifeMax))
	}
	return result(bad, map[string]any{"command_timeout_seconds": idleMax.Seconds(), "session_max_seconds": lifeMax.Seconds(),
		"idle_cut_after_seconds": round1(idle.after.Seconds()), "noop_cut_after_seconds": round1(noop.after.Seconds()), "noop_last_reply": noop.last},
		fmt.Sprintf("idle connection cut after %.0f s (command timeout %s); NOOP holder cut after %.0f s (session lifetime %s: %q)",
			idle.after.Seconds(), idleMax, noop.after.Seconds(), lifeMax, noop.last))
}

// eventStreams opens Sizes.EventStreams live-page event streams of one
// test from many addresses: past the caps the server answers 503/429, the
// home page stays fast while they are open, and the goroutines return to
// the baseline once they close.
func (s *Suite) eventStreams(ctx context.Context) Check {
	maddr, err := s.metricsAddr()
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	t, err := s.createTest(ctx, source(92, 1, 1))
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	base, err := scrape(ctx, maddr)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	n := s.Sizes.EventStreams
	url := strings.TrimSuffix(s.Env.Web, "/") + "/t/" + t.Key + "/events"
	var open, refused, failed atomic.Int64
	var bodies sync.Map
	sctx, stop := context.WithCancel(ctx)
	fanOut(ctx, n, 64, func(i int) {
		req, err := http.NewRequestWithContext(sctx, http.MethodGet, url, nil)
		if err != nil {
			failed.Add(1)
			return
		}
		c := httpFrom(source(93+i/40000, (i/200)%200, 1+i%200))
		c.Timeout = 0
		resp, err := c.Do(req)
		if err != nil {
			failed.Add(1)
			return
		}
		switch resp.StatusCode {
		case http.StatusOK:
			open.Add(1)
			bodies.Store(i, resp.Body) // held open until stop
		case http.StatusServiceUnavailable, http.StatusTooManyRequests:
			refused.Add(1)
			resp.Body.Close()
		default:
			failed.Add(1)
			resp.Body.Close()
		}
	})
	// The home page, while the streams are open.
	var worst time.Duration
	homeOK := true
	for range 5 {
		start := time.Now()
		ok, _ := webAnswers(ctx, s.Env.Web)
		homeOK = homeOK && ok
		worst = max(worst, time.Since(start))
	}
	m, _ := scrape(ctx, maddr)
	during := m["go_goroutines"]
	stop()
	bodies.Range(func(_, v any) bool { v.(interface{ Close() error }).Close(); return true })
	after := settledGoroutines(ctx, maddr, base["go_goroutines"], 10, 30*time.Second)
	var bad []string
	if !homeOK || worst > time.Second {
		bad = append(bad, fmt.Sprintf("the home page: ok %v, slowest %s with the streams open", homeOK, worst.Round(time.Millisecond)))
	}
	if open.Load() == int64(n) && n > 200 {
		bad = append(bad, fmt.Sprintf("all %d streams accepted: no cap", n))
	}
	if after > base["go_goroutines"]+10 {
		bad = append(bad, fmt.Sprintf("goroutines %v after the streams closed, baseline %v", after, base["go_goroutines"]))
	}
	return result(bad, map[string]any{"streams": n, "open": open.Load(), "refused": refused.Load(), "failed": failed.Load(),
		"home_page_slowest_ms": worst.Milliseconds(), "goroutines_before": base["go_goroutines"], "goroutines_during": during, "goroutines_after": after},
		fmt.Sprintf("%d event streams: %d open, %d refused at the caps, %d failed; home page slowest %s; goroutines %v → %v → %v",
			n, open.Load(), refused.Load(), failed.Load(), worst.Round(time.Millisecond), base["go_goroutines"], during, after))
}
