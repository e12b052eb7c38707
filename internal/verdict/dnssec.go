package verdict

import (
	"slices"

	"github.com/mailsec/mailsec/internal/store"
)

// BehaviourDANEWithoutDNSSEC: the sender applies DANE (it accepted or
// refused hosts by their TLSA records) but its resolver does not validate
// DNSSEC: it connected to the host whose address records carry a broken
// signature. TLSA records are worth only their DNSSEC validation (RFC 7672
// §2.1: "a TLSA RRset whose DNSSEC validation state is not secure MUST be
// treated as unusable"); unvalidated, an attacker on the path forges or
// strips them, and DANE protects nothing.
const BehaviourDANEWithoutDNSSEC = "dane-without-dnssec-validation"

const (
	textDANEWithoutDNSSEC   = "applies DANE, but its resolver does not validate DNSSEC (it connected to the host whose address records carry a broken signature): an attacker forges or strips the TLSA records, so DANE protects nothing"
	caveatDANEWithoutDNSSEC = "its resolver does not validate DNSSEC, so the TLSA records it checks can be forged or stripped (RFC 7672 §2.1): DANE protects nothing"
)

// dnssecFacts adds FactValidatesDNSSEC when the broken host is in the MX
// set, and voids the DANE claims of a sender whose resolver does not
// validate.
//
// The broken host is the most preferred MX host of A (docs/dns.md "Broken
// host"). A sender must try it before the others (RFC 5321 §5.1); its
// address look-up fails validation (SERVFAIL from a validating resolver),
// so a validating sender goes on to the next host and never connects,
// while a sender behind a non-validating resolver gets the address and
// connects (answered 421, it goes on too).
//   - a connection to it: no (proven);
//   - its resolver looked the host up, and the sender connected to a host
//     ranked after it since, never to it: yes (proven, the evidence is
//     those connections);
//   - without the look-ups (a test without a slot), connections to A's
//     other hosts only and the sender done: yes, likely.
func dnssecFacts(v *Verdict, obs Observations, conns, broken []store.SMTPConnection) {
	if len(obs.BrokenHostAddrs) == 0 {
		return
	}
	f := Fact{Name: FactValidatesDNSSEC}
	asked, lookedUp := firstLookUp(obs.DNSLookups, obs.BrokenHostNames)
	toA, after := towardA(conns, asked, lookedUp)
	switch {
	case len(broken) > 0:
		ids := make([]int64, len(broken))
		for i, c := range broken {
			ids[i] = c.ID
		}
		f.Value, f.Confidence, f.Evidence = false, Proven, uniq(ids)
		f.Why = "connected to the MX host whose address records carry a broken signature: its resolver handed out an address that fails DNSSEC validation"
	case len(after) > 0:
		f.Value, f.Confidence, f.Evidence = true, Proven, uniq(after)
		f.Why = "its resolver looked up the MX host whose address records carry a broken signature, and the sender went on to the hosts ranked after it without ever connecting to it"
		if asked.DO {
			f.Why += " (the look-up had the DO bit set)"
		}
	case toA && isQuiet(obs, conns) && obs.DNSLookups == nil:
		f.Value, f.Confidence = true, Likely
		f.Why = "connected to the MX hosts ranked after the one whose address records carry a broken signature, never to it"
	default:
		f.Confidence = Unknown
		f.Why = "no connection to zone A's hosts seen yet"
		f.Settle = "a delivery attempt toward A (a validating sender skips the broken host, a non-validating one connects to it first)"
	}
	v.Facts = append(v.Facts, f)

	if len(broken) == 0 {
		return
	}
	// Every DANE claim is void without validation: the fact keeps what
	// the sender does, with the caveat, and the behaviour takes the credit
	// away (report.VerdictColour).
	dane := daneFamily(v.Policy)
	for i := range v.Facts {
		if v.Facts[i].Name == FactValidatesDANE && v.Facts[i].Value && v.Facts[i].Confidence != Unknown {
			dane = true
			if v.Facts[i].Caveat != "" {
				v.Facts[i].Caveat += "; and "
			}
			v.Facts[i].Caveat += caveatDANEWithoutDNSSEC
		}
	}
	if dane {
		ev := slices.Clone(f.Evidence)
		v.Behaviours = append(v.Behaviours, Behaviour{Name: BehaviourDANEWithoutDNSSEC, Text: textDANEWithoutDNSSEC, Evidence: ev})
		if v.Policy != PolicyUnknown {
			v.Why = "it " + textDANEWithoutDNSSEC + "; " + v.Why
		}
	}
}

// daneFamily: the policies that claim DANE.
func daneFamily(p Policy) bool {
	return p == PolicyDANE || p == PolicyDANEOnly || p == PolicyDANEMTASTS
}

// firstLookUp returns the earliest look-up of one of names (a host's A or
// AAAA names, its slot's included); ok is false when there was none.
func firstLookUp(lookups []store.DNSQuery, names []string) (first store.DNSQuery, ok bool) {
	for _, q := range lookups {
		if slices.Contains(names, q.Name) && (!ok || q.Time.Before(first.Time)) {
			first, ok = q, true
		}
	}
	return first, ok
}

// towardA tells whether the sender connected to zone A's hosts at all
// (persona 7, zone B's, aside), and lists those that started at or after
// the look-up asked (none when there was no look-up, lookedUp false): a
// sender that went on to the hosts ranked after a host it looked up.
func towardA(conns []store.SMTPConnection, asked store.DNSQuery, lookedUp bool) (toA bool, after []int64) {
	for _, c := range conns {
		col, _, ok := classify(c)
		if !ok || col == col7Plain || col == col7TLS || c.Persona == 7 {
			continue
		}
		toA = true
		if lookedUp && !c.Started.Before(asked.Time) {
			after = append(after, c.ID)
		}
	}
	return toA, after
}
