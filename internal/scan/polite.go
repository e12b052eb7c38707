package scan

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// DialFunc opens a connection, as net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Destinations caps the connections open at once to each destination
// address (an MX address, a policy host), across every domain of a scan:
// hosters serve thousands of domains from a few addresses, and a scan must
// not open hundreds of sessions to one of them at once. The zero value is
// not usable; see NewDestinations.
type Destinations struct {
	max    int
	shared *sharedSlots // nil: this process's connections only
	mu     sync.Mutex
	m      map[netip.Addr]*destination
}

// sharedSlots counts the connections of every worker of a scan in the
// store (NewSharedDestinations).
type sharedSlots struct {
	st     *store.Store
	scanID string
	owner  string
	hold   time.Duration
}

type destination struct {
	slots chan struct{}
	refs  int // holders and waiters; the entry is dropped at 0
}

// NewDestinations caps connections per address at max (max ≤ 0: no cap).
func NewDestinations(max int) *Destinations {
	return &Destinations{max: max, m: map[netip.Addr]*destination{}}
}

// NewSharedDestinations caps connections per address at max across every
// worker of the scan scanID on st (max ≤ 0: no cap): besides a slot of
// this process, a connection holds one of the address's max slots in the
// store (store.AcquireScanSlot), taken as owner for at most hold — the
// longest a connection may stay open, so that the slots of a worker that
// was killed come free. A worker waiting for a slot asks again every
// slotPoll.
func NewSharedDestinations(st *store.Store, scanID, owner string, max int, hold time.Duration) *Destinations {
	d := NewDestinations(max)
	d.shared = &sharedSlots{st: st, scanID: scanID, owner: owner, hold: hold}
	return d
}

// slotPoll is how often a worker asks the store again for a slot held by
// other workers.
const slotPoll = 20 * time.Millisecond

// acquire waits for a slot of a; release gives it back.
func (d *Destinations) acquire(ctx context.Context, a netip.Addr) (release func(), err error) {
	local, err := d.acquireLocal(ctx, a)
	if err != nil || d.shared == nil {
		return local, err
	}
	sh, dest := d.shared, a.String()
	for {
		now := time.Now()
		slot, ok, err := sh.st.AcquireScanSlot(ctx, sh.scanID, dest, sh.owner, d.max, now, now.Add(sh.hold))
		if err != nil {
			local()
			return nil, err
		}
		if ok {
			var once sync.Once
			return func() {
				once.Do(func() {
					// Given back even when the scan is being cut
					// short: else the slot waits out its hold.
					rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
					defer cancel()
					_ = sh.st.ReleaseScanSlot(rctx, sh.scanID, dest, sh.owner, slot)
					local()
				})
			}, nil
		}
		select {
		case <-time.After(slotPoll):
		case <-ctx.Done():
			local()
			return nil, ctx.Err()
		}
	}
}

// acquireLocal waits for a slot of a in this process.
func (d *Destinations) acquireLocal(ctx context.Context, a netip.Addr) (release func(), err error) {
	d.mu.Lock()
	e := d.m[a]
	if e == nil {
		e = &destination{slots: make(chan struct{}, d.max)}
		d.m[a] = e
	}
	e.refs++
	d.mu.Unlock()
	drop := func() {
		d.mu.Lock()
		e.refs--
		if e.refs == 0 {
			delete(d.m, a)
		}
		d.mu.Unlock()
	}
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		drop()
		return nil, ctx.Err()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			<-e.slots
			drop()
		})
	}, nil
}

// Dial wraps dial so that every connection holds a slot of its
// destination address from before the connect until Close. An address
// that is not an IP literal is dialled without a cap.
func (d *Destinations) Dial(dial DialFunc) DialFunc {
	if d == nil || d.max <= 0 {
		return dial
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return dial(ctx, network, address)
		}
		release, err := d.acquire(ctx, ap.Addr().Unmap())
		if err != nil {
			return nil, err
		}
		c, err := dial(ctx, network, address)
		if err != nil {
			release()
			return nil, err
		}
		return &slotConn{Conn: c, release: release}, nil
	}
}

// InUse is the number of addresses with connections open or waiting.
func (d *Destinations) InUse() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}

// slotConn gives its slot back when the session has ended on both sides.
type slotConn struct {
	net.Conn
	release func()
	once    sync.Once
}

// lingerDrain bounds how long a closed connection waits for the server's
// close before its slot is given back.
const lingerDrain = 2 * time.Second

