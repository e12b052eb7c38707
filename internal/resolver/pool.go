package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Socket reuse. Opening and closing a UDP socket per query was ~15 % of a
// bulk scan's CPU (docs/bench-scan.md), so a Resolver keeps a few connected
// UDP sockets to its server and reuses them, one query in flight per
// socket. A socket that saw any error or timeout is closed, never reused:
// a late answer to a timed-out query cannot then be read as the answer to
// the next one (miekg/dns also skips replies whose ID differs, and the
// question is compared here; RFC 5452 §9.1).
//
// Only a resolver on loopback gets a pool. Towards any other address each
// query keeps its own socket, hence its own random source port: RFC 5452
// §9.2 counts on the port's entropy against forged answers from off-path
// attackers, which cannot reach a loopback socket. On loopback the reuse
// is still bounded (poolMaxUses) and idle sockets are closed after
// poolIdleTimeout, so that a Resolver dropped without Close leaks nothing
// for long.
const (
	poolMaxIdle     = 64                     // idle sockets kept per Resolver
	poolMaxUses     = 1000                   // queries per socket before it is replaced
	poolIdleTimeout = 500 * time.Millisecond // an idle socket is closed after this
)

// errQuestionMismatch: the answer is for another question than the one asked.
var errQuestionMismatch = errors.New("answer for another question")

type pooledConn struct {
	*dns.Conn
	uses      int
	idleSince time.Time
}

// udpPool is a bounded set of idle connected UDP sockets to one server.
type udpPool struct {
	addr   string
	dialer net.Dialer

	mu     sync.Mutex
	idle   []*pooledConn // a stack: the most recently used last
	timer  *time.Timer   // sweeps idle sockets; nil when none are idle
	closed bool
}

func newUDPPool(addr string) *udpPool { return &udpPool{addr: addr} }

// get returns an idle socket or dials a new one.
func (p *udpPool) get(ctx context.Context) (*pooledConn, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		pc := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return pc, nil
	}
	p.mu.Unlock()
	c, err := p.dialer.DialContext(ctx, "udp", p.addr)
	if err != nil {
		return nil, err
	}
	return &pooledConn{Conn: &dns.Conn{Conn: c}}, nil
}

// put gives back a socket whose exchange succeeded.
func (p *udpPool) put(pc *pooledConn) {
	pc.uses++
	p.mu.Lock()
	if p.closed || len(p.idle) >= poolMaxIdle || pc.uses >= poolMaxUses {
		p.mu.Unlock()
		_ = pc.Close()
		return
	}
	pc.idleSince = time.Now()
	p.idle = append(p.idle, pc)
	if p.timer == nil {
		p.timer = time.AfterFunc(poolIdleTimeout, p.sweep)
	}
	p.mu.Unlock()
}

// sweep closes the sockets idle for poolIdleTimeout and re-arms itself
// while some are left.
func (p *udpPool) sweep() {
	cutoff := time.Now().Add(-poolIdleTimeout)
	var stale []*pooledConn
	p.mu.Lock()
	keep := p.idle[:0]
	for _, pc := range p.idle {
		if pc.idleSince.After(cutoff) {
			keep = append(keep, pc)
		} else {
			stale = append(stale, pc)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	if len(p.idle) > 0 {
		p.timer.Reset(poolIdleTimeout)
	} else {
		p.timer = nil
	}
	p.mu.Unlock()
	for _, pc := range stale {
		_ = pc.Close()
	}
}

// close closes the idle sockets; sockets in use are closed when given back.
func (p *udpPool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	for _, pc := range idle {
		_ = pc.Close()
	}
}

// idleCount is the number of idle sockets (tests).
func (p *udpPool) idleCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// Close closes the sockets the resolver keeps for reuse. Queries after
// Close still work, each on its own socket. Copies made by
// WithTrustAnchors share the sockets (and are closed with it). Dropping a
// Resolver without Close is fine too: its idle sockets are closed after
// about half a second.
func (r *Resolver) Close() error {
	if r.pool != nil {
		r.pool.close()
	}
	return nil
}

// exchangeUDP sends m over UDP, on a pooled socket when the resolver has
// a pool.
func (r *Resolver) exchangeUDP(ctx context.Context, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: "udp", Timeout: r.timeout}
	if r.pool == nil {
		in, _, err := c.ExchangeContext(ctx, m, r.addr.String())
		return in, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	pc, err := r.pool.get(ctx)
	if err != nil {
		return nil, err
	}
	in, _, err := c.ExchangeWithConnContext(ctx, m, pc.Conn)
	if err == nil && !sameQuestion(m, in) {
		err = fmt.Errorf("%w (id %d)", errQuestionMismatch, in.Id)
	}
	if err != nil {
		// Never reuse a socket after an error or a timeout: a late answer
		// could still arrive on it.
		_ = pc.Close()
		return nil, err
	}
	r.pool.put(pc)
	return in, nil
}

// sameQuestion tells whether the answer in is for the question of m
// (RFC 5452 §9.1: ID, question and source must match; the source is fixed
// by the connected socket, miekg/dns compares the ID). An answer without a
// question section (some FORMERR or NOTIMP answers) is accepted, as before
// the sockets were reused.
func sameQuestion(m, in *dns.Msg) bool {
	if len(in.Question) == 0 {
		return true
	}
	if len(in.Question) != len(m.Question) {
		return false
	}
	for i, q := range m.Question {
		a := in.Question[i]
		if a.Qtype != q.Qtype || a.Qclass != q.Qclass || !strings.EqualFold(a.Name, q.Name) {
			return false
		}
	}
	return true
}
