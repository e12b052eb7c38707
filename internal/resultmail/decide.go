package resultmail

import (
	"github.com/mailsec/mailsec/internal/store"
)

// DecideInput is what Decide looks at.
type DecideInput struct {
	// Enabled: result mails are on (a signing key and a way out).
	Enabled     bool
	Test        store.Test
	Connections []store.SMTPConnection // the test's, as frozen with its verdict
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
// (Authenticate, from the evaluation made when the mail arrived), so that
// nobody can have mailsec mail a forged address (backscatter, DESIGN.md
// §4).
//
// The sender is authenticated also when mails are off, for the decision's
// SenderAuthenticated.
func Decide(in DecideInput) Decision {
	t := in.Test
	if t.Sender == "" || SenderDomain(t.Sender) == "" {
		return Decision{State: store.MailNone, Reason: "no envelope sender to send the result to"}
	}
	auth := Authenticate(t.Sender, in.Connections)
	switch {
	case !in.Enabled:
		return Decision{State: store.MailNone, Reason: "result mails are turned off on this service", SenderAuthenticated: auth.OK}
	case !auth.OK:
		return Decision{State: store.MailWithheld, Reason: "not sent, to prevent backscatter: " + auth.Reason}
	}
	return Decision{State: store.MailPending, Reason: "sender authenticated: " + auth.Reason, Recipient: t.Sender, SenderAuthenticated: true}
}
