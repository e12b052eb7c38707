package verdict

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// Policy is a sender's TLS policy toward zone A, in Postfix's terms
// (DESIGN.md §1).
type Policy string

// The candidate policies, and the two answers that are not a policy.
const (
	PolicyNone         Policy = "none"
	PolicyMay          Policy = "may"
	PolicyEncrypt      Policy = "encrypt"
	PolicyVerify       Policy = "verify"
	PolicyDANE         Policy = "dane"
	PolicyDANEOnly     Policy = "dane-only"
	PolicyMTASTS       Policy = "mta-sts"
	PolicyDANEMTASTS   Policy = "dane+mta-sts"
	PolicyInconsistent Policy = "inconsistent" // no policy of the table explains what was seen
	PolicyUnknown      Policy = "unknown"      // not enough seen yet
)

// Candidates are the policies the verdict tells apart, in table order.
var Candidates = []Policy{PolicyNone, PolicyMay, PolicyEncrypt, PolicyVerify, PolicyDANE, PolicyDANEOnly, PolicyMTASTS, PolicyDANEMTASTS}

// column is one observable situation: a persona, with persona 1 split by
// whether STARTTLS was offered and persona 7 by plain text or TLS.
type column int

const (
	colPlainWindow column = iota // persona 1, STARTTLS not offered (downgrade window)
	colPlainOffer                // persona 1 although STARTTLS was offered
	col2
	col3
	col4
	col5
	col6
	col7Plain // persona 7 in plain text (B, inside the window)
	col7TLS
	numColumns
)

var columnNames = [numColumns]string{"persona 1 (STARTTLS withheld)", "persona 1 (STARTTLS offered, not used)",
	"persona 2", "persona 3", "persona 4", "persona 5", "persona 6", "persona 7 (plain)", "persona 7 (TLS)"}

// expect is what a correct sender of a policy does in a column: the
// exported Expectation (table.go), under the short names the table uses.
type expect = Expectation

const (
	eDeliver = ExpectDeliver // completes the mail transaction
	eRefuse  = ExpectRefuse  // connects, then refuses (no MAIL FROM)
	eNever   = ExpectNever   // never gets there
	eNoMail  = ExpectNoMail  // never delivers: refuses, or never gets there
	eAny     = ExpectAny     // either; not telling
)

// matrix is DESIGN.md §2's table of expected behaviour, one row per
// candidate, columns as above. Notes:
//   - "plain after offer" is what only a none sender does: all others use
//     STARTTLS once it is offered.
//   - persona 2 is reached only without SNI; DANE and MTA-STS senders always
//     send SNI (RFC 7672 §8.1, RFC 8461 §4.2), so for them it is N.
//   - persona 3 is not in the MTA-STS policy: a pure MTA-STS sender never
//     delivers to it. It may skip it (RFC 8461 §4.1, as internal/sender
//     does) or connect and refuse its certificate, whose name the policy
//     does not list (Postfix with postfix-mta-sts-resolver, seen in the
//     lab). With DANE as well, DANE decides for mx3 (usable TLSA) and
//     refuses it (RFC 8461 §2).
//   - persona 5: MTA-STS accepts its CA certificate, DANE refuses its
//     wrong TLSA; combined, DANE wins (RFC 8461 §2).
//   - zone B has no TLSA and no policy: dane falls back to opportunistic
//     TLS there (RFC 7672 §2.2), dane-only refuses, mta-sts uses its default.
var matrix = map[Policy][numColumns]expect{
	//                  1w       1o       2        3        4        5        6        7p       7t
	PolicyNone:       {eDeliver, eDeliver, eNever, eNever, eNever, eNever, eNever, eDeliver, eNever},
	PolicyMay:        {eDeliver, eNever, eDeliver, eDeliver, eDeliver, eDeliver, eDeliver, eDeliver, eDeliver},
	PolicyEncrypt:    {eRefuse, eNever, eDeliver, eDeliver, eDeliver, eDeliver, eDeliver, eRefuse, eDeliver},
	PolicyVerify:     {eRefuse, eNever, eRefuse, eRefuse, eRefuse, eDeliver, eDeliver, eRefuse, eDeliver},
	PolicyDANE:       {eRefuse, eNever, eNever, eRefuse, eDeliver, eRefuse, eDeliver, eDeliver, eDeliver},
	PolicyDANEOnly:   {eRefuse, eNever, eNever, eRefuse, eDeliver, eRefuse, eDeliver, eRefuse, eRefuse},
	PolicyMTASTS:     {eRefuse, eNever, eNever, eNoMail, eRefuse, eDeliver, eDeliver, eAny, eDeliver},
	PolicyDANEMTASTS: {eRefuse, eNever, eNever, eRefuse, eDeliver, eRefuse, eDeliver, eDeliver, eDeliver},
}

// usesMTASTS: the candidates that fetch zone A's MTA-STS policy.
func usesMTASTS(p Policy) bool { return p == PolicyMTASTS || p == PolicyDANEMTASTS }

// Confidence of a fact.
type Confidence string

// Confidences.
const (
	Proven  Confidence = "proven"  // directly observed
	Likely  Confidence = "likely"  // inferred from absence or from timing
	Unknown Confidence = "unknown" // not settled yet
)

