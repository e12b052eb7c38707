// Package delivery gets result mails to their recipients (DESIGN.md §1.3):
// a loop picks the due mails that internal/finalise decided, and a pool of
// workers makes one attempt each, through internal/sender at level dane
// with MTA-STS (NewSender). Every attempt has an overall deadline, so a
// recipient MX that accepts and never answers (a tarpit) holds one worker
// for that long at most, and only mails to its own domain wait behind it:
// one attempt per recipient domain is in flight at a time, which also
// keeps the per-domain rate limit exact. Failures are retried with
// backoff; everything is in the store, so nothing is lost across restarts.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/periodic"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/reportsource"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
)

// Defaults of the Options.
const (
	DefaultAttemptTimeout = 10 * time.Minute
	DefaultWorkers        = 4
)

// Options configure a Deliverer.
type Options struct {
	Store *store.Store
	// Source makes the report the mail carries, composed at the first
	// attempt, with a link by an owner key made for the mail
	// (ownerkey.go).
	Source reportsource.Source
	// Identity signs and sends; a nil Identity.Key turns delivery off.
	Identity resultmail.Identity
	Send     SendFunc
	// RateLimit result mails per recipient domain per RateWindow (0: no
	// limit). Over it, a mail waits; it is not dropped.
	RateLimit  int
	RateWindow time.Duration
	// RetryBase is the first retry delay, doubled per attempt up to
	// RetryMax; MaxAttempts ends the retries (mail state failed).
	RetryBase   time.Duration
	RetryMax    time.Duration
	MaxAttempts int
	// AttemptTimeout bounds one attempt as a whole, every MX host tried
	// (result_mail.attempt_timeout); 0 means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Workers is the number of attempts in flight at most; 0 means
	// DefaultWorkers.
	Workers int
	// Interval is the loop's period.
	Interval time.Duration
	// Node names this process in the claims of the mails it attempts
	// (store.ClaimResultMail): of several nodes on one store, only the
	// claim's owner sends a mail until the claim runs out
	// (AttemptTimeout and a minute). "" means "local".
	Node   string
	Logger *slog.Logger
	Now    func() time.Time
}

// Deliverer sends due result mails.
type Deliverer struct {
	o    Options
	log  *slog.Logger
	slot chan struct{} // one token per worker

	mu   sync.Mutex
	busy map[string]bool // recipient domains with an attempt in flight
}

// New returns a Deliverer, with defaults for unset options.
func New(o Options) (*Deliverer, error) {
	if o.Store == nil {
		return nil, errors.New("delivery: no store")
	}
	if o.Identity.Key != nil && (o.Send == nil || o.Identity.From == "" || o.Identity.Domain == "" || o.Identity.Selector == "") {
		return nil, errors.New("delivery: a signing key needs From, Domain, Selector and a sender")
	}
	option.Positive(&o.RateWindow, time.Hour)
	option.Positive(&o.RetryBase, time.Minute)
	option.Positive(&o.RetryMax, 4*time.Hour)
	option.Positive(&o.Interval, 10*time.Second)
	option.Positive(&o.AttemptTimeout, DefaultAttemptTimeout)
	option.Positive(&o.MaxAttempts, 12)
	option.Positive(&o.Workers, DefaultWorkers)
	if o.Node == "" {
		o.Node = "local"
	}
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	return &Deliverer{o: o, log: o.Logger, slot: make(chan struct{}, o.Workers), busy: map[string]bool{}}, nil
}

// Run starts the due attempts every Interval until ctx ends, without
// waiting for them: an attempt still in flight at the next tick goes on,
// and its domain is skipped. When ctx ends, Run waits for the attempts in
// flight (ending with ctx) and returns.
func (d *Deliverer) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	periodic.Run(ctx, d.o.Interval, d.log, "results: sending result mails", func(ctx context.Context) error {
		_, err := d.start(ctx, &wg, nil, nil)
		return err
	})
	return nil
}

