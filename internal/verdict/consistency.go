package verdict

import (
	"fmt"
	"strings"
)

// impliedFacts are the facts a policy of the table implies, with their
// value: what the verdict already says about the sender when it names the
// policy. A fact beside the verdict must never say the opposite.
//   - Every policy from encrypt on refuses plain text (DESIGN.md §2, column 1);
//     none and may send it.
//   - verify and mta-sts validate PKIX (RFC 8461 §4.2 requires it);
//     encrypt accepts any certificate.
//   - The DANE policies validate DANE (RFC 7672 §2.2); the MTA-STS
//     policies apply MTA-STS.
func impliedFacts(p Policy) map[string]bool {
	m := map[string]bool{}
	switch p {
	case PolicyNone, PolicyMay:
		m[FactEnforcesEncryption] = false
	case PolicyEncrypt, PolicyVerify, PolicyDANE, PolicyDANEOnly, PolicyMTASTS, PolicyDANEMTASTS:
		m[FactEnforcesEncryption] = true
	}
	switch p {
	case PolicyVerify, PolicyMTASTS:
		m[FactValidatesPKIX] = true
	case PolicyEncrypt:
		m[FactValidatesPKIX] = false
	}
	switch p {
	case PolicyDANE, PolicyDANEOnly, PolicyDANEMTASTS:
		m[FactValidatesDANE] = true
	}
	if usesMTASTS(p) {
		m[FactAppliesMTASTS] = true
	}
	return m
}

// unchangedNote is how an unknown fact says why it does not change the
// verdict; factConflicts looks for it.
const unchangedNote = "not seen directly, which does not change the verdict "

// ReconciledNote and ReconciledRests are the words reconcile puts around
// the policy in a fact's reason: "<why>" + ReconciledNote + "<policy>" +
// ReconciledRests + "<the verdict's reason>)". Exported for the report,
// which takes such a reason apart to translate it.
const (
	ReconciledNote  = "; " + unchangedNote
	ReconciledRests = ": it rests on what the sender did elsewhere ("
)

// reconcile makes the facts agree with the verdict: a fact the named
// policy implies and that the connections did not settle says why that
// does not change the verdict, rather than sit beside it as an open
// question. It never sets a value: a fact claims no more than its
// evidence (an implied "validates DANE" is not shown as proven).
func reconcile(v *Verdict) {
	implied := impliedFacts(v.Policy)
	for i, f := range v.Facts {
		if _, ok := implied[f.Name]; !ok || f.Confidence != Unknown {
			continue
		}
		v.Facts[i].Why = f.Why + ReconciledNote + string(v.Policy) + ReconciledRests + v.Why + ")"
	}
}

// factConflicts lists where the facts disagree with the verdict (nil when
// they agree): a fact the policy implies with the opposite value, or left
// unknown without saying why that does not change the verdict; a fact that
// reads as protection beside a behaviour that defeats it, without a caveat.
func factConflicts(v Verdict) []string {
	var out []string
	implied := impliedFacts(v.Policy)
	for _, f := range v.Facts {
		want, ok := implied[f.Name]
		switch {
		case !ok:
		case f.Confidence == Unknown && !strings.Contains(f.Why, unchangedNote+string(v.Policy)):
			out = append(out, fmt.Sprintf("%s: %q unknown without saying why that does not change it", v.Policy, f.Name))
		case f.Confidence != Unknown && f.Value != want:
			out = append(out, fmt.Sprintf("%s: %q is %v (%s)", v.Policy, f.Name, f.Value, f.Why))
		}
		for _, b := range v.Behaviours {
			if plainClass(b.Name) && protective(f.Name) && f.Value && f.Confidence != Unknown && f.Caveat == "" {
				out = append(out, fmt.Sprintf("%q holds without the caveat of %s", f.Name, b.Name))
			}
		}
	}
	return out
}
