package report

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// This file holds what the report says in words: the summary line a
// non-specialist understands, the headline, the facts grouped by how sure
// they are, and the advice per finding. Every word comes from the
// catalogues of internal/i18n (keys "report.…"); docs/report.md lists the
// sentences and docs/i18n.md how to add one.

// sentence is one diagnosis sentence in language l.
func sentence(l i18n.Lang, r Rating, key string, args ...any) Sentence {
	return Sentence{Text: i18n.T(l, key, args...), Rating: r, lang: l}
}

// ratingKey is a rating's catalogue key.
func ratingKey(r Rating) string { return "rating." + strings.ReplaceAll(string(r), " ", "-") }

// phase tells where the test stands.
func phase(in Input) (Phase, string) {
	l := in.Lang
	if in.Final {
		return PhaseDone, i18n.T(l, "report.phase.done")
	}
	if len(in.Connections) == 0 {
		return PhaseWaiting, i18n.T(l, "report.phase.waiting")
	}
	first := in.Connections[0].Started
	for _, c := range in.Connections {
		if c.Started.Before(first) {
			first = c.Started
		}
	}
	if in.DowngradeWindow > 0 && in.Now.Before(first.Add(in.DowngradeWindow)) {
		left := first.Add(in.DowngradeWindow).Sub(in.Now).Round(time.Second)
		return PhaseDowngrade, i18n.T(l, "report.phase.downgrade", left.String())
	}
	if !in.Test.Acked.IsZero() || in.Test.State == store.TestAcked {
		return PhaseWaiting, i18n.T(l, "report.phase.accepted")
	}
	return PhaseRotating, i18n.T(l, "report.phase.rotating")
}

// behaviourRatings are the ratings of the headlines of a named behaviour:
// the behaviour is the finding, and the policy's own headline would claim
// what the behaviour defeats.
var behaviourRatings = map[string]Rating{
	verdict.BehaviourPlainFallback:       Bad,
	verdict.BehaviourVerifyWhenOffered:   Bad,
	verdict.BehaviourMTASTSOverridesDANE: Weak,
	verdict.BehaviourDANEWithoutDNSSEC:   Weak,
}

// policyRatings are the ratings of the headline of each policy the verdict
// can settle on.
var policyRatings = map[verdict.Policy]Rating{
	verdict.PolicyDANEOnly:     VeryGood,
	verdict.PolicyDANE:         VeryGood,
	verdict.PolicyDANEMTASTS:   VeryGood,
	verdict.PolicyMTASTS:       Good,
	verdict.PolicyVerify:       Good,
	verdict.PolicyEncrypt:      Weak,
	verdict.PolicyMay:          Bad,
	verdict.PolicyNone:         VeryBad,
	verdict.PolicyInconsistent: Unknown,
}

// namedBehaviour is the first behaviour of v that has its own headline.
func namedBehaviour(v verdict.Verdict) string {
	if v.Policy == verdict.PolicyUnknown {
		return ""
	}
	for _, b := range v.Behaviours {
		if _, ok := behaviourRatings[b.Name]; ok {
			return b.Name
		}
	}
	return ""
}

func headline(l i18n.Lang, v verdict.Verdict, final bool) Sentence {
	if b := namedBehaviour(v); b != "" {
		return sentence(l, behaviourRatings[b], "report.headline.behaviour."+b)
	}
	if r, ok := policyRatings[v.Policy]; ok {
		return sentence(l, r, "report.headline.policy."+string(v.Policy))
	}
	if len(v.Candidates) > 0 && (final || v.Complete) {
		return sentence(l, Unknown, "report.headline.undecided", joinCands(v.Candidates))
	}
	if len(v.Candidates) > 0 && v.Attempts > 0 {
		return sentence(l, Unknown, "report.headline.running", joinCands(v.Candidates))
	}
	return sentence(l, Unknown, "report.headline.waiting")
}

// summary is the one line a non-specialist understands: what the server
// does about encryption and certificates, in plain words, and whether it
// uses MTA-STS where the policy leaves that open. It says the same as the
// headline (the same behaviour or policy decides both).
func summary(l i18n.Lang, v verdict.Verdict, final bool) string {
	var s string
	switch b := namedBehaviour(v); {
	case b != "":
		s = i18n.T(l, "report.summary.behaviour."+b)
	case v.Policy == verdict.PolicyUnknown && len(v.Candidates) > 0 && (final || v.Complete):
		return i18n.T(l, "report.summary.undecided")
	case v.Policy == verdict.PolicyUnknown && v.Attempts > 0:
		return i18n.T(l, "report.summary.running")
	case v.Policy == verdict.PolicyUnknown:
		return i18n.T(l, "report.summary.waiting")
	default:
		s = i18n.T(l, "report.summary.policy."+string(v.Policy))
	}
	// MTA-STS: said where the policy does not say it already, and only
	// when a fact settled it.
	switch v.Policy {
	case verdict.PolicyDANEOnly, verdict.PolicyDANE, verdict.PolicyVerify:
		if f, ok := factOf(v, verdict.FactAppliesMTASTS); ok && f.Confidence != verdict.Unknown && !f.Value {
			s += " " + i18n.T(l, "report.summary.no-mtasts")
		}
	}
	if !final {
		s = i18n.T(l, "report.summary.so-far", s)
	}
	return s
}

