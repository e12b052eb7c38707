package resultmail

import (
	"context"
	"errors"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// ErrUndecided is returned by Decide when SPF could not be evaluated
// (RFC 7208 §2.6.6 temperror) and the test is recent enough to try again
// later: the caller leaves the test unfinished and decides at a later
// round.
var ErrUndecided = errors.New("resultmail: SPF temporarily failed; decide later")

// DecideInput is what Decide looks at.
type DecideInput struct {
	// Enabled: result mails are on (a signing key and a way out).
	Enabled bool
	// DNS answers the SPF look-ups; nil: only DKIM can authenticate the
	// sender (allowed only when mails are off).
	DNS         DNS
	Test        store.Test
	Connections []store.SMTPConnection // the test's, as frozen with its verdict
	Now         time.Time
	// RetryFor is how long after the test's last activity a temporary
	// SPF failure is retried; past it the mail is withheld and the
	// reason says why (twice timing.ack_after).
	RetryFor time.Duration
}

// Decision is the fate of a final test's result mail, as stored with the
// frozen verdict.
type Decision struct {
	State     string // store.MailPending, store.MailWithheld or store.MailNone
	Reason    string // why, one line, no full address
	Recipient string // the envelope sender when State is MailPending
	// SenderAuthenticated: the test mail authenticated its envelope sender
	// (Authenticate), whether or not a mail goes out; only such tests feed
	// the public provider table.
	SenderAuthenticated bool
}

// Decide decides whether the result mail of a final test goes out: only to
// the test's envelope sender, and only when the test mail authenticated it
// (Authenticate), so that nobody can have mailsec mail a forged address
// (backscatter, DESIGN.md §4).
//
// The sender is authenticated also when mails are off, for the decision's
// SenderAuthenticated.
func Decide(ctx context.Context, in DecideInput) (Decision, error) {
	t := in.Test
	if t.Sender == "" || SenderDomain(t.Sender) == "" {
		return Decision{State: store.MailNone, Reason: "no envelope sender to send the result to"}, nil
	}
	if in.Enabled && in.DNS == nil {
		return Decision{}, errors.New("resultmail: result mails need DNS for SPF")
	}
	auth, err := Authenticate(ctx, in.DNS, t.Sender, in.Connections)
	if err != nil {
		if in.Now.Sub(verdict.LastActivity(t, in.Connections)) < in.RetryFor {
			return Decision{}, errors.Join(ErrUndecided, err)
		}
		auth.Reason = "SPF of the sender's domain could not be evaluated (temperror: " + err.Error() + ")"
	}
	switch {
	case !in.Enabled:
		return Decision{State: store.MailNone, Reason: "result mails are turned off on this service", SenderAuthenticated: auth.OK}, nil
	case !auth.OK:
		return Decision{State: store.MailWithheld, Reason: "not sent, to prevent backscatter: " + auth.Reason}, nil
	}
	return Decision{State: store.MailPending, Reason: "sender authenticated: " + auth.Reason, Recipient: t.Sender, SenderAuthenticated: true}, nil
}
