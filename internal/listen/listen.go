// Package listen binds server sockets before serving starts, so that a
// busy port is reported at start-up, before anything answers, and a start
// that fails half-way leaves no socket open.
package listen

import (
	"context"
	"fmt"
	"io"
	"net"
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
