// Package finalise finishes tests (DESIGN.md §1.3): a loop finds the
// unfinished tests, gathers each one's evidence (internal/evidence) and
// judges it; once the verdict is final (verdict.Final) it ties the test's
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

	"github.com/mailsec/mailsec/internal/evidence"
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
	// DNS answers the SPF look-ups of the mail decision.
	DNS resultmail.DNS
	// Interval is the loop's period; 0 means 10s.
	Interval time.Duration
	Logger   *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now
}

// Finaliser finalises tests.
type Finaliser struct {
	o     Options
	rules evidence.Rules
	log   *slog.Logger
}

// New returns a Finaliser, with defaults for unset options.
func New(o Options) (*Finaliser, error) {
	if o.Store == nil || o.Evidence.Store == nil {
		return nil, errors.New("finalise: no store")
	}
	if o.MailEnabled && o.DNS == nil {
		return nil, errors.New("finalise: result mails need DNS for SPF")
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Finaliser{o: o, rules: o.Evidence.Rules.WithDefaults(), log: o.Logger}, nil
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

// FinaliseDue finalises the unfinished tests that are final now and
// returns how many.
func (f *Finaliser) FinaliseDue(ctx context.Context) (int, error) {
	tests, err := f.o.Store.UnfinishedTests(ctx, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, t := range tests {
		ok, err := f.Finalise(ctx, t, false)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// Finalise finalises t if its verdict is final (or force) and returns
// whether it did. The verdict is frozen; the mail decision is stored with
// it.
func (f *Finaliser) Finalise(ctx context.Context, t store.Test, force bool) (bool, error) {
	now := f.o.Now()
	ev := f.o.Evidence
	v, obs, err := ev.Judge(ctx, t, now)
	if err != nil {
		return false, err
	}
	final := verdict.Final(verdict.FinalInput{Test: t, Connections: obs.Connections, Verdict: v, Now: now,
		Quiet: f.rules.Quiet, Expiry: f.rules.TestExpiry})
	if !force && !final {
		return false, nil
	}
	// Connections the sender aborted before naming the test (a refused
	// certificate) and that no later RCPT of theirs tied.
	tied := int64(0)
	for _, client := range evidence.Clients(obs.Connections) {
		n, err := ev.Tie(ctx, t, client, now)
		if err != nil {
			return false, err
		}
		tied += n
	}
	if tied > 0 {
		if v, obs, err = ev.Judge(ctx, t, now); err != nil {
			return false, err
		}
	}
	d, err := resultmail.Decide(ctx, resultmail.DecideInput{Enabled: f.o.MailEnabled, DNS: f.o.DNS, Test: t,
		Connections: obs.Connections, Now: now, RetryFor: 2 * f.rules.Quiet})
	if errors.Is(err, resultmail.ErrUndecided) {
		f.log.Debug("results: SPF temporarily failed; retrying", "test", t.ID, "err", err)
		return false, nil
	}
	if err != nil {
		return false, err
	}
	vj, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	r := store.TestResult{TestID: t.ID, Final: now, Verdict: vj, SenderDomain: resultmail.SenderDomain(t.Sender),
		MailState: d.State, MailReason: d.Reason, Recipient: d.Recipient}
	if d.State == store.MailPending {
		r.Next = now
	}
	t.State, t.Updated = store.TestFinal, now
	if err := f.o.Store.FinalizeTest(ctx, t, r); err != nil {
		if errors.Is(err, store.ErrExists) {
			return false, nil // another node or loop was first
		}
		return false, err
	}
	f.log.Info("results: test final", "test", t.ID, "policy", v.Policy, "mail", r.MailState, "reason", report.RedactText(r.MailReason))
	return true, nil
}
