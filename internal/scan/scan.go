package scan

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// Checker checks one domain (A-label) and returns the check's JSON
// (schema mailsec.check.v1). An error with a JSON document still stores
// the document; an error without one stores the error. The checker must
// respect ctx: when ctx ends, it returns soon.
type Checker func(ctx context.Context, domain string) (json.RawMessage, error)

// LoadStats says what Load stored.
type LoadStats struct {
	Lines int64 // lines read, blank lines and comments included
	store.AddStats
}

// loadBatch is the number of lines stored per transaction.
const loadBatch = 1000

// Load reads the input list into the store as the items of scan id (which
// must exist). It is idempotent: loading the same input again after an
// interruption stores only what is missing. Memory stays bounded: lines are
// stored in batches as they are read and duplicates are found by the
// store's index, not by a map.
func Load(ctx context.Context, st *store.Store, id string, r io.Reader, norm Normalizer, defaultLabel string) (LoadStats, error) {
	var (
		ls    LoadStats
		batch []store.ScanLine
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		a, err := st.AddScanLines(ctx, id, batch)
		if err != nil {
			return err
		}
		ls.Domains += a.Domains
		ls.Invalid += a.Invalid
		ls.Duplicates += a.Duplicates
		ls.Known += a.Known
		batch = batch[:0]
		return nil
	}
	n, err := ReadLines(r, norm, defaultLabel, func(l Line) error {
		batch = append(batch, store.ScanLine{Line: l.N, Input: l.Input, Domain: l.Domain, Label: l.Label, Err: l.Err})
		if len(batch) >= loadBatch {
			if err := ctx.Err(); err != nil {
				return err
			}
			return flush()
		}
		return nil
	})
	ls.Lines = n
	if err != nil {
		return ls, err
	}
	if err := flush(); err != nil {
		return ls, err
	}
	if err := st.MarkScanLoaded(ctx, id, time.Now(), n); err != nil {
		return ls, err
	}
	return ls, nil
}

// Options configures Run. Zero values take the defaults noted.
type Options struct {
	// Owner names this worker in the leases; "" means host name, process
	// ID and a random suffix.
	Owner string
	// Concurrency is the number of domains checked at once; 0 means 32.
	Concurrency int
	// Rate caps the domains started per second over the whole scan (this
	// worker; with SharedRate, all workers together); 0 means no cap.
	Rate float64
	// SharedRate counts Rate's starts in the store, for all workers of the
	// scan together (store.TakeScanStart): per window of a second (of
	// ceil(1/Rate) seconds below one per second) at most floor(Rate ×
	// window) domains start, whichever worker starts them.
	SharedRate bool
	// CheckTimeout is the deadline of one domain's check (the checker's own
	// deadline should be shorter); 0 means 60s. The lease of an item lasts
	// twice as long and is renewed while the check runs.
	CheckTimeout time.Duration
	// MaxAttempts is how often an item whose worker died is retried before
	// it is given up; 0 means 3.
	MaxAttempts int
	// Retry, if set, says which failures of the checker are transient
	// (the resolver did not answer): such an item goes back to pending and
	// is checked again, up to MaxAttempts leases in all; then the error is
	// kept.
	Retry func(error) bool
	// Progress, if set, is called about four times a second and at the end.
	Progress func(Progress)
	Logger   *slog.Logger // nil: discard
}

func (o *Options) defaults() {
	if o.Owner == "" {
		o.Owner = NewOwner()
	}
	option.Positive(&o.Concurrency, 32)
	option.Positive(&o.CheckTimeout, 60*time.Second)
	option.Positive(&o.MaxAttempts, 3)
	o.Logger = option.Logger(o.Logger)
}

// NewOwner names a worker in the leases and the shared slots: host name,
// process ID and a random suffix.
func NewOwner() string {
	h, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", h, os.Getpid(), hex.EncodeToString(b[:]))
}

// Progress is a snapshot of a running scan.
type Progress struct {
	Total    int64         // items of the scan (domains, invalid and duplicate lines)
	Finished int64         // items with an outcome, by any worker, before or during this run
	Errors   int64         // of those, without a result (bad lines, failed checks)
	Checked  int64         // domains this run checked
	Running  int           // checks in flight in this worker
	Rate     float64       // domains per second over the last seconds
	Elapsed  time.Duration // since this run started
	ETA      time.Duration // at Rate; 0 when unknown
	Final    bool          // the last call
}