// LookupGrace is how long after looking up the TLSA record of B's host a
// sender that means to deliver there has connected: it connects in the
// same delivery attempt, right after the look-up (RFC 7672 §2.2: the TLSA
// look-up decides how to connect, not whether), and B's host answers at
// once. A sender not connected by then refused B.
const LookupGrace = 5 * time.Second

// Fact is one statement about the sender, with its evidence.
type Fact struct {
	Name       string     `json:"name"`
	Value      bool       `json:"value"`
	Confidence Confidence `json:"confidence"`
	Evidence   []int64    `json:"evidence,omitempty"` // connection IDs
	Why        string     `json:"why"`
	Settle     string     `json:"settle,omitempty"` // what would settle an unknown fact
	// Caveat limits a fact that holds: what it does not protect against
	// (a sender that validates certificates and then falls back to plain
	// text validates them, to no avail).
	Caveat string `json:"caveat,omitempty"`
}

// dkimFact is FactSignsDKIM: the test mails carry a DKIM signature that
// verifies (RFC 6376 §6). A signature that does not verify is no
// signature: the fact is false and says why ("fail (d=example.org,
// s=sel1): body hash mismatch"), never "signed".
func dkimFact(conns []store.SMTPConnection, mails int) Fact {
	var passed, failed []int64
	var passText, failText string
	for _, c := range conns {
		for _, s := range c.Signatures {
			switch {
			case s.Type != "dkim":
			case s.Result == "pass":
				passed = append(passed, c.ID)
				if passText == "" {
					passText = "DKIM: " + s.Outcome()
				}
			default:
				failed = append(failed, c.ID)
				if failText == "" {
					failText = "DKIM: " + s.Outcome()
				}
			}
		}
	}
	switch {
	case len(passed) > 0:
		return Fact{Value: true, Confidence: Proven, Evidence: uniq(passed), Why: passText}
	case len(failed) > 0:
		return Fact{Value: false, Confidence: Proven, Evidence: uniq(failed), Why: failText}
	case mails > 0:
		return Fact{Value: false, Confidence: Proven, Why: "no such signature on the test mails received"}
	}
	return Fact{Confidence: Unknown, Why: "no mail received yet", Settle: "a completed mail"}
}

// Fact names.
const (
	FactEnforcesEncryption = "enforces encryption"
	FactValidatesPKIX      = "validates PKIX certificates"
	FactValidatesDANE      = "validates DANE"
	FactAppliesMTASTS      = "applies MTA-STS"
	FactRespectsRFC8461S2  = "MTA-STS does not override failed DANE (RFC 8461 §2)"
	FactSendsSNI           = "sends SNI"
	FactRetries            = "retries after a refused STARTTLS"
	FactUsesIPv6           = "delivers over IPv6"
	FactValidatesDNSSEC    = "validates DNSSEC"
	FactSignsDKIM          = "signs with DKIM"
	FactSignsARC           = "signs with ARC"
)

// Observations are everything recorded for one test.
type Observations struct {
	Connections   []store.SMTPConnection
	PolicyFetches []store.PolicyFetch // fetches of zone A's MTA-STS policy tied to the sender
	// DNSLookups are the queries for the names of the test's slot
	// (docs/dns.md "Test slots"), oldest first: its sender's resolver
	// looking up the MX, addresses, TLSA and MTA-STS names. Nil for a
	// test without a slot (the shared names say nothing about the test).
	DNSLookups []store.DNSQuery
	// BTLSANames are the TLSA names of B's MX hosts in the test's slot
	// ("_25._tcp.mx7.s001.<zone B>.", RFC 7672 §2.2.3) and the "_tcp"
	// names above them ("_tcp.mx7.s001.<zone B>."), which a resolver
	// minimising query names (RFC 9156; Unbound does) asks instead: B has
	// no TLSA, so that name does not exist and its NXDOMAIN denies the
	// TLSA name too (RFC 8020). A look-up of one with the DO bit is the
	// sender's resolver checking DANE for B (refusedBOnLookup).
	BTLSANames []string
	Now        time.Time
	// Quiet: with no new connection for this long, what has not happened
	// is taken as not going to happen (timing.ack_after is a good value).
	Quiet time.Duration
	// SenderDone: the sender is known to have finished (its queue is
	// empty: the demo's reference senders, the lab's Postfix logs). What
	// has not happened will not, whatever the time.
	SenderDone bool
	// BrokenHostAddrs are the addresses of zone A's MX host whose address
	// records carry a deliberately broken signature (dnssec.broken_hosts,
	// docs/dns.md "Broken host"): ranked before every other MX host, so a
	// sender whose resolver does not validate DNSSEC connects there
	// first. Nil when the host is not in the MX set: the fact
	// FactValidatesDNSSEC is then not reported.
	BrokenHostAddrs []netip.Addr
	// BrokenHostNames are that host's names in the test's slot, fully
	// qualified and lower-case as the query log stores them
	// ("broken.s001.<zone A>."): a look-up of one is the sender's resolver
	// resolving the broken host.
	BrokenHostNames []string
	// TLSRPT are the TLS-RPT reports tied to the test (docs/tlsrpt.md),
	// oldest first, with their policies for the test's domains: they
	// settle facts the connections left open (tlsrptFacts).
	TLSRPT []TLSRPTReport
	// IPv6HostAddrs are the addresses of zone A's MX host reachable over
	// IPv6 only (zones.host_addresses.mx-v6, one per test slot;
	// docs/dns.md "IPv6-only host"), ranked after the broken host and
	// before the rotation: a connection to one says the sender delivers
	// over IPv6, and nothing about its TLS policy. Nil when the host is
	// not deployed.
	IPv6HostAddrs []netip.Addr
	// IPv6HostNames are that host's names in the test's slot, fully
	// qualified and lower-case ("mx-v6.s001.<zone A>."): a look-up of one
	// is the sender's resolver resolving it.
	IPv6HostNames []string
	// SentToB: the sender is known to have had a mail for the B address.
	// If it never delivered there, it refused B (dane-only: B has no
	// TLSA). The service knows it when a test mail names the B address in
	// its To or Cc header (store.Test.AddressedB); a user who wrote to A
	// only leaves it unknown.
	SentToB bool
}

