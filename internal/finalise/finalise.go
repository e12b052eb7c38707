// Package finalise finishes tests (DESIGN.md §1.3): a loop finds the
// tests that are due (store.DueTests), gathers each one's evidence
// (internal/evidence) and judges it; a test that is not final yet is
// deferred to the earliest moment it may be (nextLook); once the verdict is
// final (verdict.Final) it ties the test's
// last untied connections (evidence.Tie), judges again, decides the result
// mail (resultmail.Decide: no backscatter) and freezes verdict and decision
// in the store. The mail itself is internal/delivery's job, in a loop of
// its own, so a slow recipient never holds up a verdict.
package finalise

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/periodic"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// Options configure a Finaliser.
type Options struct {
	Store *store.Store
	// Evidence gathers and ties under the service's rules; its Quiet
	// (timing.ack_after) and TestExpiry (timing.test_expiry) are also
	// verdict.Final's.
	Evidence evidence.Gatherer
	// MailEnabled: result mails are on (a signing key and a way out);
	// otherwise tests are still finalised and the page says why no mail
	// came.
	MailEnabled bool
	// Providers are web.providers: the final verdict of a test whose
	// authenticated sender is in one of them is also written to the
	// provider's history (store.ProviderHistory, docs/providers.md).
	Providers []string
	// Interval is the loop's period; 0 means 10s.
	Interval time.Duration
	// PassLimit bounds the tests one pass looks at (0: 1,000) and PassTime
	// the time it takes (0: 30s, checked between tests); the next pass
	// continues with the tests still due.
	PassLimit int
	PassTime  time.Duration
	Logger    *slog.Logger     // nil: discard
	Now       func() time.Time // nil: time.Now
}

// Finaliser finalises tests.
type Finaliser struct {
	o         Options
	rules     evidence.Rules
	log       *slog.Logger
	providers map[string]bool // Options.Providers, canonical
}

// New returns a Finaliser, with defaults for unset options.
func New(o Options) (*Finaliser, error) {
	if o.Store == nil || o.Evidence.Store == nil {
		return nil, errors.New("finalise: no store")
	}
	option.Positive(&o.Interval, 10*time.Second)
	option.Positive(&o.PassLimit, defaultPassLimit)
	option.Positive(&o.PassTime, defaultPassTime)
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	providers := make(map[string]bool, len(o.Providers))
	for _, p := range o.Providers {
		providers[dnsname.Canonical(p)] = true
	}
	return &Finaliser{o: o, rules: o.Evidence.Rules.WithDefaults(), log: o.Logger, providers: providers}, nil
}

// Run finalises what is final every Interval until ctx ends. Store errors
// are logged and retried at the next tick: a passing outage must not stop
// the loop.
func (f *Finaliser) Run(ctx context.Context) error {
	periodic.Run(ctx, f.o.Interval, f.log, "results: finalising tests", func(ctx context.Context) error {
		_, err := f.FinaliseDue(ctx)
		return err
	})
	return nil
}

// Bounds of one pass of FinaliseDue.
const (
	defaultPassLimit = 1000
	defaultPassTime  = 30 * time.Second
	duePageSize      = 100
)