func factOf(v verdict.Verdict, name string) (verdict.Fact, bool) {
	for _, f := range v.Facts {
		if f.Name == name {
			return f, true
		}
	}
	return verdict.Fact{}, false
}

func joinCands(ps []verdict.Policy) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ", ")
}

// daneFamily: policies for which PKIX does not matter where DANE decides.
func daneFamily(p verdict.Policy) bool {
	return p == verdict.PolicyDANE || p == verdict.PolicyDANEOnly || p == verdict.PolicyDANEMTASTS
}

// daneVerdict: the verdict is, or can only become, a DANE policy.
func daneVerdict(v verdict.Verdict) bool {
	if daneFamily(v.Policy) {
		return true
	}
	if len(v.Candidates) == 0 {
		return false
	}
	for _, c := range v.Candidates {
		if !daneFamily(c) {
			return false
		}
	}
	return true
}

// factKeys are the catalogue names of the facts ("report.fact.<name>.…").
var factKeys = map[string]string{
	verdict.FactEnforcesEncryption: "encrypts",
	verdict.FactValidatesPKIX:      "pkix",
	verdict.FactValidatesDANE:      "dane",
	verdict.FactAppliesMTASTS:      "mtasts",
	verdict.FactRespectsRFC8461S2:  "rfc8461s2",
	verdict.FactSendsSNI:           "sni",
	verdict.FactRetries:            "retries",
	verdict.FactUsesIPv6:           "ipv6",
	verdict.FactValidatesDNSSEC:    "dnssec",
	verdict.FactSignsDKIM:          "dkim",
	verdict.FactSignsARC:           "arc",
}

// factRatings are the ratings of a settled fact that holds and of one that
// does not.
var factRatings = map[string]struct{ yes, no Rating }{
	verdict.FactEnforcesEncryption: {Good, Bad},
	verdict.FactValidatesPKIX:      {Good, Bad},
	verdict.FactValidatesDANE:      {VeryGood, Bad},
	verdict.FactAppliesMTASTS:      {Good, Info},
	verdict.FactRespectsRFC8461S2:  {Good, Bad},
	verdict.FactSendsSNI:           {Info, Info},
	verdict.FactRetries:            {Good, Weak},
	verdict.FactUsesIPv6:           {Info, Info},
	verdict.FactValidatesDNSSEC:    {Good, Bad},
	verdict.FactSignsDKIM:          {Good, Bad},
	verdict.FactSignsARC:           {Info, Info},
}

// encryptionless: under a final verdict of this policy the sender never
// encrypts, so how it would check certificates is moot, not an open
// question (a reader would otherwise read "still unknown whether it
// validates DANE" beside "never encrypts").
func encryptionless(v verdict.Verdict, final bool) bool {
	return final && v.Policy == verdict.PolicyNone
}

// certificateFacts are the facts about checking certificates.
func certificateFact(name string) bool {
	switch name {
	case verdict.FactValidatesPKIX, verdict.FactValidatesDANE, verdict.FactAppliesMTASTS, verdict.FactRespectsRFC8461S2, verdict.FactSendsSNI, verdict.FactValidatesDNSSEC:
		return true
	}
	return false
}

// checksCertificates: a behaviour shows that the sender refused a
// certificate (it checks certificates, by CA or by DANE).
func checksCertificates(v verdict.Verdict) bool {
	for _, b := range v.Behaviours {
		if b.Name == verdict.BehaviourPlainFallback || b.Name == verdict.BehaviourVerifyWhenOffered {
			return true
		}
	}
	return false
}