// Verdict is the answer for one test.
type Verdict struct {
	Policy     Policy   `json:"policy"`
	Why        string   `json:"why"`
	Candidates []Policy `json:"candidates"` // still consistent with what was seen
	ZoneB      string   `json:"zone_b"`     // behaviour toward B
	Facts      []Fact   `json:"facts"`
	// Behaviours names what the sender did that the policy table has no
	// row for (behaviour.go); never nil.
	Behaviours []Behaviour `json:"behaviours"`
	Complete   bool        `json:"complete"`
	// SettledOnLookup: dane-only, settled because the sender's resolver
	// looked up the TLSA record of B's host (B is signed and has none)
	// and the sender then did not connect to B, not by waiting for it to
	// go quiet: Final need not wait either once A's mail was accepted.
	SettledOnLookup bool `json:"settled_on_lookup,omitempty"`
	Attempts        int  `json:"attempts"` // delivery attempts seen (see attemptIndex)
	// Seen lists, per column, what was observed: "D", "R", "DR" or "".
	Seen map[string]string `json:"seen"`
}

// observed is what was seen in one column.
type observed struct {
	delivered, refused []int64 // connection IDs
}

// classify tells the column and outcome of one connection. ok is false for
// connections that say nothing (cut before EHLO, say).
func classify(c store.SMTPConnection) (col column, delivered bool, ok bool) {
	delivered = c.State.Rank() >= store.StateMail.Rank()
	if !delivered && c.Ended.IsZero() {
		// Still open: not a refusal (yet). A sender delivering to A and B
		// at once has its B session in the middle of the handshake while
		// A's mail is being acknowledged.
		return 0, false, false
	}
	if !delivered && c.Error == store.InterruptedConnectionError {
		// The service ended it, not the sender: the node holding the
		// session died (kill -9, a crash) and the record was closed at that
		// node's restart or by the leader's sweep of dead nodes
		// (docs/cluster.md "What a sender sees"). The sender refused
		// nothing there; read as a refusal, a may sender whose TLS session
		// was cut looked inconsistent in the cluster lab.
		return 0, false, false
	}
	tls := c.TLSVersion != "" || c.State == store.StateSniSeen || c.CertPersona != 0
	switch {
	case !tls && c.Persona == 7:
		// A refused plain session names no recipient: on a shared address
		// it is persona 1. Persona 7 without a recipient comes from the
		// address (one address per MX host): a refusal of B in plain text.
		return col7Plain, delivered, delivered || c.EHLO != "" && !c.STARTTLSOffered
	case !tls:
		if c.STARTTLSOffered {
			// Offered and not taken: only a sender that went on in plain
			// text says something (policy none).
			return colPlainOffer, true, delivered
		}
		if c.EHLO == "" && !delivered {
			return 0, false, false // gone before EHLO: a scanner or a network fault
		}
		return colPlainWindow, delivered, true
	}
	switch c.Persona {
	case 2:
		return col2, delivered, true
	case 3:
		return col3, delivered, true
	case 4:
		return col4, delivered, true
	case 5:
		return col5, delivered, true
	case 6:
		return col6, delivered, true
	case 7:
		return col7TLS, delivered, true
	}
	return 0, false, false
}

