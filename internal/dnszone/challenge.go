package dnszone

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// ACME DNS-01 challenges (RFC 8555 §8.4) answered by our own zones.
//
// To prove control of a host name, the ACME client publishes a TXT record
// at "_acme-challenge.<host>" whose value is derived from the CA's token
// and the account key; the CA looks it up and, if it matches, authorises
// the name. Since the service is itself authoritative for zones A and B, it
// answers the challenge from the zone snapshot: SetChallenge swaps in a new
// snapshot of the current rotation step at once (the DNS server's answer
// cache is keyed by snapshot, so nothing stale is served), and every later
// rebuild carries the records until ClearChallenge. The records are signed
// like the rest of the zone and the NSEC chain is rebuilt with them, so a
// validating CA resolver (Let's Encrypt validates DNSSEC) accepts them.
//
// The SOA serial is not changed: it counts rotation steps, and nothing
// transfers these zones. A secondary fed by zone transfer would need it.

// ChallengeTTL is the TTL of challenge TXT records: short, so that a CA
// retrying a validation after a new token sees the new value (RFC 8555
// §8.4 leaves the TTL to the client; Let's Encrypt queries authoritative
// servers without caching anyway).
const ChallengeTTL = 10

// ChallengeLabel is the first label of every challenge name (RFC 8555 §8.4).
const ChallengeLabel = "_acme-challenge"

// maxChallengeNames bounds the names published at once. The service asks
// for a handful of certificates; a runaway caller must not grow the zones
// without limit.
const maxChallengeNames = 64

// ErrChallenge is wrapped by every refusal of SetChallenge and
// ClearChallenge: a name that is not _acme-challenge.<host> in one of the
// authority's zones, a bad value, or too many names.
var ErrChallenge = errors.New("dnszone: bad ACME challenge")

// challengeSet maps canonical owner names to their TXT values (sorted,
// unique). A set is never changed once published.
type challengeSet map[string][]string

// records returns the TXT records of the challenges that lie in origin.
// A nil set has none.
func (c *challengeSet) records(origin string) []dns.RR {
	if c == nil {
		return nil
	}
	origin = dns.CanonicalName(origin)
	var out []dns.RR
	for _, name := range slices.Sorted(maps.Keys(*c)) {
		if !dns.IsSubDomain(origin, name) {
			continue
		}
		for _, v := range (*c)[name] {
			out = append(out, &dns.TXT{
				Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ChallengeTTL},
				Txt: []string{v},
			})
		}
	}
	return out
}

// SetChallenge publishes values as the TXT RRset of fqdn, replacing what
// was there; an empty values clears it. fqdn must be
// "_acme-challenge.<host>" inside one of the authority's zones (A or B).
// The snapshot of the current rotation step is rebuilt and installed before
// SetChallenge returns, so the next query sees the records.
func (a *Authority) SetChallenge(fqdn string, values []string) error {
	name, vals, err := a.CheckChallenge(fqdn, values)
	if err != nil {
		return err
	}
	return a.updateChallenges(func(next challengeSet) error {
		if len(vals) == 0 {
			delete(next, name)
			return nil
		}
		if _, ok := next[name]; !ok && len(next) >= maxChallengeNames {
			return fmt.Errorf("%w: more than %d names published", ErrChallenge, maxChallengeNames)
		}
		next[name] = vals
		return nil
	})
}

// ClearChallenge removes the challenge records of fqdn. Clearing a name
// that has none is not an error.
func (a *Authority) ClearChallenge(fqdn string) error {
	name, err := a.challengeName(fqdn)
	if err != nil {
		return err
	}
	return a.updateChallenges(func(next challengeSet) error {
		delete(next, name)
		return nil
	})
}