// SendDue makes one attempt for every due result mail, as far as workers
// and domains allow, waits for them and returns how many were delivered.
// A mail to a domain with an attempt in flight waits for it, so this
// repeats until nothing due is left that has not had its attempt.
func (d *Deliverer) SendDue(ctx context.Context) (int, error) {
	tried := map[string]bool{}
	delivered := 0
	var mu sync.Mutex
	count := func(ok bool) {
		if ok {
			mu.Lock()
			delivered++
			mu.Unlock()
		}
	}
	var errs []error
	for {
		var wg sync.WaitGroup
		n, err := d.start(ctx, &wg, func(id string) bool {
			if tried[id] {
				return false
			}
			tried[id] = true
			return true
		}, count)
		wg.Wait()
		if err != nil {
			errs = append(errs, err)
		}
		if n == 0 || err != nil {
			return delivered, errors.Join(errs...)
		}
	}
}

// start starts an attempt for each due mail that want accepts (nil: all)
// whose domain is idle, while workers are free, and returns how many it
// started. Each attempt runs in its own goroutine under wg; done (nil:
// none) learns whether it delivered.
func (d *Deliverer) start(ctx context.Context, wg *sync.WaitGroup, want func(testID string) bool, done func(delivered bool)) (int, error) {
	if d.o.Identity.Key == nil {
		return 0, nil
	}
	due, err := d.o.Store.DueResultMails(ctx, d.o.Now(), 0)
	if err != nil {
		return 0, err
	}
	started := 0
	for _, listed := range due {
		if !d.claim(listed.SenderDomain) {
			continue
		}
		// The list was read before the claim: an attempt for this domain
		// may have finished in between and recorded this very mail as
		// sent (or deferred it). Only the row as it is now, read after
		// the claim, may be attempted; else the mail would go twice.
		r, ok, err := d.stillDue(ctx, listed)
		if ok && want != nil {
			ok = want(r.TestID)
		}
		if ok {
			// Then claimed in the store: another node may be attempting
			// it (its claim is in the row, not in this process's busy).
			ok, err = d.claimMail(ctx, &r)
		}
		if err != nil || !ok {
			d.release(listed.SenderDomain)
			if err != nil {
				return started, err
			}
			continue
		}
		select {
		case d.slot <- struct{}{}:
		default:
			d.release(r.SenderDomain)
			return started, nil // every worker is busy: the next round
		}
		started++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-d.slot }()
			defer d.release(r.SenderDomain)
			ok, err := d.attempt(ctx, r)
			if err != nil && ctx.Err() == nil {
				d.log.Error("results: result mail attempt", "test", r.TestID, "err", err)
			}
			if done != nil {
				done(ok)
			}
		}()
	}
	return started, nil
}

// stillDue re-reads listed's row and tells whether it is still due and
// unchanged since the list was read (same number of attempts).
func (d *Deliverer) stillDue(ctx context.Context, listed store.TestResult) (store.TestResult, bool, error) {
	r, err := d.o.Store.Result(ctx, listed.TestID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return r, false, nil // deleted by its owner meanwhile
	case err != nil:
		return r, false, err
	}
	due := r.MailState == store.MailPending && !r.Next.After(d.o.Now()) && r.Attempts == listed.Attempts
	return r, due, nil
}

// claimMail makes this node the one to attempt r (store.ClaimResultMail)
// for the attempt's deadline and a minute, and notes the claim in r, so
// that the attempt's records keep it until they clear it. False if another
// node holds the mail or it changed since it was read.
func (d *Deliverer) claimMail(ctx context.Context, r *store.TestResult) (bool, error) {
	now := d.o.Now()
	until := now.Add(d.o.AttemptTimeout + time.Minute)
	ok, err := d.o.Store.ClaimResultMail(ctx, r.TestID, r.Attempts, d.o.Node, now, until)
	if ok {
		r.ClaimOwner, r.ClaimUntil = d.o.Node, until
	}
	return ok, err
}

// claim marks domain busy; false if it already was.
func (d *Deliverer) claim(domain string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy[domain] {
		return false
	}
	d.busy[domain] = true
	return true
}

func (d *Deliverer) release(domain string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.busy, domain)
}

