// Package listen binds server sockets before serving starts, so that a
// busy port is reported at start-up, before anything answers, and a start
// that fails half-way leaves no socket open.
package listen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// All opens one listener per address with open, in order. If one fails it
// closes those already opened and returns open's error as it is (open
// names the address).
func All[L io.Closer](ctx context.Context, addrs []string, open func(ctx context.Context, addr string) (L, error)) ([]L, error) {
	out := make([]L, 0, len(addrs))
	for _, a := range addrs {
		l, err := open(ctx, a)
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// TCP binds TCP on every address (host:port). Port 0 lets the kernel pick
// one (the listener's Addr tells which); an empty host or "[::]" listens
// on every local address of both families (the net package's dual-stack
// socket). The error names the listeners' owner (e.g. "smtpd") and the
// address: "smtpd: listen 127.0.0.1:25: ...".
func TCP(ctx context.Context, owner string, addrs []string) ([]net.Listener, error) {
	var lc net.ListenConfig
	return All(ctx, addrs, func(ctx context.Context, addr string) (net.Listener, error) {
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("%s: listen %s: %w", owner, addr, err)
		}
		return l, nil
	})
}

// HTTP serves srv on every listener until ctx ends, then shuts it down,
// giving the requests in flight grace to finish (what is still running
// after that is cut off; event streams end with ctx anyway). A listener
// that fails ends all of them, and its error is returned.
func HTTP(ctx context.Context, srv *http.Server, ls []net.Listener, grace time.Duration) error {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() { errc <- srv.Serve(l) }()
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			srv.Close()
			return err
		}
	}
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
