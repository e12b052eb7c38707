package verdict

import (
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// FinalInput is what Final looks at.
type FinalInput struct {
	Test        store.Test
	Connections []store.SMTPConnection // the test's, tied ones included
	Verdict     Verdict                // the live verdict (Judge) at Now
	Now         time.Time
	// Quiet is timing.ack_after: a sender silent this long has finished
	// its current attempt.
	Quiet time.Duration
	// Expiry is timing.test_expiry: with no connection for this long, a
	// test is final whatever its verdict.
	Expiry time.Duration
}

// Final tells whether a test's verdict is final at in.Now, so that it can
// be frozen and the result mail decided: nothing came for Expiry; or the
// sender has been quiet for Quiet (no connection open) and the verdict is
// complete, and either the mail for A was accepted (the sender has nothing
// left to send) or one policy is left; or, without waiting for Quiet, the
// verdict was settled on the sender's look-up of B's TLSA
// (Verdict.SettledOnLookup: it refused B in that attempt) and its mail for
// A was accepted. A test that was answered 451 and is not settled waits:
// the sender will retry.
func Final(in FinalInput) bool {
	open := false
	for _, c := range in.Connections {
		open = open || c.Ended.IsZero()
	}
	idle := in.Now.Sub(LastActivity(in.Test, in.Connections))
	switch {
	case idle >= in.Expiry:
		return true
	case len(in.Connections) == 0 || open || !in.Verdict.Complete:
		return false
	}
	acked := in.Test.State == store.TestAcked || !in.Test.Acked.IsZero()
	if idle < in.Quiet {
		// A and B both settled: A's mail accepted, B refused on its look-up.
		return in.Verdict.SettledOnLookup && acked
	}
	return acked || len(in.Verdict.Candidates) == 1 || in.Verdict.Policy == PolicyInconsistent
}

// LastActivity is the latest start or end of one of the connections, or
// the test's creation.
func LastActivity(t store.Test, conns []store.SMTPConnection) time.Time {
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