// attempt makes one delivery attempt of r, within AttemptTimeout, and
// records it.
func (d *Deliverer) attempt(ctx context.Context, r store.TestResult) (_ bool, err error) {
	st := d.o.Store
	now := d.o.Now()
	sending := false
	defer func() {
		if err != nil && !sending {
			// Failed before anything was sent (the report, the
			// composition, the store): the claim goes, so that any node
			// may try the mail again at its next round instead of after
			// the claim's deadline. Once Send was called the claim
			// stays: the mail may have been delivered.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if rerr := st.ReleaseResultMail(rctx, r.TestID, d.o.Node); rerr != nil {
				d.log.Error("results: releasing the claim of a result mail", "test", r.TestID, "err", rerr)
			}
		}
	}()
	if len(r.Message) == 0 {
		// Composed once, at the first attempt (the inbound check has had
		// the most time by then); retries send the same signed message.
		in, err := d.o.Source.Load(ctx, r.TestID, now)
		if err != nil {
			return false, err
		}
		in.Mail = nil // the mail does not describe its own fate
		if err := d.mailLink(ctx, &in, now); err != nil {
			return false, err
		}
		msg, id, err := resultmail.Compose(d.o.Identity, report.Build(in), r.Recipient, now)
		if err != nil {
			return false, err
		}
		r.Message, r.MessageID = msg, id
		if err := st.UpdateResultMail(ctx, r, nil); err != nil {
			return false, err
		}
	}
	if d.o.RateLimit > 0 {
		sent, err := st.MailsSentSince(ctx, r.SenderDomain, now.Add(-d.o.RateWindow))
		if err != nil {
			return false, err
		}
		if sent >= d.o.RateLimit {
			r.Next = now.Add(d.o.RateWindow / time.Duration(d.o.RateLimit))
			r.MailReason = fmt.Sprintf("waiting: %d result mails went to %s in the last %s", sent, r.SenderDomain, d.o.RateWindow)
			r.ClaimOwner, r.ClaimUntil = "", time.Time{} // not attempted: free for any node when due
			return false, st.UpdateResultMail(ctx, r, nil)
		}
	}
	actx, cancel := context.WithTimeout(ctx, d.o.AttemptTimeout)
	sending = true
	res := d.o.Send(actx, d.o.Identity.From, r.Recipient, r.Message)
	timedOut := errors.Is(actx.Err(), context.DeadlineExceeded)
	cancel()
	if ctx.Err() != nil {
		// Shutting down: the attempt was cut short by us, not by the
		// recipient; it is made again after the restart.
		return false, ctx.Err()
	}
	if timedOut && res.Status != Delivered {
		res.Status = Deferred
		res.Reason = fmt.Sprintf("no answer within the attempt deadline (%s): %s", d.o.AttemptTimeout, res.Reason)
	}
	detail := report.RedactText(res.Summary)
	r.Attempts++
	r.ClaimOwner, r.ClaimUntil = "", time.Time{} // the attempt is recorded with its outcome below
	a := &store.MailAttempt{Time: now, Status: res.Status, Detail: detail}
	switch res.Status {
	case Delivered:
		r.MailState, r.Sent, r.DeliveredTo, r.Recipient = store.MailSent, now, res.DeliveredTo, ""
		r.MailReason = "delivered to " + res.DeliveredTo
	case Bounced:
		r.MailState, r.Recipient = store.MailFailed, ""
		r.MailReason = "refused: " + report.RedactText(res.Reason)
	default:
		if r.Attempts >= d.o.MaxAttempts {
			r.MailState, r.Recipient = store.MailFailed, ""
			r.MailReason = fmt.Sprintf("given up after %d attempts: %s", r.Attempts, report.RedactText(res.Reason))
		} else {
			r.Next = now.Add(d.backoff(r.Attempts))
			r.MailReason = fmt.Sprintf("deferred (attempt %d, next %s): %s", r.Attempts, r.Next.UTC().Format(time.RFC3339), report.RedactText(res.Reason))
		}
	}
	if r.MailState != store.MailPending {
		// Decided: no retry will send the message again; the stored
		// copy keeps no owner key (ownerkey.go).
		r.Message = d.withoutLinkKeys(r.Message)
	}
	if err := st.UpdateResultMail(ctx, r, a); err != nil {
		return false, err
	}
	d.log.Info("results: result mail attempt", "test", r.TestID, "domain", r.SenderDomain, "status", a.Status, "detail", detail)
	return res.Status == Delivered, nil
}

// backoff is the delay after attempt n (1-based): RetryBase doubled per
// attempt, at most RetryMax.
func (d *Deliverer) backoff(n int) time.Duration {
	b := d.o.RetryBase
	for i := 1; i < n && b < d.o.RetryMax; i++ {
		b *= 2
	}
	return min(b, d.o.RetryMax)
}