// ReplaceChallenges publishes exactly set (owner name → TXT values) as the
// challenge records, as a node loads them from the store shared by several
// nodes (cluster.Challenges). The zones are rebuilt only when the set
// differs from what is published; changed says whether it did. A name or
// value that SetChallenge would refuse is left out and named in the error;
// the rest is published all the same.
func (a *Authority) ReplaceChallenges(set map[string][]string) (changed bool, err error) {
	next := challengeSet{}
	var bad []error
	for fqdn, values := range set {
		name, vals, err := a.CheckChallenge(fqdn, values)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		if len(vals) == 0 {
			continue
		}
		if _, ok := next[name]; !ok && len(next) >= maxChallengeNames {
			bad = append(bad, fmt.Errorf("%w: more than %d names published", ErrChallenge, maxChallengeNames))
			continue
		}
		next[name] = slices.Compact(slices.Sorted(slices.Values(append(next[name], vals...))))
	}
	if cur := a.challenges.Load(); (cur == nil && len(next) == 0) || (cur != nil && maps.EqualFunc(*cur, next, slices.Equal)) {
		return false, errors.Join(bad...)
	}
	err = a.updateChallenges(func(c challengeSet) error {
		clear(c)
		maps.Copy(c, next)
		return nil
	})
	return err == nil, errors.Join(append(bad, err)...)
}

// Challenges returns a copy of the published challenges, owner name →
// TXT values (for diagnostics and tests).
func (a *Authority) Challenges() map[string][]string {
	out := map[string][]string{}
	if c := a.challenges.Load(); c != nil {
		for k, v := range *c {
			out[k] = slices.Clone(v)
		}
	}
	return out
}

// updateChallenges applies change to a copy of the challenge set and
// installs it with a rebuilt snapshot of the current step; on failure the
// old set and snapshot stay.
func (a *Authority) updateChallenges(change func(challengeSet) error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.challenges.Load()
	next := challengeSet{}
	if old != nil {
		maps.Copy(next, *old)
	}
	if err := change(next); err != nil {
		return err
	}
	a.challenges.Store(&next)
	s, err := a.build(a.current.Load().Step)
	if err != nil {
		a.challenges.Store(old)
		return fmt.Errorf("%w: rebuilding the zones: %w", ErrChallenge, err)
	}
	a.current.Store(s)
	return nil
}

// CheckChallenge checks a challenge as SetChallenge does, without
// publishing it, and returns the name in canonical form and the values
// sorted and each once (for a publisher that stores them first: a node
// sharing them through the store, cluster.Challenges).
func (a *Authority) CheckChallenge(fqdn string, values []string) (string, []string, error) {
	name, err := a.challengeName(fqdn)
	if err != nil {
		return "", nil, err
	}
	vals, err := challengeValues(values)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s: %w", ErrChallenge, name, err)
	}
	return name, vals, nil
}

// challengeName checks fqdn and returns it in canonical form.
func (a *Authority) challengeName(fqdn string) (string, error) {
	if _, ok := dns.IsDomainName(fqdn); !ok || fqdn == "" {
		return "", fmt.Errorf("%w: %q is not a domain name", ErrChallenge, fqdn)
	}
	name := dns.CanonicalName(fqdn)
	if first, _, _ := strings.Cut(name, "."); first != ChallengeLabel {
		return "", fmt.Errorf("%w: %s does not start with %s", ErrChallenge, name, ChallengeLabel)
	}
	for _, spec := range a.specs {
		if dns.IsSubDomain(dns.CanonicalName(spec.Origin), name) {
			return name, nil
		}
	}
	return "", fmt.Errorf("%w: %s lies in none of our zones", ErrChallenge, name)
}

// challengeValues checks the TXT values and returns them sorted and
// without duplicates (an RRset holds no duplicate records, RFC 2181 §5).
// A DNS-01 value is a base64url SHA-256 digest (43 characters); any
// visible ASCII text that fits one TXT character-string (RFC 1035 §3.3.14)
// is accepted, except quotes and backslashes, which the presentation form
// of miekg/dns would read as escapes.
func challengeValues(values []string) ([]string, error) {
	out := slices.Clone(values)
	for _, v := range out {
		if v == "" || len(v) > 255 {
			return nil, fmt.Errorf("TXT value of %d octets (1..255)", len(v))
		}
		for _, c := range []byte(v) {
			if c <= ' ' || c > '~' || c == '"' || c == '\\' {
				return nil, fmt.Errorf("TXT value %q has a character outside visible ASCII or a quote or backslash", v)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}
