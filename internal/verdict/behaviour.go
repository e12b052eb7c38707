package verdict

import (
	"slices"

	"github.com/mailsec/mailsec/internal/store"
)

// Behaviour is something a sender does that the policy table of DESIGN.md
// §2 has no row for, named so that the verdict need not call it
// `inconsistent` or hide it behind a fact that is only half true.
type Behaviour struct {
	Name     string  `json:"name"`     // stable machine name (Behaviour* constants)
	Text     string  `json:"text"`     // the sentence shown to the user
	Evidence []int64 `json:"evidence"` // connection IDs
}

// Behaviour names. They are part of the verdict's JSON: never rename one.
const (
	// BehaviourPlainFallback: a TLS session refused (certificate or TLSA), then
	// on the same host in the same delivery attempt a plain-text session,
	// STARTTLS offered and not used, that delivers. Several MTAs do this by
	// default (Exim's tls_tempfail_tryclear; Haraka with its "TLS NO-GO"
	// cache). RFC 3207 §4.1: a client that finds the TLS session not good
	// enough should QUIT; going on in plain text undoes the check, and an
	// attacker who presents any bad certificate, or who breaks the
	// handshake, reads the mail.
	BehaviourPlainFallback = "plain-fallback-after-failed-verification"
	// BehaviourVerifyWhenOffered: refuses a certificate it cannot verify
	// when STARTTLS is offered, but sends in plain text when it is not
	// (Haraka with rejectUnauthorized=true and no force_tls_hosts). The
	// attacker strips STARTTLS (RFC 3207 §6) and reads the mail.
	BehaviourVerifyWhenOffered = "verifies-only-when-tls-offered"
	// BehaviourMTASTSOverridesDANE: DANE is applied where it does not
	// conflict with MTA-STS (DANE-valid self-signed persona 4 accepted,
	// persona 3 refused) but a failed DANE validation is overridden where
	// MTA-STS accepts the certificate (persona 5: CA-signed, listed in the
	// policy, TLSA wrong). RFC 8461 §2 forbids it: "senders who implement
	// MTA-STS validation MUST NOT allow MTA-STS Policy validation to
	// override a failing DANE validation". RFC 7672 §2.2 forbids it too: a
	// usable TLSA RRset that matches nothing means no delivery.
	BehaviourMTASTSOverridesDANE = "mta-sts-overrides-dane"
)

// The sentences of the behaviours.
const (
	textPlainFallback      = "verifies certificates, then falls back to plain text: no protection against an active attacker"
	textVerifyWhenOffered  = "verifies certificates when TLS is offered, sends in plain text when it is not: no protection against an active attacker"
	textMTASTSOverridesDNE = "lets MTA-STS override a failed DANE validation (RFC 8461 §2 forbids it): delivered to persona 5, whose TLSA record matches nothing, because its CA-signed certificate fits the MTA-STS policy"
)

// plainCaveats are the caveats the plain-text behaviours put on the facts
// that would otherwise read as protection.
var plainCaveats = map[string]string{
	BehaviourPlainFallback:     "it falls back to plain text when a verification fails, so an active attacker reads the mail anyway",
	BehaviourVerifyWhenOffered: "it sends in plain text when STARTTLS is not offered, so an active attacker who strips STARTTLS reads the mail anyway",
}

// plainClass tells whether a behaviour leaves the mail readable by an
// active attacker: the sender's protection is that of `may`, whatever it
// checks when all goes well.
func plainClass(name string) bool {
	return name == BehaviourPlainFallback || name == BehaviourVerifyWhenOffered
}

// certificateColumns are the personas whose certificate a verifying
// sender refuses: self-signed, and either without SNI (2), with a TLSA
// record that matches nothing (3), or DANE-valid only (4).
var certificateColumns = []column{col2, col3, col4}

// tlsColumns are the columns of a TLS session. A refusal in any of them is
// a failed verification: of a certificate (2, 3, 4 self-signed; 7 without
// SNI shows persona 2's) or of a TLSA record (3, 5; 7 for dane-only), so a
// plain-text session after it on the same host is a fallback, whichever
// check failed.
var tlsColumns = []column{col2, col3, col4, col5, col6, col7TLS}

// fallbackPair is a refused TLS session and the plain-text session that
// followed it on the same host within the same delivery attempt.
type fallbackPair struct{ refused, plain int64 }

