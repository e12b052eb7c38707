package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// loopbackOnly refuses an address outside 127.0.0.0/8.
func loopbackOnly(hostport string) error {
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return fmt.Errorf("%q: %w", hostport, err)
	}
	if !ap.Addr().Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(ap.Addr()) {
		return fmt.Errorf("%s is outside 127.0.0.0/8", hostport)
	}
	return nil
}

// runPolicy serves every domain's MTA-STS policy (RFC 8461 §3.3) over
// HTTPS with a certificate for mta-sts.<domain> issued by the bench CA on
// the first request for that name.
func runPolicy(args []string) error {
	fs := flag.NewFlagSet("policy", flag.ContinueOnError)
	dir := fs.String("dir", "", "world directory (pki/ca.pem, pki/ca.key)")
	listen := fs.String("listen", ipPolicy+":443", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopbackOnly(*listen); err != nil {
		return err
	}
	p, err := loadPKI(filepath.Join(*dir, "pki"))
	if err != nil {
		return err
	}
	key, err := newKey()
	if err != nil {
		return err
	}
	var (
		mu    sync.Mutex
		certs = map[string]*tls.Certificate{}
	)
	getCert := func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
		name := strings.ToLower(h.ServerName)
		dom, ok := strings.CutPrefix(name, "mta-sts.")
		if !ok {
			return nil, fmt.Errorf("no certificate for %q", name)
		}
		if _, ok := parseDomain(dom); !ok {
			return nil, fmt.Errorf("no such domain %q", dom)
		}
		mu.Lock()
		defer mu.Unlock()
		if c := certs[name]; c != nil {
			return c, nil
		}
		der, err := p.leaf([]string{name}, key) // one key, one certificate per name
		if err != nil {
			return nil, err
		}
		c := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		certs[name] = c
		return c, nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := strings.Cut(r.Host, ":")
		dom, _ := strings.CutPrefix(strings.ToLower(host), "mta-sts.")
		i, ok := parseDomain(dom)
		if !ok || !plan(i).STS {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, plan(i).policy())
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{GetCertificate: getCert, MinVersion: tls.VersionTLS12}, ErrorLog: nil}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err = srv.ListenAndServeTLS("", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// runHandshake measures STARTTLS handshakes per second: -c workers, each
// running connect, greeting, EHLO, STARTTLS, a full TLS handshake (no
// session resumption) and QUIT in a loop against the targets in turn,
// until -duration has passed or -max handshakes are done.
func runHandshake(args []string) error {
	fs := flag.NewFlagSet("handshake", flag.ContinueOnError)
	targets := fs.String("targets", "", "comma-separated ip:port=SNI")
	c := fs.Int("c", 16, "concurrent loops")
	duration := fs.Duration("duration", 10*time.Second, "how long")
	warmup := fs.Duration("warmup", time.Second, "not counted")
	maxN := fs.Int64("max", 1_000_000, "stop after this many handshakes")
	timeout := fs.Duration("timeout", 10*time.Second, "per session")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type target struct{ addr, sni string }
	var ts []target
	for t := range strings.SplitSeq(*targets, ",") {
		a, sni, _ := strings.Cut(strings.TrimSpace(t), "=")
		if err := loopbackOnly(a); err != nil {
			return err
		}
		ts = append(ts, target{a, sni})
	}
	if len(ts) == 0 || *c < 1 || *c > 1000 || *duration <= 0 || *duration > 10*time.Minute {
		return errors.New("handshake needs -targets, -c 1..1000, -duration up to 10m")
	}
	var (
		done, errs atomic.Int64
		counting   atomic.Bool
		errMu      sync.Mutex
		errKinds   = map[string]int64{}
	)
	ctx, cancel := context.WithTimeout(context.Background(), *warmup+*duration)
	defer cancel()
	start := time.Now()
	deadline := start.Add(*warmup + *duration)
	go func() {
		time.Sleep(*warmup)
		counting.Store(true)
	}()
	var wg sync.WaitGroup
	var measured time.Time
	var mOnce sync.Once
	for w := range *c {
		wg.Go(func() {
			for k := w; ctx.Err() == nil && time.Now().Before(deadline); k++ {
				t := ts[k%len(ts)]
				err := session(ctx, t.addr, t.sni, *timeout)
				// The clock, not only ctx.Err(): the context's timer may
				// fire late on a busy machine, and in between every dial
				// fails at once with "i/o timeout" (its deadline passed).
				if ctx.Err() != nil || !time.Now().Before(deadline) {
					return
				}
				if !counting.Load() {
					continue
				}
				mOnce.Do(func() { measured = time.Now() })
				if err != nil {
					errs.Add(1)
					errMu.Lock()
					errKinds[err.Error()]++
					errMu.Unlock()
					continue
				}
				if done.Add(1) >= *maxN {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	end := time.Now()
	if end.After(deadline) {
		end = deadline
	}
	if measured.IsZero() {
		measured = start.Add(*warmup)
	}
	secs := end.Sub(measured).Seconds()
	out := map[string]any{"handshakes": done.Load(), "errors": errs.Load(), "seconds": secs, "concurrency": *c,
		"rate": float64(done.Load()) / secs, "error_kinds": errKinds}
	return json.NewEncoder(os.Stdout).Encode(out)
}

// session is one EHLO, STARTTLS, handshake, QUIT.
func session(ctx context.Context, addr, sni string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("%s connect: %v", addr, errors.Unwrap(err))
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(timeout))
	br := bufio.NewReader(conn)
	reply := func() (string, error) {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return "", err
			}
			if len(l) < 4 || l[3] != '-' {
				return l, nil
			}
		}
	}
	if l, err := reply(); err != nil || !strings.HasPrefix(l, "220") {
		return errors.New(addr + " greeting")
	}
	io.WriteString(conn, "EHLO bench.scan.example\r\n")
	if l, err := reply(); err != nil || !strings.HasPrefix(l, "250") {
		return errors.New(addr + " ehlo")
	}
	io.WriteString(conn, "STARTTLS\r\n")
	if l, err := reply(); err != nil || !strings.HasPrefix(l, "220") {
		return errors.New(addr + " starttls")
	}
	tc := tls.Client(conn, &tls.Config{ServerName: sni, InsecureSkipVerify: true}) // the handshake is measured, not the chain
	if err := tc.HandshakeContext(ctx); err != nil {
		return errors.New(addr + " handshake")
	}
	io.WriteString(tc, "QUIT\r\n")
	return tc.Close()
}
