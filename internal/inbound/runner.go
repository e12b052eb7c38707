package inbound

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/option"
)

// Runner checks the sender domain of every outbound test in the
// background (DESIGN.md §1.2: the result reports both directions) and
// hands each report to Save, stored with the test.
//
// Anyone can send a test mail with any envelope sender, so the runner
// must not turn the service into a scanner on others' behalf: a domain is
// checked at most once per CacheTTL (later tests reuse the result), at
// most Parallel checks run at once, at most PerHour start per hour, and
// at most Queue wait; beyond that a submission is dropped and logged.
// Each test gets one check at most. Private targets stay refused unless
// the check's options allow them.
type Runner struct {
	o     RunnerOptions
	queue chan job

	mu       sync.Mutex
	tests    map[string]bool       // tests already submitted
	cache    map[string]cacheEntry // domain → last result
	inflight map[string]*flight    // domain → check in progress
	started  []time.Time           // starts within the last hour
}

// RunnerOptions configures a Runner. Zero values take the defaults noted.
type RunnerOptions struct {
	Check Options // options of each check
	// Parallel bounds the checks running at once; 0 means 2.
	Parallel int
	// Queue bounds the submissions waiting; 0 means 64.
	Queue int
	// PerHour bounds the checks started per hour (cache hits do not
	// count); 0 means 120.
	PerHour int
	// CacheTTL: a domain checked less than this ago is not checked again;
	// 0 means one hour.
	CacheTTL time.Duration
	// Recent returns a stored report of domain checked at or after since
	// (so the cache survives restarts); nil consults memory only. ok is
	// false when there is none.
	Recent func(ctx context.Context, domain string, since time.Time) (rep Stored, ok bool, err error)
	// Save stores the report of a test's sender domain. Required.
	Save func(ctx context.Context, testID string, rep Stored) error

	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
	// check replaces Check in tests of this package.
	check func(ctx context.Context, domain string, o Options) (*checkreport.Report, error)
}

// Stored is a report in the form it is stored: JSON with its domain,
// colour and time.
type Stored struct {
	Domain  string
	Colour  colour.Colour
	Checked time.Time
	JSON    []byte
}

type job struct{ testID, domain string }

type cacheEntry struct {
	rep Stored
}

type flight struct {
	done chan struct{}
	rep  Stored
	err  error
}

// Bounds of the runner's memory.
const (
	maxRememberedTests = 10000
	maxCachedDomains   = 1000
)

// NewRunner returns a runner; start its workers with Run.
func NewRunner(o RunnerOptions) *Runner {
	option.Positive(&o.Parallel, 2)
	option.Positive(&o.Queue, 64)
	option.Positive(&o.PerHour, 120)
	option.Positive(&o.CacheTTL, time.Hour)
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	if o.check == nil {
		o.check = Check
	}
	return &Runner{
		o: o, queue: make(chan job, o.Queue),
		tests: map[string]bool{}, cache: map[string]cacheEntry{}, inflight: map[string]*flight{},
	}
}

// SenderDomain returns the domain of an envelope sender (RFC 5321
// §4.1.2 Mailbox: the part after the last "@"), normalized; "" for the
// null sender or a path without a domain.
func SenderDomain(sender string) string {
	sender = strings.Trim(strings.TrimSpace(sender), "<>")
	at := strings.LastIndexByte(sender, '@')
	if at < 0 || at == len(sender)-1 {
		return ""
	}
	d, err := dnsname.NormalizeDomain(sender[at+1:])
	if err != nil {
		return ""
	}
	return d
}

// Submit asks for the check of the domain of sender, for test testID. It
// never blocks: the SMTP session calls it while a client waits.
func (r *Runner) Submit(testID, sender string) {
	domain := SenderDomain(sender)
	if testID == "" || domain == "" {
		return
	}
	r.mu.Lock()
	if r.tests[testID] {
		r.mu.Unlock()
		return
	}
	if len(r.tests) >= maxRememberedTests {
		r.tests = map[string]bool{} // the store refuses a second check per test anyway
	}
	r.tests[testID] = true
	r.mu.Unlock()
	select {
	case r.queue <- job{testID: testID, domain: domain}:
	default:
		r.o.Logger.Warn("inbound: queue full, sender domain not checked", "test", testID, "domain", domain)
	}
}

