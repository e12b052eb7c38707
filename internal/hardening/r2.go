package hardening

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metricsAddr is metrics.listen's first address: R2 reads what the server
// counts from its own /metrics.
func (s *Suite) metricsAddr() (string, error) {
	if len(s.Env.Config.Metrics.Listen) == 0 {
		return "", fmt.Errorf("metrics.listen is empty: set it in the lab's configuration")
	}
	return s.Env.Config.Metrics.Listen[0], nil
}

// scrape reads the named metrics (without labels) from /metrics.
func scrape(ctx context.Context, addr string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}

// settledGoroutines waits (bounded) until the server's goroutine count is
// within slack of baseline, and returns the last count.
func settledGoroutines(ctx context.Context, addr string, baseline, slack float64, wait time.Duration) float64 {
	var g float64
	for deadline := time.Now().Add(wait); ; time.Sleep(500 * time.Millisecond) {
		m, err := scrape(ctx, addr)
		if err == nil {
			g = m["go_goroutines"]
			if g <= baseline+slack {
				return g
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return g
		}
	}
}

// connectionCaps opens more SMTP connections than the per-client cap from
// one address, then more than the global cap from many: the server's own
// counts (/metrics) never pass the caps, the extra connections get 421,
// and its goroutines return to the baseline when they close.
func (s *Suite) connectionCaps(ctx context.Context) Check {
	maddr, err := s.metricsAddr()
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	perClient, global := s.Env.Config.SMTP.MaxConnectionsPerClient, s.Env.Config.SMTP.MaxConnections
	base, err := scrape(ctx, maddr)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	var bad []string
	figures := map[string]any{"cap_per_client": perClient, "cap_global": global, "goroutines_before": base["go_goroutines"]}

	// hold opens n connections from the sources src(i) and sorts them by
	// their first reply.
	hold := func(n int, src func(i int) netip.Addr) (open []net.Conn, refused, failed int) {
		var mu sync.Mutex
		fanOut(ctx, n, 64, func(i int) {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src(i).AsSlice()}, Timeout: 5 * time.Second}
			c, err := d.DialContext(ctx, "tcp", s.Env.SMTP.String())
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && strings.HasPrefix(line, "220"):
				open = append(open, c)
			case err == nil && strings.HasPrefix(line, "421"):
				refused++
				c.Close()
			default:
				failed++
				c.Close()
			}
		})
		return open, refused, failed
	}
	closeAll := func(cs []net.Conn) {
		for _, c := range cs {
			c.Close()
		}
	}

	// One address, per-client cap + 10.
	one := source(74, 1, 1)
	open, refused, failed := hold(perClient+10, func(int) netip.Addr { return one })
	m, _ := scrape(ctx, maddr)
	figures["one_client_open"], figures["one_client_refused"], figures["one_client_server_max_per_client"] = len(open), refused, m["mailsec_smtp_connections_open_max_per_client"]
	if len(open) > perClient || refused < 10 || m["mailsec_smtp_connections_open_max_per_client"] > float64(perClient) {
		bad = append(bad, fmt.Sprintf("one client: %d open, %d refused (%d failed), server counts at most %v per client; cap %d", len(open), refused, failed, m["mailsec_smtp_connections_open_max_per_client"], perClient))
	}
	closeAll(open)

	// Many addresses (each under its cap), global cap + 50.
	n := global + 50
	open, refused, failed = hold(n, func(i int) netip.Addr { return source(75, i/200, 1+i%200) })
	m, _ = scrape(ctx, maddr)
	figures["many_open"], figures["many_refused"], figures["many_failed"], figures["many_server_open"] = len(open), refused, failed, m["mailsec_smtp_connections_open"]
	if len(open) > global || m["mailsec_smtp_connections_open"] > float64(global) || refused < 50-failed {
		bad = append(bad, fmt.Sprintf("%d connections from many clients: %d open, %d refused, %d failed; the server counts %v open; cap %d", n, len(open), refused, failed, m["mailsec_smtp_connections_open"], global))
	}
	closeAll(open)

	after := settledGoroutines(ctx, maddr, base["go_goroutines"], 10, 30*time.Second)
	figures["goroutines_after"] = after
	if after > base["go_goroutines"]+10 {
		bad = append(bad, fmt.Sprintf("goroutines %v after the connections closed, baseline %v", after, base["go_goroutines"]))
	}
	return result(bad, figures, fmt.Sprintf("per client: %v open of %d tried (cap %d); many clients: %v open, %v refused of %d (cap %d); goroutines %v → %v",
		figures["one_client_open"], perClient+10, perClient, figures["many_open"], figures["many_refused"], n, global, base["go_goroutines"], after))
}

