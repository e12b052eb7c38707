// Package resultmail finishes tests and sends their result mails
// (DESIGN.md §1.3, §4).
//
// A background loop (Mailer.Run) looks for tests whose verdict has become
// final (IsFinal), freezes the verdict in the store, and decides whether a
// result mail may go to the test's envelope sender: only when the test
// mail authenticated that sender (Authenticate: SPF pass, or an aligned
// valid DKIM signature), so the service cannot be used to send mail to
// forged addresses (backscatter). The mail — the report as text and HTML,
// DKIM-signed for zone A — goes out through internal/sender at level dane
// with MTA-STS (internal/resultsend): DANE and MTA-STS are enforced where the recipient domain
// offers them. Attempts are recorded; failures are retried with backoff;
// everything is in the store, so nothing is lost across restarts.
package resultmail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// Delivery is the outcome of one delivery attempt.
type Delivery struct {
	Status      string // DeliveryDelivered, DeliveryDeferred or DeliveryBounced
	Reason      string // one line: where it went, or why not
	Summary     string // every host tried, for the attempt's record
	DeliveredTo string // "mx.example.org [192.0.2.1] (policy dane, TLS 1.3)" when delivered
}

// Delivery statuses.
const (
	DeliveryDelivered = "delivered"
	DeliveryDeferred  = "deferred"
	DeliveryBounced   = "bounced"
)

// SendFunc makes one delivery attempt of msg from the envelope sender
// from to the recipient to. internal/resultsend makes one from
// internal/sender (the policy-aware client); this package does not import
// it, so that internal/service, which imports this package, stays free of
// the sender (whose own tests build on the service).
type SendFunc func(ctx context.Context, from, to string, msg []byte) Delivery