// diagnosis turns the verdict's facts into sentences: what is known
// (proven or likely, with evidence, good/bad and advice), and what is
// still unknown with what would settle it.
func diagnosis(l i18n.Lang, v verdict.Verdict, final bool) (known, open []Sentence) {
	for _, b := range v.Behaviours {
		rating := Bad
		if b.Name == verdict.BehaviourMTASTSOverridesDANE || b.Name == verdict.BehaviourDANEWithoutDNSSEC {
			rating = Weak
		}
		s := sentence(l, rating, "report.behaviour", redactText(i18n.Text(l, b.Text)))
		s.Confidence, s.Evidence = verdict.Proven, b.Evidence
		s.Advice = adviceFor(l, adviceOfBehaviour[b.Name])
		known = append(known, s)
	}
	moot := false
	certsUnknown := checksCertificates(v)
	for _, f := range v.Facts {
		if f.Confidence == verdict.Unknown {
			switch {
			case encryptionless(v, final) && certificateFact(f.Name):
				moot = true
				continue
			case certsUnknown && (f.Name == verdict.FactValidatesPKIX || f.Name == verdict.FactValidatesDANE):
				// A behaviour says it refused a certificate: it
				// checks them, only how is open (one sentence,
				// below, not "unknown whether it validates").
				continue
			}
			key := "report.unknown." + factKeys[f.Name]
			if !i18n.Has(key) {
				key = "report.unknown.other"
			}
			why := redactText(localizeFactWhy(l, f.Why))
			args := []any{why}
			if key == "report.unknown.other" {
				args = []any{f.Name, why}
			}
			s := sentence(l, Unknown, key, args...)
			if f.Settle != "" {
				s.Text += " " + i18n.T(l, "report.unknown.settle", redactText(i18n.Text(l, f.Settle)))
			}
			s.Confidence = verdict.Unknown
			open = append(open, s)
			continue
		}
		s := factSentence(l, f, daneVerdict(v))
		if f.Caveat != "" {
			// A fact that holds but protects less than it says.
			s.Text += i18n.T(l, "report.caveat", redactText(i18n.Text(l, f.Caveat)))
			if s.Rating == VeryGood || s.Rating == Good {
				s.Rating = Weak
			}
		}
		s.Confidence, s.Evidence = f.Confidence, f.Evidence
		if s.Rating == Bad || s.Rating == VeryBad || s.Rating == Weak {
			s.Advice = adviceFor(l, adviceOfFact[f.Name])
		}
		known = append(known, s)
	}
	if certsUnknown {
		_, pkix := factOf(v, verdict.FactValidatesPKIX)
		if f, _ := factOf(v, verdict.FactValidatesPKIX); pkix && f.Confidence == verdict.Unknown {
			open = append(open, Sentence{Text: i18n.T(l, "report.unknown.how-checked"), Rating: Unknown, Confidence: verdict.Unknown, lang: l})
		}
	}
	if moot {
		known = append(known, Sentence{Text: i18n.T(l, "report.moot.none"), Rating: Info, Confidence: verdict.Proven, lang: l})
	}
	if v.ZoneB != "" && v.Attempts > 0 {
		s := sentence(l, Info, "report.zone-b", i18n.Text(l, v.ZoneB))
		s.Confidence = verdict.Proven
		known = append(known, s)
	}
	return known, open
}

// factSentence is what a settled fact says: "report.fact.<name>.yes" if
// it holds, ".no" with its evidence if not; a few facts say more.
func factSentence(l i18n.Lang, f verdict.Fact, dane bool) Sentence {
	why := redactText(localizeFactWhy(l, f.Why))
	name := factKeys[f.Name]
	switch f.Name {
	case verdict.FactEnforcesEncryption:
		switch {
		case f.Value:
			return sentence(l, Good, "report.fact.encrypts.yes")
		case !strings.Contains(f.Why, "withheld"):
			// Not the downgrade window: a plain-text fallback after a
			// failed handshake, say.
			return sentence(l, Bad, "report.fact.encrypts.fallback", why)
		}
		return sentence(l, Bad, "report.fact.encrypts.no")
	case verdict.FactValidatesPKIX:
		if !f.Value && dane {
			return sentence(l, Info, "report.fact.pkix.dane", why)
		}
	case verdict.FactSignsDKIM:
		// A signature that does not verify is no signature: never
		// "signed (good)" (its Why is the result, "DKIM: fail (…): …").
		switch {
		case f.Value:
			return sentence(l, Good, "report.fact.dkim.yes", why)
		case strings.HasPrefix(f.Why, "DKIM: "):
			return sentence(l, Bad, "report.fact.dkim.broken", why)
		}
	case verdict.FactSendsSNI:
		switch {
		case f.Value:
			return sentence(l, Info, "report.fact.sni.yes")
		case strings.Contains(f.Why, "verifies certificates"):
			return sentence(l, Bad, "report.fact.sni.verifies", why)
		}
		return sentence(l, Info, "report.fact.sni.no")
	}
	if r, ok := factRatings[f.Name]; ok && name != "" {
		if f.Value {
			return sentence(l, r.yes, "report.fact."+name+".yes")
		}
		return sentence(l, r.no, "report.fact."+name+".no", why)
	}
	if f.Value {
		return sentence(l, Info, "report.fact.other.yes", f.Name, why)
	}
	return sentence(l, Info, "report.fact.other.no", f.Name, why)
}

// evidenceText is the evidence of a sentence: the connections of the
// history it rests on.
func evidenceText(l i18n.Lang, ids []int64) string {
	if len(ids) == 0 {
		return ""
	}
	sorted := slices.Sorted(slices.Values(ids))
	s := make([]string, len(sorted))
	for i, id := range sorted {
		s[i] = fmt.Sprintf("#%d", id)
	}
	return i18n.T(l, "report.evidence", strings.Join(s, ", "))
}