// Stats sums up a run.
type Stats struct {
	Checked  int64 // domains checked by this run (done or error)
	Failed   int64 // of those, with an error
	Lost     int64 // results not stored: the lease had passed to another worker
	Released int64 // items given back as pending when the run was interrupted
	Retried  int64 // checks that failed transiently and went back to pending
	Elapsed  time.Duration
	Counts   store.ScanCounts // the scan's counts at the end
}

// Run checks the scan's pending items until none is left or ctx ends. On
// ctx's end it stores every finished result, gives its running items back
// as pending (nothing is lost) and returns ctx's error. Several processes
// may run the same scan on a shared store: items are leased.
func Run(ctx context.Context, st *store.Store, id string, check Checker, opts Options) (Stats, error) {
	opts.defaults()
	r := &runner{st: st, id: id, check: check, opts: opts, start: time.Now()}
	switch {
	case opts.Rate > 0 && opts.SharedRate:
		r.window, r.perWindow = rateWindow(opts.Rate)
	case opts.Rate > 0:
		r.limit = rate.NewLimiter(rate.Limit(opts.Rate), 1)
	}
	c0, err := st.ScanCounts(ctx, id)
	if err != nil {
		return Stats{}, err
	}
	r.base.Store(c0.Finished())
	r.baseErr.Store(c0.Error)
	r.total.Store(c0.Total())
	return r.run(ctx)
}

type runner struct {
	st    *store.Store
	id    string
	check Checker
	opts  Options
	limit *rate.Limiter
	// window and perWindow: the shared rate (Options.SharedRate).
	window    time.Duration
	perWindow int
	start     time.Time

	base, baseErr, total atomic.Int64 // counts at the start
	checked, failed      atomic.Int64
	retried              atomic.Int64
	running              atomic.Int64
	lost                 atomic.Int64

	rmu   sync.Mutex
	ticks []tick // finished counts over the last seconds, for the rate
}

type tick struct {
	t time.Time
	n int64
}

func (r *runner) run(ctx context.Context) (Stats, error) {
	o := r.opts
	lease := 2 * o.CheckTimeout
	work := make(chan store.ScanItem)
	results := make(chan store.ScanResult, o.Concurrency)

	// Workers: check one item at a time.
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for it := range work {
				res, ok := r.checkOne(ctx, it)
				if ok {
					results <- res
				}
			}
		})
	}

	// Writer: stores results in batches; keeps going after ctx ends so
	// that every finished result is kept.
	var (
		writerErr error
		writerWG  sync.WaitGroup
	)
	writerWG.Go(func() { writerErr = r.write(results) })

	// Progress.
	stopProgress := make(chan struct{})
	var progWG sync.WaitGroup
	if o.Progress != nil {
		progWG.Go(func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-t.C:
					o.Progress(r.progress(false))
				case <-stopProgress:
					return
				}
			}
		})
	}

	// Lease renewal: the lease outlives a check, but a long scan must not
	// lose items it holds to another worker while they wait in line.
	renewCtx, stopRenew := context.WithCancel(ctx)
	var renewWG sync.WaitGroup
	renewWG.Go(func() {
		t := time.NewTicker(lease / 3)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				if _, err := r.st.RenewScanLeases(renewCtx, r.id, o.Owner, time.Now().Add(lease)); err != nil && renewCtx.Err() == nil {
					o.Logger.Warn("scan: renewing leases", "err", err)
				}
				r.pruneShares(renewCtx, time.Now().Add(-sharesKept))
			case <-renewCtx.Done():
				return
			}
		}
	})

	// Feeder: leases items in batches and hands them to the workers.
	feedErr := r.feed(ctx, work, lease)
	close(work)
	wg.Wait()
	close(results)
	writerWG.Wait()
	stopRenew()
	renewWG.Wait()

	// Give back what this worker still holds (leased, not finished):
	// nothing is lost on an interruption. The store is reached with a
	// context of its own, since ctx may have ended.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	released, relErr := r.st.ReleaseScanItems(sctx, r.id, o.Owner)
	counts, cntErr := r.st.ScanCounts(sctx, r.id)
	if cntErr == nil {
		r.total.Store(counts.Total())
		r.base.Store(counts.Finished() - r.checked.Load())
		if feedErr == nil && counts.Pending == 0 && counts.Running == 0 {
			// The scan is complete: no worker will take a start or
			// a slot of it again.
			r.pruneShares(sctx, time.Unix(0, math.MaxInt64))
		}
	}
	close(stopProgress)
	progWG.Wait()
	if o.Progress != nil {
		o.Progress(r.progress(true))
	}
	stats := Stats{Checked: r.checked.Load(), Failed: r.failed.Load(), Lost: r.lost.Load(), Released: released, Retried: r.retried.Load(),
		Elapsed: time.Since(r.start), Counts: counts}
	return stats, errors.Join(feedErr, writerErr, relErr, cntErr)
}

