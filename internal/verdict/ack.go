package verdict

import (
	"fmt"
	"time"

	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
)

// AckInput is what the acknowledgement decision looks at.
type AckInput struct {
	// Zone is the zone of the recipient of the mail in flight.
	Zone persona.Zone
	// Now is the decision time.
	Now time.Time
	// InDowngradeWindow tells whether the connection in flight is inside
	// its client's downgrade window (STARTTLS not offered).
	InDowngradeWindow bool
	// History holds the test's connections, the one in flight included.
	History []store.SMTPConnection
	// AckAfter is timing.ack_after: personas 4–6 hit for this long settle
	// the test even if persona 3 never was.
	AckAfter time.Duration
	// AlreadyAcked: an earlier mail of the test was answered 250.
	AlreadyAcked bool
	// Fetches are the MTA-STS policy fetches tied to the sender (see
	// ClientMatches): evidence that settles the MTA-STS candidates early.
	Fetches []store.PolicyFetch
	// DNSLookups and BTLSANames are the look-ups of the test slot's names
	// (Observations): B refused on its TLSA look-up settles dane-only.
	DNSLookups []store.DNSQuery
	BTLSANames []string
}

// Ack is the decision for the mail in flight.
type Ack struct {
	Accept bool   // 250; otherwise 451 (try again later)
	Reason string // why, for the reply text and the log
	// Detail is the judge's account at decision time (candidates left,
	// contradictions), for the log only: it is too long for a reply.
	Detail string
}

// minPersona2Connections is how many STARTTLS connections without SNI (all
// on persona 2) settle that the sender never sends SNI.
const minPersona2Connections = 2

// Acknowledge decides whether the mail in flight is answered 250 or 451.
//
// A 451 buys one more delivery attempt, so it is given only while another
// attempt can still tell the remaining candidate policies apart: mail for
// A is accepted as soon as Judge leaves one candidate, or only candidates
// that behave alike toward every persona (dane and dane+mta-sts: only a
// policy fetch tells them apart), or none (nothing more to learn).
//
// Besides, DESIGN.md §3's rules settle it: mail for A gets 451 until one of
//   - only persona 2 is ever used (the sender sends no SNI: nothing more
//     can be learnt from other personas);
//   - all of personas 3–6 were hit;
//   - personas 4–6 were hit for long enough (a pure MTA-STS sender never
//     contacts persona 3, which is not in the policy);
//
// plus: a sender that was offered STARTTLS and still delivered in plain
// text (persona 1 after the downgrade window) has shown its policy.
// Mail for B gets 451 inside the downgrade window (a plain-text attempt
// there is the evidence) and 250 after it. Once a test is acknowledged,
// every later mail of it is too, so senders stop retrying.
func Acknowledge(in AckInput) Ack {
	if in.AlreadyAcked {
		return Ack{Accept: true, Reason: "test already acknowledged"}
	}
	if in.Zone == persona.ZoneB {
		if in.InDowngradeWindow {
			return Ack{Accept: false, Reason: "downgrade test in progress: try again later"}
		}
		return Ack{Accept: true, Reason: "zone B after the downgrade window"}
	}
	if in.InDowngradeWindow {
		return Ack{Accept: false, Reason: "downgrade test in progress: try again later"}
	}
	v := Judge(Observations{Connections: in.History, PolicyFetches: in.Fetches, Now: in.Now,
		DNSLookups: in.DNSLookups, BTLSANames: in.BTLSANames})
	if v.SettledOnLookup {
		// dane-only, shown toward A and B refused on its TLSA look-up:
		// nothing another attempt could change.
		return Ack{Accept: true, Reason: "policy settled: dane-only (B refused after its TLSA look-up)", Detail: v.Why}
	}
	cands := v.Candidates
	if len(in.Fetches) == 0 && tlsToZoneABefore(in.History, in.Now.Add(-attemptGap)) {
		// RFC 8461 §5: an MTA-STS sender applies the policy it fetched;
		// one that fetches in the background applies it from its next
		// attempt on. A sender that used TLS toward A in an earlier
		// attempt and never fetched the policy is no MTA-STS sender (the
		// final verdict drops those candidates the same way once the
		// sender is done).
		if rest, ok := dropMTASTS(cands); ok {
			cands = rest
		}
	}
	switch {
	case len(cands) == 1 && unproven(cands[0], seenOf(in.History)) != "":
		// One policy left, but no connection has shown the checks it
		// claims (a sender that remembers an earlier test refuses plain
		// text and delivers to persona 6 at once): another attempt can
		// show them, and the final verdict will not name it without
		// (Judge). The persona rules below still end the collecting.
	case len(cands) == 1:
		return Ack{Accept: true, Reason: "policy settled: " + string(cands[0]), Detail: v.Why}
	case len(cands) == 0:
		return Ack{Accept: true, Reason: "no policy of the table explains the connections: nothing more to learn", Detail: v.Why}
	case indistinguishable(cands, observableColumns(in.History)):
		return Ack{Accept: true, Reason: "the remaining policies (" + joinPolicies(cands) + ") behave alike toward every persona still to be seen", Detail: v.Why}
	}
	hit := map[int]bool{}
	var firstOf4to6 time.Time
	persona2TLS, sniPersonas := 0, 0
	plainAfterOffer := false
	for _, c := range in.History {
		if c.Persona == 1 {
			// Plain text. It says something only if STARTTLS was
			// offered and the sender went on to MAIL FROM regardless.
			if c.STARTTLSOffered && c.MailFrom != "" {
				plainAfterOffer = true
			}
			continue
		}
		if c.State.Rank() < store.StateSniSeen.Rank() {
			continue
		}
		hit[c.Persona] = true
		switch {
		case c.Persona == 2:
			persona2TLS++
		case c.Persona >= 3 && c.Persona <= 6:
			sniPersonas++
			if c.Persona >= 4 && (firstOf4to6.IsZero() || c.Started.Before(firstOf4to6)) {
				firstOf4to6 = c.Started
			}
		}
	}
	switch {
	case hit[3] && hit[4] && hit[5] && hit[6]:
		return Ack{Accept: true, Reason: "personas 3-6 were all contacted"}
	case hit[4] && hit[5] && hit[6] && in.Now.Sub(firstOf4to6) >= in.AckAfter:
		return Ack{Accept: true, Reason: fmt.Sprintf("personas 4-6 contacted for %s", in.AckAfter)}
	case sniPersonas == 0 && persona2TLS >= minPersona2Connections:
		return Ack{Accept: true, Reason: "only persona 2 is used: the sender sends no SNI"}
	case sniPersonas == 0 && persona2TLS == 0 && plainAfterOffer:
		return Ack{Accept: true, Reason: "plain text although STARTTLS was offered"}
	}
	return Ack{Accept: false, Reason: "collecting evidence: try again later"}
}