// Judge computes the verdict of one test from its observations. It is a
// pure function: the same observations give the same verdict.
func Judge(obs Observations) Verdict {
	conns := slices.Clone(obs.Connections)
	sort.SliceStable(conns, func(i, j int) bool { return conns[i].Started.Before(conns[j].Started) })
	// A connection to the broken host says nothing about the TLS policy:
	// it is answered 421 before the greeting (docs/smtp.md "Broken
	// host"), and is the DNSSEC fact's evidence only.
	conns, broken := splitLocal(conns, obs.BrokenHostAddrs)
	// Nor does one to the IPv6-only host, for the same reason (docs/smtp.md
	// "IPv6-only host"): it is the IPv6 fact's evidence only.
	conns, v6host := splitLocal(conns, obs.IPv6HostAddrs)
	seen := seenOf(conns)
	fetched := len(obs.PolicyFetches) > 0
	attempt := attemptIndex(conns)
	fallbacks := plainFallbacks(conns, attempt)

	v := Verdict{Seen: map[string]string{}, Attempts: slices.Max(append([]int{-1}, attempt...)) + 1}
	v.Behaviours = behaviours(seen, fallbacks, fetched)
	for col := range numColumns {
		s := ""
		if len(seen[col].delivered) > 0 {
			s += "D"
		}
		if len(seen[col].refused) > 0 {
			s += "R"
		}
		if s != "" {
			v.Seen[columnNames[col]] = s
		}
	}

	// Eliminate the candidates that contradict an observation. A
	// candidate stays while its row, or a variant of it (behaviour.go),
	// fits what was seen.
	var why []string
	for _, p := range Candidates {
		if reason := contradiction(p, seen, fetched); reason == "" || variantFits(p, seen, fetched) {
			v.Candidates = append(v.Candidates, p)
		} else {
			why = append(why, fmt.Sprintf("not %s: %s", p, reason))
		}
	}

	quiet := isQuiet(obs, conns)
	refusedB := refusedBOnLookup(obs, conns)
	switch {
	case len(conns) == 0:
		v.Policy, v.Why = PolicyUnknown, "no connection seen yet"
	case len(v.Candidates) == 0 && slices.ContainsFunc(v.Behaviours, func(b Behaviour) bool { return plainClass(b.Name) }):
		// It sends in plain text where an active attacker can make it:
		// after a failed handshake, or when STARTTLS is withheld while it
		// checks certificates otherwise (and perhaps fetched zone A's
		// MTA-STS policy, or did more no row has). Its mail is readable
		// whatever else it does: the protection of may, the weakest claim,
		// never inconsistent and never a stronger policy.
		v.Policy, v.Candidates, v.Complete = PolicyMay, []Policy{PolicyMay}, true
		v.Why = "may: it sends in plain text where an active attacker can make it, which no stronger policy does (the table's may row has no certificate checks: " + outcomes(seen, fetched) + ")"
	case len(v.Candidates) == 0:
		v.Policy = PolicyInconsistent
		v.Why = "no policy of the table explains the connections: " + strings.Join(why, "; ")
		v.Complete = quiet
	case len(v.Candidates) == 1:
		v.Policy = v.Candidates[0]
		v.Why = explain(v.Policy, seen, fetched)
		v.Complete = true
	default:
		v.Policy, v.Complete, v.Why = decideAmong(v.Candidates, seen, fetched, quiet, obs.SentToB, refusedB)
	}
	if missing := unproven(v.Policy, seen); missing != "" {
		// Never a false "secure": a policy that claims certificate or
		// DANE checks stands only on a connection that tested them, not on
		// the elimination of the others alone (a sender stopped in the
		// downgrade window, or that remembers an earlier test, leaves
		// every weaker row contradicted without showing its own checks).
		v.Why = fmt.Sprintf("%s is the only policy left, but no connection has shown %s yet (%s)", v.Policy, missing, outcomes(seen, fetched))
		if quiet {
			v.Why = fmt.Sprintf("the sender stopped before showing %s, which %s claims (%s)", missing, v.Policy, outcomes(seen, fetched))
		}
		v.Policy, v.Complete = PolicyUnknown, quiet
	}
	v.SettledOnLookup = refusedB && v.Policy == PolicyDANEOnly && v.Complete
	if len(v.Behaviours) > 0 && v.Policy != PolicyUnknown {
		// The behaviour is the finding; the table's account follows.
		texts := make([]string, len(v.Behaviours))
		for i, b := range v.Behaviours {
			texts[i] = b.Text
		}
		v.Why = "it " + strings.Join(texts, "; it ") + "; " + v.Why
	}
	v.ZoneB = zoneB(seen)
	v.Facts = facts(v, obs, conns, v6host, seen, fetched, fallbacks)
	dnssecFacts(&v, obs, conns, broken)
	tlsrptFacts(&v, obs)
	reconcile(&v)
	return v
}

// contradiction returns why policy p cannot explain what was seen, or "".
func contradiction(p Policy, seen [numColumns]observed, fetched bool) string {
	if reason := rowContradiction(matrix[p], seen); reason != "" {
		return reason
	}
	if fetched && !usesMTASTS(p) {
		// A fetch of zone A's policy means the sender's set-up does
		// MTA-STS, whatever its default level.
		return "it fetched the MTA-STS policy"
	}
	return ""
}

// rowContradiction returns the first observation a row of expectations
// does not allow, or "".
func rowContradiction(row [numColumns]expect, seen [numColumns]observed) string {
	for col := range numColumns {
		e := row[col]
		d, r := len(seen[col].delivered) > 0, len(seen[col].refused) > 0
		switch {
		case !e.Contradicts(d, r):
		case e == eNever:
			return fmt.Sprintf("it contacted %s", columnNames[col])
		case e == eDeliver:
			return fmt.Sprintf("it refused %s", columnNames[col])
		default: // refuse or no-mail, and it delivered
			return fmt.Sprintf("it delivered to %s", columnNames[col])
		}
	}
	return ""
}

// seenOf sorts the connections into the columns they say something about.
func seenOf(conns []store.SMTPConnection) [numColumns]observed {
	var seen [numColumns]observed
	for _, c := range conns {
		col, delivered, ok := classify(c)
		if !ok {
			continue
		}
		if delivered {
			seen[col].delivered = append(seen[col].delivered, c.ID)
		} else {
			seen[col].refused = append(seen[col].refused, c.ID)
		}
	}
	return seen
}

