package store

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mailsec/mailsec/internal/clientnet"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/ratelimit"
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
//
// The rows written are bounded too (SetLimits): in total and per client
// network, per second. Repeats of a query within a flush window fold into
// one row and cost nothing; a query that would need a new row past a limit
// is counted (Limited) and not stored. A flood of random names then costs
// at most the limit's rows, and the write lock the SMTP acknowledgements
// share stays available.
type DNSQueryLog struct {
	store     *Store
	logger    *slog.Logger
	retention time.Duration
	queue     chan DNSQuery
	now       func() time.Time // the limits' clock

	// Set before Run, read by Run only.
	limits    DNSQueryLogLimits
	allRows   *ratelimit.Window // nil: no limit
	perClient *ratelimit.Window // nil: no limit

	dropped atomic.Uint64
	limited atomic.Uint64
	written atomic.Uint64
	running atomic.Bool
}

// DNSQueryLogLimits bound the rows the query log writes. Zero fields do
// not restrict (prefixes: 24 and 48).
type DNSQueryLogLimits struct {
	// RowsPerSecond bounds the rows written per second, all clients
	// together.
	RowsPerSecond int
	// RowsPerClientPerSecond bounds the rows written per second for one
	// client network (PrefixV4/PrefixV6 bits), so that one flooding
	// network cannot take the whole of RowsPerSecond.
	RowsPerClientPerSecond int
	PrefixV4, PrefixV6     int
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
		now:       time.Now,
	}
}

// SetLimits sets the row limits. Call it before Run.
func (l *DNSQueryLog) SetLimits(lim DNSQueryLogLimits) {
	if lim.PrefixV4 <= 0 {
		lim.PrefixV4 = 24
	}
	if lim.PrefixV6 <= 0 {
		lim.PrefixV6 = 48
	}
	l.limits, l.allRows, l.perClient = lim, nil, nil
	if lim.RowsPerSecond > 0 {
		l.allRows = ratelimit.New(lim.RowsPerSecond, time.Second, l.now)
	}
	if lim.RowsPerClientPerSecond > 0 {
		l.perClient = ratelimit.New(lim.RowsPerClientPerSecond, time.Second, l.now)
	}
}

// Limited returns how many queries were not stored because they needed a
// new row past the limits (SetLimits).
func (l *DNSQueryLog) Limited() uint64 { return l.limited.Load() }

// add folds q into batch if it repeats a row there or the limits allow a
// new row, and returns the number of rows in batch.
func (l *DNSQueryLog) add(batch *aggregate, q DNSQuery) int {
	if !batch.has(q) && !l.admit(q) {
		l.limited.Add(uint64(max(q.Count, 1)))
		return len(batch.rows)
	}
	return batch.add(q)
}

// admit counts a new row against the limits and tells whether it is
// within them. The client's own limit is asked first, so a network over
// its share does not use up the total.
func (l *DNSQueryLog) admit(q DNSQuery) bool {
	if l.perClient != nil && !l.perClient.Allow(clientnet.Key(q.Client.Addr(), l.limits.PrefixV4, l.limits.PrefixV6)) {
		return false
	}
	return l.allRows == nil || l.allRows.Allow("")
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

	dropped := dropWarner{what: "DNS query log: queries dropped"}
	limited := dropWarner{what: "DNS query log: queries over the row limits not stored"}
	batch := newAggregate()
	for {
		select {
		case q := <-l.queue:
			if l.add(batch, q) >= dnsLogBatch {
				batch = l.flush(ctx, batch)
			}
		case <-flush.C:
			batch = l.flush(ctx, batch)
			now := time.Now()
			dropped.maybeWarn(l.logger, l.dropped.Load(), now)
			limited.maybeWarn(l.logger, l.limited.Load(), now)
		case <-prune.C:
			l.prune(ctx)
		case <-ctx.Done():
			l.drain(ctx, batch)
			dropped.final(l.logger, l.dropped.Load())
			limited.final(l.logger, l.limited.Load())
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
			if l.add(batch, q) >= dnsLogBatch {
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

func keyOf(q DNSQuery) aggregateKey {
	return aggregateKey{q.Client.Addr().Unmap(), q.Transport, dnsname.CanonicalFQDN(q.Name), q.Type, q.DO, q.ECS, q.Rcode}
}

// has tells whether q would fold into a record already in a.
func (a *aggregate) has(q DNSQuery) bool {
	_, ok := a.index[keyOf(q)]
	return ok
}

// add folds q in and returns the number of distinct records.
func (a *aggregate) add(q DNSQuery) int {
	n := max(q.Count, 1)
	a.queries += uint64(n)
	k := keyOf(q)
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
	what     string    // the warning's message
	reported uint64    // Dropped() at the last warning
	last     time.Time // time of the last warning
}

// maybeWarn warns if queries were dropped since the last warning and the
// last warning is at least dnsLogDropWarnEvery old.
func (w *dropWarner) maybeWarn(logger *slog.Logger, dropped uint64, now time.Time) {
	if dropped <= w.reported || (!w.last.IsZero() && now.Sub(w.last) < dnsLogDropWarnEvery) {
		return
	}
	logger.Warn(w.what, "count", dropped-w.reported, "total", dropped)
	w.reported, w.last = dropped, now
}

// final reports drops not yet warned about when Run stops, so a shutdown
// right after an overload does not hide it.
func (w *dropWarner) final(logger *slog.Logger, dropped uint64) {
	if dropped > w.reported {
		logger.Warn(w.what, "count", dropped-w.reported, "total", dropped)
		w.reported = dropped
	}
}