// Run works the queue with Parallel workers until ctx ends.
func (r *Runner) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for range r.o.Parallel {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-r.queue:
					r.handle(ctx, j)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// handle gets a report for the job's domain — from memory, the store, a
// check in progress or a new check — and saves it for the job's test.
func (r *Runner) handle(ctx context.Context, j job) {
	log := r.o.Logger.With("test", j.testID, "domain", j.domain)
	rep, err := r.report(ctx, j.domain)
	if err != nil {
		log.Warn("inbound: sender domain not checked", "err", err)
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.o.Save(sctx, j.testID, rep); err != nil {
		log.Warn("inbound: storing the sender domain's check", "err", err)
		return
	}
	log.Info("inbound: sender domain checked", "colour", rep.Colour, "checked", rep.Checked)
}

// errRateLimit: PerHour checks were started within the last hour.
var errRateLimit = errors.New("inbound: hourly limit of sender-domain checks reached")

func (r *Runner) report(ctx context.Context, domain string) (Stored, error) {
	now := r.o.Now()
	since := now.Add(-r.o.CacheTTL)
	r.mu.Lock()
	if e, ok := r.cache[domain]; ok && !e.rep.Checked.Before(since) {
		r.mu.Unlock()
		return e.rep, nil
	}
	if f, ok := r.inflight[domain]; ok {
		r.mu.Unlock()
		select {
		case <-f.done:
			return f.rep, f.err
		case <-ctx.Done():
			return Stored{}, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	r.inflight[domain] = f
	r.mu.Unlock()
	cacheable := true
	defer func() {
		r.mu.Lock()
		delete(r.inflight, domain)
		if f.err == nil && cacheable {
			if len(r.cache) >= maxCachedDomains {
				r.evictLocked(since)
			}
			r.cache[domain] = cacheEntry{rep: f.rep}
		}
		r.mu.Unlock()
		close(f.done)
	}()

	if r.o.Recent != nil {
		if rep, ok, err := r.o.Recent(ctx, domain, since); err == nil && ok {
			f.rep = rep
			return rep, nil
		}
	}
	if !r.allowStart(now) {
		f.err = errRateLimit
		return Stored{}, f.err
	}
	rep, err := r.o.check(ctx, domain, r.o.Check)
	if rep == nil {
		if err == nil {
			err = errors.New("inbound: no report")
		}
		f.err = err
		return Stored{}, err
	}
	// A report with a fatal error (resolver down) is still stored: it
	// says why there is nothing to show. It is not cached.
	b, jerr := json.Marshal(rep)
	if jerr != nil {
		f.err = jerr
		return Stored{}, jerr
	}
	f.rep = Stored{Domain: rep.Domain, Colour: rep.Colour, Checked: rep.CheckedAt, JSON: b}
	if err != nil {
		r.o.Logger.Warn("inbound: check failed", "domain", domain, "err", err)
		cacheable = false
	}
	return f.rep, nil
}

// allowStart counts a start against PerHour.
func (r *Runner) allowStart(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	hourAgo := now.Add(-time.Hour)
	kept := r.started[:0]
	for _, t := range r.started {
		if t.After(hourAgo) {
			kept = append(kept, t)
		}
	}
	r.started = kept
	if len(r.started) >= r.o.PerHour {
		return false
	}
	r.started = append(r.started, now)
	return true
}

// evictLocked drops expired entries, and everything if none was.
func (r *Runner) evictLocked(since time.Time) {
	for d, e := range r.cache {
		if e.rep.Checked.Before(since) {
			delete(r.cache, d)
		}
	}
	if len(r.cache) >= maxCachedDomains {
		r.cache = map[string]cacheEntry{}
	}
}