// slowData sends Sizes.SlowStreams messages of 10 MiB at once, slowly,
// each from its own address to a test's A address: the server's resident
// memory stays under the DATA budget plus a stated margin, the messages
// past the budget get 452, and the goroutines return to the baseline.
func (s *Suite) slowData(ctx context.Context) Check {
	maddr, err := s.metricsAddr()
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	budget := float64(s.Env.Config.SMTP.DataMemoryBudget)
	test, err := s.createTest(ctx, source(76, 250, 1))
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	rcpt := test.A
	base, err := scrape(ctx, maddr)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	const size = 10 << 20
	n, secs := s.Sizes.SlowStreams, s.Sizes.SlowSeconds
	// The stated budget: the soft memory limit serve sets (memory_limit;
	// by default the DATA budget + 256 MiB), which the Go runtime holds
	// all its memory to, plus 64 MiB for what it does not count (the
	// binary's text, kernel buffers). Without a limit: the memory at
	// rest, the DATA budget and 256 MiB.
	limit := base["process_resident_memory_bytes"] + budget + 256<<20
	if ml := s.Env.Config.EffectiveMemoryLimit(); ml > 0 {
		limit = float64(ml) + 64<<20
	}
	var peak atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			if m, err := scrape(ctx, maddr); err == nil {
				for v := int64(m["process_resident_memory_bytes"]); v > peak.Load(); {
					peak.Store(v)
				}
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	var accepted, tempFailed, other atomic.Int64
	var codesMu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	chunk := []byte(strings.Repeat(strings.Repeat("d", 1022)+"\r\n", 64)) // 64 KiB of lines
	perChunk := time.Duration(float64(secs) * float64(time.Second) * float64(len(chunk)) / size)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess, err := dialSMTP(ctx, source(76, i/200, 1+i%200), s.Env.SMTP)
			if err != nil {
				other.Add(1)
				return
			}
			defer sess.close()
			_ = sess.c.SetDeadline(time.Now().Add(time.Duration(secs)*time.Second + 60*time.Second))
			sess.cmd("EHLO slow%d.example", i)
			if code, _, _ := sess.cmd("MAIL FROM:<slow%d@slow.example>", i); code != 250 {
				other.Add(1)
				return
			}
			if code, _, _ := sess.cmd("RCPT TO:<%s>", rcpt); code != 250 {
				other.Add(1)
				return
			}
			if code, _, _ := sess.cmd("DATA"); code != 354 {
				other.Add(1)
				return
			}
			w := sess.tp.DotWriter()
			fmt.Fprintf(w, "From: slow%d@slow.example\r\nTo: %s\r\nSubject: slow\r\n\r\n", i, rcpt)
			for sent := 0; sent < size-len(chunk); sent += len(chunk) {
				if _, err := w.Write(chunk); err != nil {
					break
				}
				time.Sleep(perChunk)
			}
			w.Close()
			code, _, _ := sess.tp.ReadResponse(0)
			codesMu.Lock()
			codes[fmt.Sprint(code)]++
			codesMu.Unlock()
			switch {
			case code == 250 || code == 451:
				// Read whole and answered by the test's rules: 250, or
				// 451 while the sender's new downgrade window runs (a
				// fresh store sees every stream's address for the first
				// time).
				accepted.Add(1)
			case code == 452:
				tempFailed.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	after := settledGoroutines(ctx, maddr, base["go_goroutines"], 10, 30*time.Second)
	figures := map[string]any{"streams": n, "message_bytes": size, "stream_seconds": secs, "accepted": accepted.Load(), "answered_452": tempFailed.Load(),
		"other": other.Load(), "replies": codes, "rss_before": int64(base["process_resident_memory_bytes"]), "rss_peak": peak.Load(), "rss_limit": int64(limit),
		"data_budget": int64(budget), "goroutines_before": base["go_goroutines"], "goroutines_after": after}
	var bad []string
	if float64(peak.Load()) > limit {
		bad = append(bad, fmt.Sprintf("peak resident memory %d MiB over the stated %d MiB", peak.Load()>>20, int64(limit)>>20))
	}
	if accepted.Load() == 0 {
		bad = append(bad, "no message read whole and answered (250 or 451)")
	}
	if other.Load() > 0 {
		bad = append(bad, fmt.Sprintf("%d streams ended otherwise (broken, or an unexpected reply)", other.Load()))
	}
	if after > base["go_goroutines"]+10 {
		bad = append(bad, fmt.Sprintf("goroutines %v after the streams, baseline %v", after, base["go_goroutines"]))
	}
	return result(bad, figures, fmt.Sprintf("%d streams of 10 MiB over %d s: %d read whole (250/451), %d answered 452, %d other; peak RSS %d MiB (limit %d MiB; DATA budget %d MiB, at rest %d MiB); goroutines %v → %v",
		n, secs, accepted.Load(), tempFailed.Load(), other.Load(), peak.Load()>>20, int64(limit)>>20, int64(budget)>>20, int64(base["process_resident_memory_bytes"])>>20, base["go_goroutines"], after))
}