// plainFallbacks finds the plain-text fallbacks in conns (sorted by start):
// a session that delivers in plain text although STARTTLS was offered,
// after a refused TLS session at a certificate in the same attempt on the
// same host. "The same host" is the address the sender connected to
// (store.SMTPConnection.Local): one address per MX host tells the hosts
// apart; on one shared address every host is the same, and the same
// attempt is what ties the two sessions. A plain session with STARTTLS
// offered is persona 1 in A (or 7 with a recipient in B): the persona of a
// session is known only from SNI, recipients or the address, and a plain
// session after a failed handshake sends no SNI.
func plainFallbacks(conns []store.SMTPConnection, attempt []int) []fallbackPair {
	var out []fallbackPair
	for j, p := range conns {
		col, delivered, ok := classify(p)
		if !ok || !delivered || !p.STARTTLSOffered || (col != colPlainOffer && col != col7Plain) {
			continue
		}
		for i := j - 1; i >= 0; i-- {
			r := conns[i]
			if attempt[i] != attempt[j] {
				break
			}
			rcol, rdelivered, rok := classify(r)
			if rok && !rdelivered && slices.Contains(tlsColumns, rcol) && r.Local == p.Local {
				out = append(out, fallbackPair{refused: r.ID, plain: p.ID})
				break
			}
		}
	}
	return out
}

// behaviours names what the sender did that the table cannot name. Each
// behaviour appears exactly when its pattern is in the observations (the
// exhaustive test checks it against independently generated histories).
func behaviours(seen [numColumns]observed, fallbacks []fallbackPair, fetched bool) []Behaviour {
	out := []Behaviour{}
	refusedCert := func() []int64 {
		var ids []int64
		for _, c := range certificateColumns {
			ids = append(ids, seen[c].refused...)
		}
		return ids
	}()
	if len(fallbacks) > 0 {
		var ev []int64
		for _, f := range fallbacks {
			ev = append(ev, f.refused, f.plain)
		}
		out = append(out, Behaviour{Name: BehaviourPlainFallback, Text: textPlainFallback, Evidence: uniq(ev)})
	} else if len(seen[colPlainWindow].delivered) > 0 && len(refusedCert) > 0 {
		// The fallback names the same protection class and is the
		// stronger finding; with it, this one would only repeat it.
		ev := append(slices.Clone(seen[colPlainWindow].delivered), refusedCert...)
		out = append(out, Behaviour{Name: BehaviourVerifyWhenOffered, Text: textVerifyWhenOffered, Evidence: uniq(ev)})
	}
	if overridesDANE(seen, fetched) {
		ev := append(slices.Clone(seen[col5].delivered), seen[col4].delivered...)
		ev = append(ev, seen[col3].refused...)
		out = append(out, Behaviour{Name: BehaviourMTASTSOverridesDANE, Text: textMTASTSOverridesDNE, Evidence: uniq(ev)})
	}
	return out
}

// overridesDANE is the pattern of BehaviourMTASTSOverridesDANE: delivered
// to persona 4 (self-signed: only DANE accepts it) and to persona 5 (TLSA
// wrong: DANE refuses it), never to a self-signed host without a matching
// TLSA record (2, 3: the sender does check certificates), and something
// shows the check: it refused persona 3, or it fetched zone A's MTA-STS
// policy (MTA-STS requires PKIX, RFC 8461 §4.2, so persona 4 was accepted
// by DANE).
func overridesDANE(seen [numColumns]observed, fetched bool) bool {
	return len(seen[col4].delivered) > 0 && len(seen[col5].delivered) > 0 &&
		len(seen[col2].delivered)+len(seen[col3].delivered) == 0 &&
		(len(seen[col3].refused) > 0 || fetched)
}

// variant is a row the table lacks: a behaviour judged as one of the
// table's policies (its protection class). Judge keeps the policy as a
// candidate while the variant's row fits, so a sender seen only in part is
// never named a stronger policy its behaviour might still contradict.
type variant struct {
	policy Policy
	row    [numColumns]expect
}

var variants = []variant{
	// Verifies certificates when STARTTLS is offered (refuses 2, 3, 4;
	// delivers to CA-signed 5, 6, 7) and sends in plain text when it is
	// not (1 in the window, 7 in plain text): `may`
	// (BehaviourVerifyWhenOffered). Seen in part, it keeps `may` among the
	// candidates, so a sender not yet seen in the downgrade window is not
	// named verify. A plain-text fallback, once seen, needs no row: Judge
	// judges it `may` whatever else it did.
	//  1w       1o      2        3        4        5         6         7p        7t
	{PolicyMay, [numColumns]expect{eDeliver, eNever, eRefuse, eRefuse, eRefuse, eDeliver, eDeliver, eDeliver, eDeliver}},
	// DANE and MTA-STS, MTA-STS overriding a failed DANE validation at
	// persona 5 (BehaviourMTASTSOverridesDANE): dane+mta-sts's row with
	// persona 5 delivered.
	{PolicyDANEMTASTS, [numColumns]expect{eRefuse, eNever, eNever, eRefuse, eDeliver, eDeliver, eDeliver, eDeliver, eDeliver}},
}

// variantFits tells whether one of the variants judged as p explains what
// was seen.
func variantFits(p Policy, seen [numColumns]observed, fetched bool) bool {
	for _, v := range variants {
		if v.policy == p && (!fetched || usesMTASTS(p)) && rowContradiction(v.row, seen) == "" {
			return true
		}
	}
	return false
}

func hasBehaviour(bs []Behaviour, name string) bool {
	return slices.ContainsFunc(bs, func(b Behaviour) bool { return b.Name == name })
}
