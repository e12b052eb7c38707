package store

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
)

const (
	// dnsLogBatch is the number of queued queries that triggers a flush
	// without waiting for the tick; one transaction per 1000 rows amortizes
	// the commit (an fsync of the WAL) well.
	dnsLogBatch = 1000

	// dnsLogFlushEvery bounds how stale the stored log can be: a test that
	// sends mail and then asks for a verdict sees queries within this delay.
	dnsLogFlushEvery = 100 * time.Millisecond

	// dnsLogPruneEvery is how often entries older than the retention are
	// deleted. Pruning is cheap when done often (a minute's worth of rows).
	dnsLogPruneEvery = time.Minute

	// dnsLogDropWarnEvery rate-limits the warning about dropped queries: a
	// sustained overload must not turn into a log flood on top.
	dnsLogDropWarnEvery = 10 * time.Second

	// dnsLogWriteTimeout bounds one flush or prune, including its retry.
	// Writes use a context detached from Run's, because cancelling Run means
	// "drain and stop", not "abandon what is buffered"; the timeout stops a
	// wedged disk from hanging shutdown forever.
	dnsLogWriteTimeout = 30 * time.Second

	// defaultDNSLogBuffer is used when NewDNSQueryLog is given no buffer
	// size: with no buffer every Record not met by a waiting Run would drop.
	defaultDNSLogBuffer = 10000
)

// DNSQueryLog writes DNS queries to the store asynchronously, in batches, so
// the DNS server's hot path never waits on the disk. Record queues a query;
// Run, in its own goroutine, stores the queue. When the queue is full,
// queries are dropped and counted rather than slowing down answers: a
// missing log line costs a test its evidence, a late DNS answer costs the
// test itself.
type DNSQueryLog struct {
	store     *Store
	logger    *slog.Logger
	retention time.Duration
	queue     chan DNSQuery

	dropped atomic.Uint64
	written atomic.Uint64
	running atomic.Bool
}

// NewDNSQueryLog returns a log writing to s that queues up to buffer queries
// (10000 if buffer < 1) and keeps entries for retention (forever if
// retention <= 0). logger may be nil to discard log output. Call Run to
// start writing.
func NewDNSQueryLog(s *Store, logger *slog.Logger, buffer int, retention time.Duration) *DNSQueryLog {
	if buffer < 1 {
		buffer = defaultDNSLogBuffer
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &DNSQueryLog{
		store:     s,
		logger:    logger,
		retention: retention,
		queue:     make(chan DNSQuery, buffer),
	}
}

// Record queues q for writing. It never blocks: if the queue is full, q is
// dropped and counted (see Dropped). A zero q.Time is set to the current
// time. Record is safe for concurrent use, and may be called before Run
// starts or after it returns (queries then wait in, or overflow, the queue).
func (l *DNSQueryLog) Record(q DNSQuery) {
	if q.Time.IsZero() {
		q.Time = time.Now()
	}
	select {
	case l.queue <- q:
	default:
		l.dropped.Add(1)
	}
}

// Dropped returns how many queries were lost, because the queue was full or
// because storing them failed twice.
func (l *DNSQueryLog) Dropped() uint64 { return l.dropped.Load() }

// Written returns how many queries were stored.
func (l *DNSQueryLog) Written() uint64 { return l.written.Load() }

// Run writes queued queries until ctx is done. It flushes when dnsLogBatch
// queries are queued or every 100 ms, and prunes entries older than the
// retention once at start and then every minute. When ctx is done it writes
// everything still queued and returns nil; stop the producers (the DNS
// server) first so nothing is recorded after the final drain.
//
// Storage errors are logged, never returned: the DNS server must keep
// answering whether or not its log works. A second Run while one is
// running returns an error at once.
func (l *DNSQueryLog) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("store: DNSQueryLog.Run called while already running")
	}
	defer l.running.Store(false)

	l.prune(ctx)

	flush := time.NewTicker(dnsLogFlushEvery)
	defer flush.Stop()
	prune := time.NewTicker(dnsLogPruneEvery)
	defer prune.Stop()

	var w dropWarner
	batch := newAggregate()
	for {
		select {
		case q := <-l.queue:
			if batch.add(q) >= dnsLogBatch {
				batch = l.flush(ctx, batch)
			}
		case <-flush.C:
			batch = l.flush(ctx, batch)
			w.maybeWarn(l.logger, l.dropped.Load(), time.Now())
		case <-prune.C:
			l.prune(ctx)
		case <-ctx.Done():
			l.drain(ctx, batch)
			w.final(l.logger, l.dropped.Load())
			return nil
		}
	}
}

