package dnsserver

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// TCPLimits bound the DNS TCP connections. Every open connection holds a
// file descriptor and a goroutine; without a cap, a few thousand idle
// connections use up the process's descriptors and SMTP and HTTPS stop
// accepting (RFC 7766 §6.2.2 asks servers to limit them).
type TCPLimits struct {
	// MaxConnections is the number of open TCP connections, all clients
	// together; past it, new connections are closed at once.
	MaxConnections int
	// MaxPerClient is the number of open connections of one client
	// network (PrefixV4/PrefixV6).
	MaxPerClient int
	// IdleTimeout closes a connection that sends no query for this long
	// (RFC 7766 §6.2.3: "a few seconds").
	IdleTimeout time.Duration
	// PrefixV4 and PrefixV6 are the client network sizes.
	PrefixV4, PrefixV6 int
}

func (l TCPLimits) withDefaults() TCPLimits {
	if l.MaxConnections <= 0 {
		l.MaxConnections = 256
	}
	if l.MaxPerClient <= 0 {
		l.MaxPerClient = 16
	}
	if l.MaxPerClient > l.MaxConnections {
		l.MaxPerClient = l.MaxConnections
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 10 * time.Second
	}
	if l.PrefixV4 <= 0 || l.PrefixV4 > 32 {
		l.PrefixV4 = 24
	}
	if l.PrefixV6 <= 0 || l.PrefixV6 > 128 {
		l.PrefixV6 = 56
	}
	return l
}

// limitListener closes, right after accepting them, the connections past
// the caps: the kernel's backlog empties and the descriptor is freed at
// once, where refusing to accept would leave them queued.
type limitListener struct {
	net.Listener
	limits  TCPLimits
	refused *atomic.Int64

	mu        sync.Mutex
	open      int
	perPrefix map[netip.Prefix]int
}

func newLimitListener(l net.Listener, limits TCPLimits, refused *atomic.Int64) net.Listener {
	return &limitListener{Listener: l, limits: limits.withDefaults(), refused: refused, perPrefix: map[netip.Prefix]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		prefix := l.prefixOf(c.RemoteAddr())
		if l.take(prefix) {
			return &limitConn{Conn: c, release: func() { l.release(prefix) }}, nil
		}
		l.refused.Add(1)
		c.Close()
	}
}

func (l *limitListener) prefixOf(a net.Addr) netip.Prefix {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}
	}
	addr := ta.AddrPort().Addr().Unmap()
	bits := l.limits.PrefixV6
	if addr.Is4() {
		bits = l.limits.PrefixV4
	}
	p, _ := addr.Prefix(bits)
	return p
}

func (l *limitListener) take(p netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open >= l.limits.MaxConnections || l.perPrefix[p] >= l.limits.MaxPerClient {
		return false
	}
	l.open++
	l.perPrefix[p]++
	return true
}

func (l *limitListener) release(p netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perPrefix[p]--; l.perPrefix[p] <= 0 {
		delete(l.perPrefix, p)
	}
}

// limitConn gives its slot back once, when closed.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