// FinaliseDue looks at the tests that are due now, oldest due first, and
// returns how many it finalised. It pages through them on the store's
// index until none is due or the pass has looked at PassLimit tests or
// taken PassTime; the next pass continues. Each test it looks at is either
// finalised or deferred (store.DeferTest) to the earliest moment it may
// become final, so tests that are not final (junk that will only expire)
// go to the back of the queue and cannot hold up one that is. A test that
// failed stays due and is tried again at the next pass.
func (f *Finaliser) FinaliseDue(ctx context.Context) (int, error) {
	now := f.o.Now()
	deadline := time.Now().Add(f.o.PassTime)
	var (
		cursor store.DueCursor
		errs   []error
	)
	n, looked := 0, 0
	for looked < f.o.PassLimit && time.Now().Before(deadline) {
		page, err := f.o.Store.DueTests(ctx, now, cursor, min(duePageSize, f.o.PassLimit-looked))
		if err != nil {
			return n, errors.Join(append(errs, err)...)
		}
		if len(page) == 0 {
			break
		}
		for _, t := range page {
			if looked >= f.o.PassLimit || !time.Now().Before(deadline) || ctx.Err() != nil {
				break
			}
			looked++
			cursor = t.After()
			done, next, err := f.finalise(ctx, t.Test, false)
			switch {
			case err != nil:
				errs = append(errs, err)
			case done:
				n++
			case !next.IsZero():
				if err := f.o.Store.DeferTest(ctx, t.ID, next); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if ctx.Err() != nil {
			return n, errors.Join(append(errs, ctx.Err())...)
		}
	}
	if looked >= f.o.PassLimit || !time.Now().Before(deadline) {
		f.log.Info("results: finalising pass bounded; the next pass continues", "looked", looked, "finalised", n)
	}
	return n, errors.Join(errs...)
}

// Finalise finalises t if its verdict is final (or force) and returns
// whether it did. The verdict is frozen; the mail decision is stored with
// it.
func (f *Finaliser) Finalise(ctx context.Context, t store.Test, force bool) (bool, error) {
	done, _, err := f.finalise(ctx, t, force)
	return done, err
}

// nextLook is when a test that is not final at now may become final
// without anything new arriving on it: its quiet time after its last
// activity if that is still to come, else one quiet time from now (the
// verdict may still be incomplete, or a connection still open), and never
// later than its expiry (verdict.Final). A new connection of the test only
// moves its last activity later, so its quiet time ends after this look:
// no test is looked at late.
func (f *Finaliser) nextLook(t store.Test, conns []store.SMTPConnection, now time.Time) time.Time {
	last := verdict.LastActivity(t, conns)
	next := last.Add(f.rules.Quiet)
	if !next.After(now) {
		next = now.Add(f.rules.Quiet)
	}
	return minTime(next, last.Add(f.rules.TestExpiry))
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// finalise is Finalise that also returns, for a test it did not finalise,
// when to look at it again (zero: at the next pass).
func (f *Finaliser) finalise(ctx context.Context, t store.Test, force bool) (done bool, next time.Time, err error) {
	now := f.o.Now()
	ev := f.o.Evidence
	v, obs, err := ev.Judge(ctx, t, now)
	if err != nil {
		return false, time.Time{}, err
	}
	final := verdict.Final(verdict.FinalInput{Test: t, Connections: obs.Connections, Verdict: v, Now: now,
		Quiet: f.rules.Quiet, Expiry: f.rules.TestExpiry})
	if !force && !final {
		next := f.nextLook(t, obs.Connections, now)
		if len(obs.DNSLookups) > 0 && (t.State == store.TestAcked || !t.Acked.IsZero()) {
			// A's mail was accepted; B may be settled on a look-up once
			// its grace has passed (verdict.Final), before the quiet time.
			next = minTime(next, now.Add(verdict.LookupGrace))
		}
		return false, next, nil
	}
	// Connections the sender aborted before naming the test (a refused
	// certificate) and that no later RCPT of theirs tied.
	tied := int64(0)
	for _, client := range evidence.Clients(obs.Connections) {
		n, err := ev.Tie(ctx, t, client, now)
		if err != nil {
			return false, time.Time{}, err
		}
		tied += n
	}
	if tied > 0 {
		if v, obs, err = ev.Judge(ctx, t, now); err != nil {
			return false, time.Time{}, err
		}
	}
	d := resultmail.Decide(resultmail.DecideInput{Enabled: f.o.MailEnabled, Test: t, Connections: obs.Connections})
	vj, err := json.Marshal(v)
	if err != nil {
		return false, time.Time{}, err
	}
	r := store.TestResult{TestID: t.ID, Final: now, Verdict: vj, SenderDomain: resultmail.SenderDomain(t.Sender),
		SenderAuthenticated: d.SenderAuthenticated, MailState: d.State, MailReason: d.Reason, Recipient: d.Recipient}
	if d.State == store.MailPending {
		r.Next = now
	}
	if d.SenderAuthenticated && f.providers[r.SenderDomain] {
		r.Provider = &store.ProviderVerdict{Domain: r.SenderDomain, Final: now, TestID: t.ID, Policy: string(v.Policy),
			Colour: string(report.VerdictColour(v)), Complete: v.Complete}
	}
	t.State, t.Updated = store.TestFinal, now
	if err := f.o.Store.FinalizeTest(ctx, t, r); err != nil {
		if errors.Is(err, store.ErrExists) {
			return false, time.Time{}, nil // another node or loop was first: no longer due
		}
		return false, time.Time{}, err
	}
	f.log.Info("results: test final", "test", t.ID, "policy", v.Policy, "mail", r.MailState, "reason", report.RedactText(r.MailReason))
	return true, time.Time{}, nil
}