// Options configure a Mailer.
type Options struct {
	Source Source
	// Identity signs and sends; a nil Identity.Key turns result mails
	// off (tests are still finalised; the page says why no mail came).
	Identity Identity
	Send     SendFunc
	DNS      DNS // SPF look-ups
	// Expiry is timing.test_expiry: with no connection for this long, a
	// test is final whatever its verdict.
	Expiry time.Duration
	// RateLimit result mails per recipient domain per RateWindow (0: no
	// limit). Over it, a mail waits; it is not dropped.
	RateLimit  int
	RateWindow time.Duration
	// RetryBase is the first retry delay, doubled per attempt up to
	// RetryMax; MaxAttempts ends the retries (mail state failed).
	RetryBase   time.Duration
	RetryMax    time.Duration
	MaxAttempts int
	// Interval is the loop's period.
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Mailer is the loop that finalises tests and sends result mails.
type Mailer struct {
	o   Options
	log *slog.Logger
}

// New returns a Mailer, with defaults for unset options.
func New(o Options) (*Mailer, error) {
	if o.Source.Store == nil {
		return nil, errors.New("resultmail: no store")
	}
	if o.Identity.Key != nil && (o.Send == nil || o.Identity.From == "" || o.Identity.Domain == "" || o.Identity.Selector == "") {
		return nil, errors.New("resultmail: a signing key needs From, Domain, Selector and a sender")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Expiry, 48*time.Hour)
	def(&o.RateWindow, time.Hour)
	def(&o.RetryBase, time.Minute)
	def(&o.RetryMax, 4*time.Hour)
	def(&o.Interval, 10*time.Second)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 12
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Mailer{o: o, log: o.Logger}, nil
}

// Run finalises tests and sends due mails every Interval until ctx ends.
// Store errors are logged and retried at the next tick: a passing outage
// must not stop the loop.
func (m *Mailer) Run(ctx context.Context) error {
	t := time.NewTicker(m.o.Interval)
	defer t.Stop()
	for {
		m.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick runs one round: finalise what is final, send what is due.
func (m *Mailer) Tick(ctx context.Context) {
	if _, err := m.FinalizeDue(ctx); err != nil && ctx.Err() == nil {
		m.log.Error("results: finalising tests", "err", err)
	}
	if _, err := m.SendDue(ctx); err != nil && ctx.Err() == nil {
		m.log.Error("results: sending result mails", "err", err)
	}
}

// IsFinal tells whether a test's verdict is final at now: nothing came
// for timing.test_expiry; or the sender has been quiet for timing.ack_after
// and the verdict is complete, and either the mail for A was accepted
// (the sender has nothing left to send) or one policy is left. A test
// that was answered 451 and is not settled waits: the sender will retry.
func IsFinal(t store.Test, conns []store.SMTPConnection, v verdict.Verdict, now time.Time, quiet, expiry time.Duration) bool {
	open := false
	for _, c := range conns {
		open = open || c.Ended.IsZero()
	}
	idle := now.Sub(lastActivity(t, conns))
	switch {
	case idle >= expiry:
		return true
	case len(conns) == 0 || open || idle < quiet || !v.Complete:
		return false
	}
	acked := t.State == store.TestAcked || !t.Acked.IsZero()
	return acked || len(v.Candidates) == 1 || v.Policy == verdict.PolicyInconsistent
}

// lastActivity is the latest start or end of a connection, or the test's
// creation.
func lastActivity(t store.Test, conns []store.SMTPConnection) time.Time {
	last := t.Created
	for _, c := range conns {
		if c.Started.After(last) {
			last = c.Started
		}
		if c.Ended.After(last) {
			last = c.Ended
		}
	}
	return last
}

// FinalizeDue finalises the unfinished tests that are final now and
// returns how many.
func (m *Mailer) FinalizeDue(ctx context.Context) (int, error) {
	tests, err := m.o.Source.Store.UnfinishedTests(ctx, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, t := range tests {
		ok, err := m.Finalize(ctx, t, false)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// Finalize finalises t if it is final (or force) and returns whether it
// did. The verdict is frozen; the mail decision is stored with it.
func (m *Mailer) Finalize(ctx context.Context, t store.Test, force bool) (bool, error) {
	now := m.o.Now()
	src := m.o.Source
	v, conns, err := src.Judge(ctx, t, now)
	if err != nil {
		return false, err
	}
	if !force && !IsFinal(t, conns, v, now, src.Quiet, m.o.Expiry) {
		return false, nil
	}
	// Connections the sender aborted before naming the test (a refused
	// certificate) are tied to it by client address, the rule smtpd
	// applies at the sender's next RCPT (docs/smtp.md).
	tied := int64(0)
	seen := map[netip.Addr]bool{}
	for _, c := range conns {
		a := c.Client.Addr().Unmap()
		if seen[a] || !a.IsValid() {
			continue
		}
		seen[a] = true
		n, err := src.Store.TieConnections(ctx, t.ID, a, t.Created, now.Add(time.Second))
		if err != nil {
			return false, err
		}
		tied += n
	}
	if tied > 0 {
		if v, conns, err = src.Judge(ctx, t, now); err != nil {
			return false, err
		}
	}
	vj, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	r := store.TestResult{TestID: t.ID, Final: now, Verdict: vj, SenderDomain: domainOf(t.Sender)}
	switch {
	case t.Sender == "" || r.SenderDomain == "":
		r.MailState, r.MailReason = store.MailNone, "no envelope sender to send the result to"
	case m.o.Identity.Key == nil:
		r.MailState, r.MailReason = store.MailNone, "result mails are turned off on this service"
	default:
		auth, err := Authenticate(ctx, m.o.DNS, t.Sender, conns)
		if err != nil {
			// A temporary DNS failure (RFC 7208 §2.6.6 temperror): decide
			// at a later tick, but not forever: past twice the quiet
			// time the mail is withheld and the page says why.
			if now.Sub(lastActivity(t, conns)) < 2*src.Quiet {
				m.log.Debug("results: SPF temporarily failed; retrying", "test", t.ID, "err", err)
				return false, nil
			}
			auth.Reason = "SPF of the sender's domain could not be evaluated (temperror: " + err.Error() + ")"
		}
		if auth.OK {
			r.MailState, r.MailReason, r.Recipient, r.Next = store.MailPending, "sender authenticated: "+auth.Reason, t.Sender, now
		} else {
			r.MailState, r.MailReason = store.MailWithheld, "not sent, to prevent backscatter: "+auth.Reason
		}
	}
	t.State, t.Updated = store.TestFinal, now
	if err := src.Store.FinalizeTest(ctx, t, r); err != nil {
		if errors.Is(err, store.ErrExists) {
			return false, nil // another node or loop was first
		}
		return false, err
	}
	m.log.Info("results: test final", "test", t.ID, "policy", v.Policy, "mail", r.MailState, "reason", report.RedactText(r.MailReason))
	return true, nil
}

// SendDue makes one attempt for every due result mail and returns how
// many were delivered.
func (m *Mailer) SendDue(ctx context.Context) (int, error) {
	if m.o.Identity.Key == nil {
		return 0, nil
	}
	due, err := m.o.Source.Store.DueResultMails(ctx, m.o.Now(), 0)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for _, r := range due {
		ok, err := m.send(ctx, r)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			n++
		}
	}
	return n, errors.Join(errs...)
}

func (m *Mailer) send(ctx context.Context, r store.TestResult) (bool, error) {
	st := m.o.Source.Store
	now := m.o.Now()
	if len(r.Message) == 0 {
		// Composed once, at the first attempt (the inbound check has had
		// the most time by then); retries send the same signed message.
		in, err := m.o.Source.Load(ctx, r.TestID, now)
		if err != nil {
			return false, err
		}
		in.Mail = nil // the mail does not describe its own fate
		msg, id, err := Compose(m.o.Identity, report.Build(in), r.Recipient, now)
		if err != nil {
			return false, err
		}
		r.Message, r.MessageID = msg, id
		if err := st.UpdateResultMail(ctx, r, nil); err != nil {
			return false, err
		}
	}
	if m.o.RateLimit > 0 {
		sent, err := st.MailsSentSince(ctx, r.SenderDomain, now.Add(-m.o.RateWindow))
		if err != nil {
			return false, err
		}
		if sent >= m.o.RateLimit {
			r.Next = now.Add(m.o.RateWindow / time.Duration(m.o.RateLimit))
			r.MailReason = fmt.Sprintf("waiting: %d result mails went to %s in the last %s", sent, r.SenderDomain, m.o.RateWindow)
			return false, st.UpdateResultMail(ctx, r, nil)
		}
	}
	res := m.o.Send(ctx, m.o.Identity.From, r.Recipient, r.Message)
	detail := report.RedactText(res.Summary)
	r.Attempts++
	a := &store.MailAttempt{Time: now, Status: res.Status, Detail: detail}
	switch res.Status {
	case DeliveryDelivered:
		r.MailState, r.Sent, r.DeliveredTo, r.Recipient = store.MailSent, now, res.DeliveredTo, ""
		r.MailReason = "delivered to " + res.DeliveredTo
	case DeliveryBounced:
		r.MailState, r.Recipient = store.MailFailed, ""
		r.MailReason = "refused: " + report.RedactText(res.Reason)
	default:
		if r.Attempts >= m.o.MaxAttempts {
			r.MailState, r.Recipient = store.MailFailed, ""
			r.MailReason = fmt.Sprintf("given up after %d attempts: %s", r.Attempts, report.RedactText(res.Reason))
		} else {
			r.Next = now.Add(m.backoff(r.Attempts))
			r.MailReason = fmt.Sprintf("deferred (attempt %d, next %s): %s", r.Attempts, r.Next.UTC().Format(time.RFC3339), report.RedactText(res.Reason))
		}
	}
	if err := st.UpdateResultMail(ctx, r, a); err != nil {
		return false, err
	}
	m.log.Info("results: result mail attempt", "test", r.TestID, "domain", r.SenderDomain, "status", a.Status, "detail", detail)
	return res.Status == DeliveryDelivered, nil
}

// backoff is the delay after attempt n (1-based): RetryBase doubled per
// attempt, at most RetryMax.
func (m *Mailer) backoff(n int) time.Duration {
	d := m.o.RetryBase
	for i := 1; i < n && d < m.o.RetryMax; i++ {
		d *= 2
	}
	return min(d, m.o.RetryMax)
}