// unproven says what a policy claims that no connection has shown, or "":
// certificate checks (verify, mta-sts) need a refused self-signed
// certificate (personas 2-4); DANE (dane, dane-only, dane+mta-sts) a
// delivery where only the TLSA record vouches for the certificate (persona
// 4) or a refusal where only it speaks against it (persona 5); encrypt a
// refusal of plain text. The weaker policies claim nothing to show.
func unproven(p Policy, seen [numColumns]observed) string {
	refusedSelfSigned := len(seen[col2].refused)+len(seen[col3].refused)+len(seen[col4].refused) > 0
	daneShown := len(seen[col4].delivered)+len(seen[col5].refused) > 0
	switch p {
	case PolicyEncrypt:
		if len(seen[colPlainWindow].refused)+len(seen[col7Plain].refused) == 0 {
			return "a refusal of plain text"
		}
	case PolicyVerify, PolicyMTASTS:
		if !refusedSelfSigned {
			return "a refused self-signed certificate"
		}
	case PolicyDANEOnly:
		// Refusing B's CA-signed host for want of a TLSA record shows
		// DANE-only as well.
		if !daneShown && len(seen[col7TLS].refused) == 0 {
			return "a DANE check (persona 4 accepted for its TLSA record, persona 5 or B's host refused for it)"
		}
	case PolicyDANE, PolicyDANEMTASTS:
		if !daneShown {
			return "a DANE check (persona 4 accepted for its TLSA record, or persona 5 refused for it)"
		}
	}
	return ""
}

// dropMTASTS returns the candidates that do not use MTA-STS, for a sender
// that has shown no policy fetch (RFC 8461 §5: an MTA-STS sender applies
// the policy it fetched); ok is false when none is left or none would go.
// The missing fetch only decides between the candidates: whether the one
// left has shown the checks it claims is unproven's question, asked of every
// verdict (a per-domain verifier seen only at persona 6 keeps "dane" as the
// one candidate, and stays unknown).
func dropMTASTS(cands []Policy) ([]Policy, bool) {
	kept := slices.DeleteFunc(slices.Clone(cands), usesMTASTS)
	if len(kept) == 0 || len(kept) == len(cands) {
		return cands, false
	}
	return kept, true
}

// refusedBOnLookup tells whether the sender refused B on its TLSA look-up:
// its resolver asked, with the DO bit (it validates), for the TLSA record
// of one of B's MX hosts in the test's slot, or for the "_tcp" name above
// it on its way there (Observations.BTLSANames) — which only the test's
// own sender, with a mail for B, does — at least LookupGrace before now, and
// since that look-up no connection to B delivered or is still open. B is
// signed and has no TLSA, so a DANE sender that goes on connects then
// (opportunistic TLS, RFC 7672 §2.2) and a dane-only one does not.
func refusedBOnLookup(obs Observations, conns []store.SMTPConnection) bool {
	var first time.Time
	for _, q := range obs.DNSLookups {
		daneLookup := q.Type == tlsaType || strings.HasPrefix(q.Name, "_tcp.") // the minimised query of the TLSA name
		if daneLookup && q.DO && slices.Contains(obs.BTLSANames, q.Name) && (first.IsZero() || q.Time.Before(first)) {
			first = q.Time
		}
	}
	if first.IsZero() || obs.Now.Sub(first) < LookupGrace {
		return false
	}
	for _, c := range conns {
		if c.Persona != 7 || c.Started.Before(first) {
			continue
		}
		if c.Ended.IsZero() || c.State.Rank() >= store.StateMail.Rank() {
			return false // it went on to B
		}
	}
	return true
}

// isQuiet tells whether the sender is done: known to be (SenderDone), or
// quiet for obs.Quiet since its last connection.
func isQuiet(obs Observations, conns []store.SMTPConnection) bool {
	return obs.SenderDone || !obs.Now.IsZero() && obs.Quiet > 0 && len(conns) > 0 && obs.Now.Sub(lastStart(conns)) >= obs.Quiet
}

// asksTLSA tells whether the look-ups include one of a TLSA record of the
// test slot's hosts, in A or B (or the minimised "_tcp" query on the way
// there, RFC 9156).
func asksTLSA(obs Observations) bool {
	for _, q := range obs.DNSLookups {
		if q.Type == tlsaType || strings.HasPrefix(q.Name, "_tcp.") || strings.HasPrefix(q.Name, "_25._tcp.") {
			return true
		}
	}
	return false
}

// tlsaType is the TLSA RR type (RFC 6698 §7.1).
const tlsaType = 52