// feed leases items and sends them to work until the scan has no pending
// item left and no item is running elsewhere, or ctx ends.
func (r *runner) feed(ctx context.Context, work chan<- store.ScanItem, lease time.Duration) error {
	o := r.opts
	batch := max(2*o.Concurrency, 16)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		now := time.Now()
		items, err := r.st.LeaseScanItems(ctx, r.id, o.Owner, batch, now, now.Add(lease), o.MaxAttempts)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		if len(items) == 0 {
			// Nothing to lease: done, unless other workers still hold
			// items (their leases may expire and come back).
			c, err := r.st.ScanCounts(ctx, r.id)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			if c.Pending == 0 && c.Running == 0 {
				return nil
			}
			if c.Running > 0 && c.Pending == 0 {
				select {
				case <-time.After(time.Second):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			continue
		}
		for _, it := range items {
			select {
			case work <- it:
			case <-ctx.Done():
				// The unsent items stay leased to us: Run releases them.
				return ctx.Err()
			}
		}
	}
}

// sharesKept is how long a worker keeps the shared caps' old rows
// (store.PruneScanShares) while the scan runs: only the current rate
// window and held slots count, and a minute covers the workers' clocks
// being a little apart.
const sharesKept = time.Minute

// pruneShares deletes the scan's rate windows and run-out slots older than
// before; a failure is only logged (the rows are pruned again later, or by
// the retention purge).
func (r *runner) pruneShares(ctx context.Context, before time.Time) {
	if _, err := r.st.PruneScanShares(ctx, r.id, before); err != nil && ctx.Err() == nil {
		r.opts.Logger.Warn("scan: pruning the shared caps' rows", "err", err)
	}
}

// rateWindow is the window and the starts per window of a shared rate of
// r domains per second: one-second windows of floor(r) starts, or below
// one per second windows of ceil(1/r) seconds with one start.
func rateWindow(r float64) (time.Duration, int) {
	if r >= 1 {
		return time.Second, int(r)
	}
	return time.Duration(math.Ceil(1/r)) * time.Second, 1
}

// takeStart waits until the store grants a start in the current window
// (store.TakeScanStart); a full window is waited out.
func (r *runner) takeStart(ctx context.Context) error {
	for {
		w := time.Now().Truncate(r.window)
		ok, err := r.st.TakeScanStart(ctx, r.id, w, r.perWindow)
		if err != nil && ctx.Err() == nil {
			// A store that does not answer stops the scan's starts, not
			// the caps: wait and ask again.
			r.opts.Logger.Warn("scan: shared rate", "err", err)
		}
		if ok {
			return nil
		}
		wait := time.Until(w.Add(r.window))
		if err != nil {
			wait = time.Second
		}
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// checkOne checks one leased item. ok is false when ctx ended before the
// check finished: the item is then released, not stored.
func (r *runner) checkOne(ctx context.Context, it store.ScanItem) (store.ScanResult, bool) {
	if r.limit != nil {
		if err := r.limit.Wait(ctx); err != nil {
			return store.ScanResult{}, false
		}
	}
	if r.window > 0 {
		if err := r.takeStart(ctx); err != nil {
			return store.ScanResult{}, false
		}
	}
	if ctx.Err() != nil {
		return store.ScanResult{}, false
	}
	r.running.Add(1)
	defer r.running.Add(-1)
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, r.opts.CheckTimeout)
	out, err := r.safeCheck(cctx, it.Domain)
	timedOut := cctx.Err() != nil
	cancel()
	if ctx.Err() != nil {
		return store.ScanResult{}, false
	}
	res := store.ScanResult{Line: it.Line, State: store.ScanDone, Started: start, Finished: time.Now()}
	if len(out) > 0 {
		sum, serr := Summarize(out)
		if serr != nil {
			err = errors.Join(err, serr)
		} else {
			res.Summary = sum
			res.Result = compact(out)
		}
	}
	if err != nil && r.opts.Retry != nil && r.opts.Retry(err) && it.Attempts < r.opts.MaxAttempts {
		r.retried.Add(1)
		return store.ScanResult{Line: it.Line, State: store.ScanPending, Error: untrusted.Truncate(err.Error(), 500)}, true
	}
	if err != nil || len(res.Result) == 0 {
		res.State = store.ScanError
		switch {
		case err != nil:
			res.Error = untrusted.Truncate(err.Error(), 500)
		case timedOut:
			res.Error = fmt.Sprintf("no result within %s", r.opts.CheckTimeout)
		default:
			res.Error = "the check returned no result"
		}
		r.failed.Add(1)
	}
	r.checked.Add(1)
	return res, true
}

// safeCheck runs the checker and turns a panic into an error: one
// domain that trips a bug must not end the scan of the others.
func (r *runner) safeCheck(ctx context.Context, domain string) (out json.RawMessage, err error) {
	defer func() {
		if p := recover(); p != nil {
			r.opts.Logger.Error("scan: the check panicked", "domain", domain, "panic", p)
			out, err = nil, fmt.Errorf("the check failed unexpectedly (a bug): %v", p)
		}
	}()
	return r.check(ctx, domain)
}

// compact removes the white space of a JSON document.
func compact(b []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(b))
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// write stores results in batches (every 100 ms or 256 results), until
// results is closed.
func (r *runner) write(results <-chan store.ScanResult) error {
	const (
		maxBatch = 256
		every    = 100 * time.Millisecond
	)
	var (
		batch []store.ScanResult
		errs  []error
	)
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		lost, err := r.st.FinishScanItems(ctx, r.id, r.opts.Owner, batch)
		if err != nil {
			// The items stay leased: released at the end, checked again.
			r.opts.Logger.Error("scan: storing results", "err", err, "results", len(batch))
			errs = append(errs, err)
		}
		if lost > 0 {
			r.lost.Add(int64(lost))
			r.opts.Logger.Warn("scan: results not stored: their leases passed to another worker", "n", lost)
		}
		batch = batch[:0]
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case res, ok := <-results:
			if !ok {
				flush()
				return errors.Join(errs...)
			}
			batch = append(batch, res)
			if len(batch) >= maxBatch {
				flush()
			}
		case <-t.C:
			flush()
		}
	}
}

// progress computes a snapshot.
func (r *runner) progress(final bool) Progress {
	now := time.Now()
	checked := r.checked.Load()
	p := Progress{
		Total: r.total.Load(), Finished: r.base.Load() + checked, Errors: r.baseErr.Load() + r.failed.Load(),
		Checked: checked, Running: int(r.running.Load()), Elapsed: now.Sub(r.start), Final: final,
	}
	r.rmu.Lock()
	r.ticks = append(r.ticks, tick{now, checked})
	// A window of about ten seconds, so the rate follows changes.
	for len(r.ticks) > 2 && now.Sub(r.ticks[0].t) > 10*time.Second {
		r.ticks = r.ticks[1:]
	}
	first := r.ticks[0]
	r.rmu.Unlock()
	switch {
	case final && p.Elapsed > 0:
		p.Rate = float64(checked) / p.Elapsed.Seconds()
	case now.Sub(first.t) > 500*time.Millisecond:
		p.Rate = float64(checked-first.n) / now.Sub(first.t).Seconds()
	}
	if left := p.Total - p.Finished; p.Rate > 0 && left > 0 {
		p.ETA = time.Duration(float64(left) / p.Rate * float64(time.Second))
	}
	return p
}