// drain writes batch and everything still queued. It stops at the first
// moment the queue is empty rather than waiting for more.
func (l *DNSQueryLog) drain(ctx context.Context, batch *aggregate) {
	for {
		select {
		case q := <-l.queue:
			if batch.add(q) >= dnsLogBatch {
				batch = l.flush(ctx, batch)
			}
		default:
			l.flush(ctx, batch)
			return
		}
	}
}

// flush stores batch, retrying once on error, and returns batch emptied for
// reuse. A batch that fails twice is counted as dropped: keeping it would
// let a persistent error (disk full) grow memory without bound.
func (l *DNSQueryLog) flush(ctx context.Context, agg *aggregate) *aggregate {
	if len(agg.rows) == 0 {
		return agg
	}
	batch := agg.rows
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dnsLogWriteTimeout)
	defer cancel()

	err := l.store.AddDNSQueries(wctx, batch)
	if err != nil {
		// Retry at once: a transient lock conflict has already waited out
		// busy_timeout, so sleeping here would only delay the queue.
		l.logger.Warn("DNS query log: write failed, retrying", "queries", len(batch), "err", err)
		err = l.store.AddDNSQueries(wctx, batch)
	}
	if err != nil {
		l.dropped.Add(agg.queries)
		l.logger.Error("DNS query log: write failed twice, dropping batch", "queries", agg.queries, "err", err)
	} else {
		l.written.Add(agg.queries)
	}
	agg.reset()
	return agg
}

// aggregateKey is what makes two queries the same evidence: the client's
// address (not its port, which resolvers randomise per query), transport,
// question, flags, client subnet and our answer's rcode.
type aggregateKey struct {
	client    netip.Addr
	transport string
	name      string
	qtype     uint16
	do        bool
	ecs       string
	rcode     int
}

// aggregate folds identical queries of one flush window into one record
// with a count and the times of the first and last.
type aggregate struct {
	rows    []DNSQuery
	index   map[aggregateKey]int
	queries uint64 // queries folded into rows
}

func newAggregate() *aggregate {
	return &aggregate{rows: make([]DNSQuery, 0, dnsLogBatch), index: make(map[aggregateKey]int, dnsLogBatch)}
}

// add folds q in and returns the number of distinct records.
func (a *aggregate) add(q DNSQuery) int {
	n := max(q.Count, 1)
	a.queries += uint64(n)
	k := aggregateKey{q.Client.Addr().Unmap(), q.Transport, dnsname.CanonicalFQDN(q.Name), q.Type, q.DO, q.ECS, q.Rcode}
	if i, ok := a.index[k]; ok {
		r := &a.rows[i]
		r.Count = max(r.Count, 1) + n
		last := q.Last
		if last.IsZero() {
			last = q.Time
		}
		if last.After(r.Last) {
			r.Last = last
		}
		return len(a.rows)
	}
	if q.Last.IsZero() {
		q.Last = q.Time
	}
	q.Count = n
	a.index[k] = len(a.rows)
	a.rows = append(a.rows, q)
	return len(a.rows)
}

func (a *aggregate) reset() {
	// Clear so the records' strings can be collected while the backing
	// array is reused.
	clear(a.rows)
	a.rows = a.rows[:0]
	clear(a.index)
	a.queries = 0
}

// prune deletes entries older than the retention, if there is one.
func (l *DNSQueryLog) prune(ctx context.Context) {
	if l.retention <= 0 {
		return
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dnsLogWriteTimeout)
	defer cancel()
	n, err := l.store.PruneDNSQueries(wctx, time.Now().Add(-l.retention))
	if err != nil {
		l.logger.Warn("DNS query log: prune failed", "deleted", n, "err", err)
		return
	}
	if n > 0 {
		l.logger.Debug("DNS query log: pruned", "deleted", n, "retention", l.retention)
	}
}

// dropWarner rate-limits the dropped-queries warning. It lives in Run's
// goroutine, so it needs no locking, and keeps Record free of logging.
type dropWarner struct {
	reported uint64    // Dropped() at the last warning
	last     time.Time // time of the last warning
}

// maybeWarn warns if queries were dropped since the last warning and the
// last warning is at least dnsLogDropWarnEvery old.
func (w *dropWarner) maybeWarn(logger *slog.Logger, dropped uint64, now time.Time) {
	if dropped <= w.reported || (!w.last.IsZero() && now.Sub(w.last) < dnsLogDropWarnEvery) {
		return
	}
	logger.Warn("DNS query log: queries dropped", "count", dropped-w.reported, "total", dropped)
	w.reported, w.last = dropped, now
}

// final reports drops not yet warned about when Run stops, so a shutdown
// right after an overload does not hide it.
func (w *dropWarner) final(logger *slog.Logger, dropped uint64) {
	if dropped > w.reported {
		logger.Warn("DNS query log: queries dropped", "count", dropped-w.reported, "total", dropped)
		w.reported = dropped
	}
}