// decideAmong picks from several candidates what the evidence supports.
// Candidates that differ only where the sender has not been yet stay open;
// once the sender has been quiet for long enough, absence counts.
func decideAmong(cands []Policy, seen [numColumns]observed, fetched, quiet, sentToB, refusedB bool) (Policy, bool, string) {
	has := func(p Policy) bool { return slices.Contains(cands, p) }
	noDeliveryToB := len(seen[col7Plain].delivered)+len(seen[col7TLS].delivered) == 0
	// A sender that looked up B's TLSA (secure: none) and did not go on
	// to B refused it: of the candidates, only dane-only does. Settled in
	// the attempt it refused B, without waiting for quiet.
	if refusedB && has(PolicyDANEOnly) && noDeliveryToB {
		return PolicyDANEOnly, true, "DANE behaviour toward A, and its resolver looked up the TLSA record of B's host (B has none, provably) and it did not connect to B"
	}
	// A sender that had a mail for B, is done, and never delivered to B
	// refused it: of the candidates, only dane-only does (B has no TLSA).
	if quiet && sentToB && has(PolicyDANEOnly) && noDeliveryToB {
		return PolicyDANEOnly, true, "DANE behaviour toward A, and no delivery to B (no TLSA there) although it had a mail for B"
	}
	// Some policies behave alike toward every persona and differ only in
	// fetching zone A's MTA-STS policy: dane and dane+mta-sts; verify and an
	// MTA-STS sender that connects to persona 3 and refuses it (Postfix).
	// A fetch already left only the MTA-STS candidates; once the sender is
	// done without one, the MTA-STS candidates drop out.
	if quiet && !fetched {
		if without, ok := dropMTASTS(cands); ok && len(without) == 1 {
			return without[0], true, fmt.Sprintf("%s behaviour and no fetch of the MTA-STS policy seen (else %s)", without[0], joinPolicies(cands))
		}
	}
	if quiet {
		// Nothing more will come, and what was seen fits several
		// policies: say so rather than pick one.
		return PolicyUnknown, true, fmt.Sprintf("the sender stopped before the test could tell %s apart", joinPolicies(cands))
	}
	return PolicyUnknown, false, fmt.Sprintf("still possible: %s", joinPolicies(cands))
}

func explain(p Policy, seen [numColumns]observed, fetched bool) string {
	return fmt.Sprintf("only %s explains %s", p, outcomes(seen, fetched))
}

// outcomes lists what was seen, column by column.
func outcomes(seen [numColumns]observed, fetched bool) string {
	var parts []string
	for col := range numColumns {
		if s := outcomeWord(seen[col]); s != "" {
			parts = append(parts, columnNames[col]+": "+s)
		}
	}
	if fetched {
		parts = append(parts, "MTA-STS policy fetched")
	}
	return strings.Join(parts, ", ")
}

func outcomeWord(o observed) string {
	switch d, r := len(o.delivered) > 0, len(o.refused) > 0; {
	case d && r:
		return "delivered and refused"
	case d:
		return "delivered"
	case r:
		return "refused"
	}
	return ""
}

func zoneB(seen [numColumns]observed) string {
	p, t := seen[col7Plain], seen[col7TLS]
	switch {
	case len(t.delivered) > 0 && len(p.delivered) > 0:
		return "delivers to B in plain text (downgrade) and over TLS"
	case len(t.delivered) > 0:
		return "delivers to B over TLS"
	case len(p.delivered) > 0:
		return "delivers to B in plain text"
	case len(t.refused) > 0:
		return "refuses B's TLS host"
	}
	return "no delivery to B seen"
}

// attemptIndex numbers the delivery attempts of conns (sorted by start),
// from 0; -1 for a connection that says nothing. A connection after a
// pause of more than attemptGap starts a new attempt (a sender's one
// attempt may visit several MX hosts in quick succession, lab-recipes §7).
func attemptIndex(conns []store.SMTPConnection) []int {
	out := make([]int, len(conns))
	n := 0
	var last time.Time
	for i, c := range conns {
		if _, _, ok := classify(c); !ok {
			out[i] = -1
			continue
		}
		if n == 0 || c.Started.Sub(last) > attemptGap {
			n++
		}
		out[i] = n - 1
		if c.Started.After(last) {
			last = c.Started
		}
	}
	return out
}

// attemptGap separates two delivery attempts.
const attemptGap = 2 * time.Second

func lastStart(conns []store.SMTPConnection) time.Time {
	var t time.Time
	for _, c := range conns {
		if c.Started.After(t) {
			t = c.Started
		}
	}
	return t
}