// indistinguishable tells whether no column the sender can still reach
// tells the candidates apart: their rows of the expectation matrix agree
// there wherever both expect something definite.
func indistinguishable(cands []Policy, reachable [numColumns]bool) bool {
	for _, p := range cands[1:] {
		a, b := matrix[cands[0]], matrix[p]
		for col := range numColumns {
			if reachable[col] && distinguishes(a[col], b[col]) {
				return false
			}
		}
	}
	return true
}

// observableColumns are the columns later attempts of the sender can
// still land in. The acknowledgement is decided after the downgrade window
// (inside it mail gets 451 anyway), so the plain-text columns of the window
// are past; and a sender that sent SNI reaches persona 2 (TLS without SNI)
// no more.
func observableColumns(history []store.SMTPConnection) [numColumns]bool {
	var r [numColumns]bool
	for col := range numColumns {
		r[col] = true
	}
	r[colPlainWindow], r[col7Plain] = false, false
	for _, c := range history {
		if c.SNI != "" {
			r[col2] = false
			break
		}
	}
	return r
}

// tlsToZoneABefore tells whether the sender started a TLS session with
// one of zone A's personas (2–6) before t.
func tlsToZoneABefore(history []store.SMTPConnection, t time.Time) bool {
	for _, c := range history {
		tls := c.TLSVersion != "" || c.CertPersona != 0
		if tls && c.Persona >= 2 && c.Persona <= 6 && c.Started.Before(t) {
			return true
		}
	}
	return false
}

// distinguishes tells whether an observation in a column can tell two
// expectations apart. "Never delivers" cannot be told from "refuses" or
// "never gets there" by what is seen (absence is no observation).
func distinguishes(a, b expect) bool {
	if a == b || a == eAny || b == eAny {
		return false
	}
	compatible := func(x, y expect) bool { return x == eNoMail && (y == eRefuse || y == eNever) }
	return !compatible(a, b) && !compatible(b, a)
}