// Close half-closes the connection and returns at once; the slot is given
// back in the background once the server has closed its side too (or
// after lingerDrain). So the next connection to the address does not
// overlap, from the server's point of view, with one the server is still
// tearing down: the cap holds as the server counts.
func (c *slotConn) Close() error {
	var err error
	c.once.Do(func() {
		cw, ok := c.Conn.(interface{ CloseWrite() error })
		if !ok || cw.CloseWrite() != nil {
			err = c.Conn.Close()
			c.release()
			return
		}
		go func() {
			_ = c.Conn.SetReadDeadline(time.Now().Add(lingerDrain))
			var buf [512]byte
			for {
				if _, err := c.Conn.Read(buf[:]); err != nil {
					break
				}
			}
			_ = c.Conn.Close()
			c.release()
		}()
	})
	return err
}

// HostCache remembers the result of probing one MX host at one address
// for a while, so that a host shared by many domains (a hoster's MX) is
// contacted once per TTL, not once per domain. Concurrent requests for the
// same key wait for the one probe in flight. The zero value is not usable;
// see NewHostCache.
type HostCache[V any] struct {
	ttl     time.Duration
	timeout time.Duration
	base    context.Context
	now     func() time.Time

	mu    sync.Mutex
	m     map[string]*hostEntry[V]
	sweep int // map size at which expired entries are dropped next

	hits, misses, shared int64
}

type hostEntry[V any] struct {
	done    chan struct{}
	v       V
	ok      bool // the probe finished (not interrupted by the end of the scan)
	expires time.Time
}

// NewHostCache keeps results for ttl. A probe runs under its own context,
// derived from base (the scan: cancelling it stops every probe) with the
// given timeout, so that one domain's deadline does not cut short a
// result others wait for.
func NewHostCache[V any](base context.Context, ttl, timeout time.Duration) *HostCache[V] {
	return &HostCache[V]{ttl: ttl, timeout: timeout, base: base, now: time.Now, m: map[string]*hostEntry[V]{}, sweep: 1024}
}

// CacheStats counts what the cache did.
type CacheStats struct {
	Hits   int64 // served from a stored result
	Shared int64 // waited for a probe another domain started
	Misses int64 // probes run
	Size   int   // entries held
}

// Stats returns the counters.
func (c *HostCache[V]) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Hits: c.hits, Shared: c.shared, Misses: c.misses, Size: len(c.m)}
}

// Do returns the cached value for key, or runs probe once for all callers
// that ask for key while it runs. A caller whose ctx ends first gets
// probe(ctx) run with its ended context (the probe then reports that the
// deadline ended), and the shared probe goes on for the others.
func (c *HostCache[V]) Do(ctx context.Context, key string, probe func(context.Context) V) V {
	if c == nil || c.ttl <= 0 || ctx.Err() != nil {
		return probe(ctx)
	}
	now := c.now()
	c.mu.Lock()
	e := c.m[key]
	if e != nil {
		select {
		case <-e.done:
			if !e.ok || now.After(e.expires) {
				e = nil // stale or interrupted: probe again below
			} else {
				c.hits++
			}
		default:
			c.shared++
		}
	}
	if e == nil {
		c.misses++
		if len(c.m) >= c.sweep {
			c.dropExpired(now)
		}
		e = &hostEntry[V]{done: make(chan struct{})}
		c.m[key] = e
		c.mu.Unlock()
		go c.run(key, e, probe)
	} else {
		c.mu.Unlock()
	}
	select {
	case <-e.done:
		return e.v
	case <-ctx.Done():
		return probe(ctx)
	}
}

func (c *HostCache[V]) run(key string, e *hostEntry[V], probe func(context.Context) V) {
	pctx, cancel := context.WithTimeout(c.base, c.timeout)
	defer cancel()
	v := probe(pctx)
	c.mu.Lock()
	e.v = v
	e.ok = c.base.Err() == nil
	e.expires = c.now().Add(c.ttl)
	if !e.ok && c.m[key] == e {
		delete(c.m, key)
	}
	close(e.done)
	c.mu.Unlock()
}

// dropExpired removes finished entries past their TTL; c.mu is held.
func (c *HostCache[V]) dropExpired(now time.Time) {
	for k, e := range c.m {
		select {
		case <-e.done:
			if now.After(e.expires) {
				delete(c.m, k)
			}
		default:
		}
	}
	c.sweep = max(1024, 2*len(c.m))
}