func joinPolicies(ps []Policy) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// facts lists what the verdict says about the sender, each with evidence.
func facts(v Verdict, obs Observations, conns, v6host []store.SMTPConnection, seen [numColumns]observed, fetched bool, fallbacks []fallbackPair) []Fact {
	ids := func(cols ...column) []int64 {
		var out []int64
		for _, c := range cols {
			out = append(out, seen[c].delivered...)
			out = append(out, seen[c].refused...)
		}
		return out
	}
	known := func(value bool, why string, ev []int64) Fact {
		c := Likely
		if len(ev) > 0 {
			c = Proven
		}
		return Fact{Value: value, Confidence: c, Why: why, Evidence: ev}
	}
	unknown := func(why, settle string) Fact { return Fact{Confidence: Unknown, Why: why, Settle: settle} }
	var out []Fact
	add := func(name string, f Fact) { f.Name = name; out = append(out, f) }

	var fallbackPlain []int64
	for _, f := range fallbacks {
		fallbackPlain = append(fallbackPlain, f.plain)
	}
	switch {
	case len(fallbackPlain) > 0:
		// Checked before the window: an attacker who breaks the
		// handshake gets plain text, whatever the window showed.
		add(FactEnforcesEncryption, known(false, "delivered in plain text on the host whose certificate it had just refused (STARTTLS offered, not used)", uniq(fallbackPlain)))
	case len(seen[colPlainWindow].delivered) > 0:
		// Before a refusal: once it sent in plain text, an earlier or
		// later refusal protects nothing.
		add(FactEnforcesEncryption, known(false, "sent in plain text when STARTTLS was withheld (downgrade)", seen[colPlainWindow].delivered))
	case len(seen[colPlainWindow].refused) > 0:
		add(FactEnforcesEncryption, known(true, "refused to send in plain text when STARTTLS was withheld", seen[colPlainWindow].refused))
	default:
		add(FactEnforcesEncryption, unknown("no connection inside the downgrade window", "a connection in the first minutes of the test"))
	}
	switch {
	case len(seen[col3].refused)+len(seen[col4].refused) > 0 && len(seen[col5].delivered)+len(seen[col6].delivered) > 0 && len(seen[col4].delivered) == 0:
		add(FactValidatesPKIX, known(true, "refused self-signed certificates, accepted CA-signed ones", ids(col3, col4, col5, col6)))
	case len(seen[col2].refused) > 0 && len(seen[col2].delivered) == 0:
		add(FactValidatesPKIX, known(true, "refused the self-signed certificate of persona 2", seen[col2].refused))
	case len(seen[col2].delivered)+len(seen[col3].delivered) > 0:
		add(FactValidatesPKIX, known(false, "delivered over a self-signed certificate without a matching TLSA record", ids(col2, col3)))
	case len(seen[col4].delivered) > 0:
		add(FactValidatesPKIX, known(false, "delivered to persona 4 (self-signed, DANE-valid): PKIX not required there", seen[col4].delivered))
	default:
		add(FactValidatesPKIX, unknown("no decisive certificate seen", "a connection to personas 3, 4 or 5"))
	}
	switch {
	case hasBehaviour(v.Behaviours, BehaviourMTASTSOverridesDANE):
		// DANE is applied, but not enforced where MTA-STS accepts:
		// "validates DANE" holds only with that caveat.
		f := known(true, "delivered to persona 4, whose self-signed certificate only its TLSA record vouches for", ids(col3, col4, col5))
		f.Caveat = "a failed DANE validation does not stop it where MTA-STS accepts the certificate: it delivered to persona 5, whose TLSA record matches nothing (RFC 8461 §2, RFC 7672 §2.2)"
		add(FactValidatesDANE, f)
	case len(seen[col4].delivered) > 0 && len(seen[col3].refused)+len(seen[col5].refused) > 0:
		add(FactValidatesDANE, known(true, "delivered where TLSA matches (persona 4), refused where it does not", ids(col3, col4, col5)))
	case len(seen[col3].delivered)+len(seen[col5].delivered) > 0:
		add(FactValidatesDANE, known(false, "delivered although the TLSA record does not match", ids(col3, col5)))
	case len(seen[col4].refused) > 0:
		add(FactValidatesDANE, known(false, "refused persona 4 although its TLSA record matches", seen[col4].refused))
	case isQuiet(obs, conns) && len(obs.DNSLookups) > 0 && !asksTLSA(obs) && !impliedFacts(v.Policy)[FactValidatesDANE]:
		// The slot's names are the test's alone: its sender's resolver
		// asked for them, and never for a TLSA record, which a DANE
		// sender looks up before it connects (RFC 7672 §2.2). Likely
		// only: the query log may drop look-ups under a flood
		// (docs/dns.md), and its evidence is absence — so never against
		// a DANE verdict the connections showed (a shared resolver's
		// cache can answer a reused slot's TLSA names without asking us).
		add(FactValidatesDANE, Fact{Value: false, Confidence: Likely,
			Why: "its resolver looked up the test's names but never a TLSA record: not DANE-aware"})
	default:
		add(FactValidatesDANE, unknown("personas 3-5 not all seen", "connections to personas 3, 4 and 5"))
	}
	switch {
	case fetched:
		add(FactAppliesMTASTS, Fact{Value: true, Confidence: Proven, Why: "fetched zone A's MTA-STS policy"})
	case len(seen[col3].refused)+len(seen[col3].delivered) > 0 && usesNone(v.Candidates, usesMTASTS):
		add(FactAppliesMTASTS, Fact{Value: false, Confidence: Likely, Why: "contacted persona 3, which the MTA-STS policy excludes, and fetched no policy", Evidence: ids(col3)})
	default:
		add(FactAppliesMTASTS, unknown("no policy fetch seen", "a fetch of https://mta-sts.A/.well-known/mta-sts.txt, or a TLS-RPT report"))
	}
	if usesMTASTS(v.Policy) || slices.Contains(v.Candidates, PolicyDANEMTASTS) {
		switch {
		case len(seen[col5].refused) > 0:
			add(FactRespectsRFC8461S2, known(true, "refused persona 5 (CA-signed, in the MTA-STS policy, TLSA wrong)", seen[col5].refused))
		case len(seen[col5].delivered) > 0 && len(seen[col4].delivered) > 0:
			add(FactRespectsRFC8461S2, known(false, "delivered to persona 5 although its TLSA record does not match", seen[col5].delivered))
		case len(seen[col5].delivered) > 0:
			add(FactRespectsRFC8461S2, unknown("delivered to persona 5 (TLSA wrong), but no DANE validation seen that MTA-STS could have overridden", "a delivery to persona 4 (DANE-valid, self-signed)"))
		default:
			add(FactRespectsRFC8461S2, unknown("persona 5 not seen", "a connection to persona 5"))
		}
	}
	tlsConns, sni := 0, []int64{}
	var noSNI []int64
	for _, c := range conns {
		if c.TLSVersion == "" && c.State != store.StateSniSeen {
			continue
		}
		tlsConns++
		if c.SNI != "" {
			sni = append(sni, c.ID)
		} else {
			noSNI = append(noSNI, c.ID)
		}
	}
	switch {
	case len(sni) > 0:
		add(FactSendsSNI, known(true, "sent the MX host name as SNI", sni))
	case len(noSNI) > 0:
		f := known(false, "sent no SNI in any TLS handshake", noSNI)
		if len(seen[col2].refused) > 0 && len(seen[col2].delivered) == 0 {
			f.Why = "verifies certificates but sends no SNI: with one address for all hosts it can only see persona 2's self-signed certificate"
		}
		add(FactSendsSNI, f)
	default:
		add(FactSendsSNI, unknown("no TLS handshake seen", "a connection after the downgrade window"))
	}
	if len(seen[colPlainWindow].refused) > 0 {
		later := false
		first := firstRefusalInWindow(conns)
		for _, c := range conns {
			if c.Started.After(first.Add(attemptGap)) {
				later = true
			}
		}
		refusals := seen[colPlainWindow].refused
		switch {
		case later:
			add(FactRetries, known(true, "came back after the refused STARTTLS", ids(col2, col3, col4, col5, col6, col7TLS)))
		case obs.SenderDone:
			// Its queue is empty and nothing came after the refusal:
			// it gave up at once (an immediate bounce).
			add(FactRetries, Fact{Value: false, Confidence: Proven, Evidence: refusals,
				Why: "the sender finished (its queue is empty) with no connection after the refused STARTTLS: it gave up at once"})
		case !obs.Now.IsZero() && obs.Quiet > 0 && obs.Now.Sub(lastStart(conns)) >= obs.Quiet:
			add(FactRetries, Fact{Value: false, Confidence: Likely, Evidence: refusals,
				Why: fmt.Sprintf("no connection for %s after the refused STARTTLS", obs.Now.Sub(lastStart(conns)).Round(time.Second))})
		default:
			add(FactRetries, unknown("no connection after the refusal yet", "a retry, or a bounce message to the sender"))
		}
	}
	add(FactUsesIPv6, ipv6Fact(obs, conns, v6host))
	mails := len(seen[colPlainWindow].delivered) + len(seen[colPlainOffer].delivered) + len(seen[col7Plain].delivered)
	for _, col := range []column{col2, col3, col4, col5, col6, col7TLS} {
		mails += len(seen[col].delivered)
	}
	add(FactSignsDKIM, dkimFact(conns, mails))
	var arc []int64
	for _, c := range conns {
		for _, s := range c.Signatures {
			if s.Type == "arc" {
				arc = append(arc, c.ID)
			}
		}
	}
	switch {
	case len(arc) > 0:
		add(FactSignsARC, known(true, "signature on the test mail", uniq(arc)))
	case mails > 0:
		add(FactSignsARC, Fact{Value: false, Confidence: Proven, Why: "no such signature on the test mails received"})
	default:
		add(FactSignsARC, unknown("no mail received yet", "a completed mail"))
	}
	for _, b := range v.Behaviours {
		if !plainClass(b.Name) {
			continue
		}
		// What it checks when all goes well protects nothing once an
		// attacker can make it send in plain text: say so beside every
		// fact that would otherwise read as protection.
		for i := range out {
			if out[i].Value && out[i].Confidence != Unknown && protective(out[i].Name) && out[i].Caveat == "" {
				out[i].Caveat = plainCaveats[b.Name]
			}
		}
	}
	return out
}

// protective: the facts that, when they hold, say the sender protects the
// mail against an active attacker.
func protective(name string) bool {
	switch name {
	case FactEnforcesEncryption, FactValidatesPKIX, FactValidatesDANE, FactAppliesMTASTS, FactRespectsRFC8461S2:
		return true
	}
	return false
}

func firstRefusalInWindow(conns []store.SMTPConnection) time.Time {
	for _, c := range conns {
		if col, delivered, ok := classify(c); ok && col == colPlainWindow && !delivered {
			return c.Started
		}
	}
	return time.Time{}
}

func usesNone(ps []Policy, f func(Policy) bool) bool {
	for _, p := range ps {
		if f(p) {
			return false
		}
	}
	return true
}

func uniq(ids []int64) []int64 {
	slices.Sort(ids)
	return slices.Compact(ids)
}

// ClientMatches tells whether a policy fetch came from the sender's
// network: the same /24 (IPv4) or /48 (IPv6) as one of its connections.
// MTA-STS resolvers often fetch from the MTA itself or a neighbour.
func ClientMatches(fetch netip.Addr, conns []store.SMTPConnection, bitsV4, bitsV6 int) bool {
	fetch = fetch.Unmap()
	for _, c := range conns {
		a := c.Client.Addr().Unmap()
		if a.Is4() != fetch.Is4() {
			continue
		}
		bits := bitsV6
		if a.Is4() {
			bits = bitsV4
		}
		p, err := a.Prefix(bits)
		if err == nil && p.Contains(fetch) {
			return true
		}
	}
	return false
}
