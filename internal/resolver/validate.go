package resolver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnssec"
)

// ErrBogus is returned for answers under a trust anchor whose DNSSEC does
// not validate: what a validating resolver answers with SERVFAIL.
var ErrBogus = fmt.Errorf("%w: DNSSEC validation failed", ErrServFail)

// Trust anchors let the resolver validate answers itself, for zones whose
// DS it is given (RFC 4035 §5). It is used where no validating resolver is
// at hand — `mailsec demo` asks mailsec's own authoritative server and
// checks every answer against zone A's and B's keys — and supports exactly
// what those zones need: the anchor is the zone apex (no delegations below
// it), algorithm 13, NSEC denial (RFC 4035 §5.4). Answers outside the
// anchored zones are insecure.

type anchor struct {
	zone string
	ds   *dns.DS
	mu   sync.Mutex
	keys []*dns.DNSKEY // validated DNSKEY RRset
	exp  time.Time
}

// WithTrustAnchors returns a copy of r that validates answers under the
// zones of the given DS records itself, instead of reading the AD bit.
func (r *Resolver) WithTrustAnchors(ds ...*dns.DS) *Resolver {
	c := *r
	c.anchors = nil
	for _, d := range ds {
		c.anchors = append(c.anchors, &anchor{zone: dns.CanonicalName(d.Hdr.Name), ds: d})
	}
	return &c
}

// anchorFor returns the anchor whose zone contains name, or nil.
func (r *Resolver) anchorFor(name string) *anchor {
	name = dns.CanonicalName(name)
	for _, a := range r.anchors {
		if dns.IsSubDomain(a.zone, name) {
			return a
		}
	}
	return nil
}

// validate checks the answer m to name/qtype against anchor a: every RRset
// must carry a valid signature by the zone's key, and a negative answer
// must be proven by signed NSEC records.
func (r *Resolver) validate(ctx context.Context, a *anchor, name string, qtype uint16, m *dns.Msg, now time.Time) error {
	keys, err := r.zoneKeys(ctx, a, now)
	if err != nil {
		return err
	}
	if err := verifySection(m.Answer, keys, a.zone, now); err != nil {
		return fmt.Errorf("%w: answer: %v", ErrBogus, err)
	}
	if err := verifySection(m.Ns, keys, a.zone, now); err != nil {
		return fmt.Errorf("%w: authority: %v", ErrBogus, err)
	}
	if err := provenExpansions(m.Answer, m.Ns); err != nil {
		return fmt.Errorf("%w: answer: %v", ErrBogus, err)
	}
	name = dns.CanonicalName(name)
	hasAnswer := false
	for _, rr := range m.Answer {
		h := rr.Header()
		if dns.CanonicalName(h.Name) == name && (h.Rrtype == qtype || h.Rrtype == dns.TypeCNAME) {
			hasAnswer = true
		}
	}
	switch {
	case m.Rcode == dns.RcodeSuccess && hasAnswer:
		return nil
	case m.Rcode == dns.RcodeSuccess:
		if provesNoData(m.Ns, name, qtype) {
			return nil
		}
		return fmt.Errorf("%w: NODATA for %s without an NSEC proof", ErrBogus, name)
	case m.Rcode == dns.RcodeNameError:
		if provesNXDomain(m.Ns, name, a.zone) {
			return nil
		}
		return fmt.Errorf("%w: NXDOMAIN for %s without an NSEC proof", ErrBogus, name)
	}
	return nil
}

// zoneKeys returns the zone's DNSKEY RRset, fetched and validated against
// the DS on first use and cached for its TTL.
func (r *Resolver) zoneKeys(ctx context.Context, a *anchor, now time.Time) ([]*dns.DNSKEY, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.keys != nil && now.Before(a.exp) {
		return a.keys, nil
	}
	m, err := r.exchange(ctx, a.zone, dns.TypeDNSKEY)
	if err != nil {
		return nil, err
	}
	var keys []*dns.DNSKEY
	var set []dns.RR
	var sigs []*dns.RRSIG
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.DNSKEY:
			keys = append(keys, v)
			set = append(set, v)
		case *dns.RRSIG:
			if v.TypeCovered == dns.TypeDNSKEY {
				sigs = append(sigs, v)
			}
		}
	}
	// RFC 4035 §5.2: a DNSKEY matching the DS must sign the DNSKEY RRset.
	for _, k := range keys {
		ds := k.ToDS(a.ds.DigestType)
		if ds == nil || !strings.EqualFold(ds.Digest, a.ds.Digest) || k.KeyTag() != a.ds.KeyTag {
			continue
		}
		for _, sig := range sigs {
			if sig.KeyTag == k.KeyTag() && sig.Verify(k, set) == nil && sig.ValidityPeriod(now) {
				a.keys = keys
				ttl := time.Duration(set[0].Header().Ttl) * time.Second
				a.exp = now.Add(min(ttl, time.Minute))
				return keys, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: no DNSKEY of %s matches the trust anchor and signs the key set", ErrBogus, a.zone)
}

// verifySection checks that every RRset of the section (RRSIGs aside) has
// a valid signature by one of keys, made by the zone itself.
func verifySection(rrs []dns.RR, keys []*dns.DNSKEY, zone string, now time.Time) error {
	type setKey struct {
		name string
		t    uint16
	}
	sets := map[setKey][]dns.RR{}
	var order []setKey
	var sigs []*dns.RRSIG
	for _, rr := range rrs {
		h := rr.Header()
		if sig, ok := rr.(*dns.RRSIG); ok {
			sigs = append(sigs, sig)
			continue
		}
		if h.Rrtype == dns.TypeOPT {
			continue
		}
		k := setKey{dns.CanonicalName(h.Name), h.Rrtype}
		if _, seen := sets[k]; !seen {
			order = append(order, k)
		}
		sets[k] = append(sets[k], rr)
	}
	for _, k := range order {
		ok := false
		for _, sig := range sigs {
			if sig.TypeCovered != k.t || dns.CanonicalName(sig.Hdr.Name) != k.name || dns.CanonicalName(sig.SignerName) != zone {
				continue
			}
			for _, key := range keys {
				if key.KeyTag() == sig.KeyTag && sig.Verify(key, sets[k]) == nil && sig.ValidityPeriod(now) {
					ok = true
				}
			}
		}
		if !ok {
			return fmt.Errorf("%s/%s has no valid signature", k.name, dns.TypeToString[k.t])
		}
	}
	return nil
}

// provenExpansions checks the RRsets signed as a wildcard's expansion
// (the RRSIG has fewer labels than its owner name, RFC 4034 §3.1.3): one
// is valid only with an NSEC, in the verified authority section, proving
// that its owner name does not exist (RFC 4035 §5.3.4). Without that
// check a signed wildcard record could be replayed as the data of any
// name below the wildcard's parent, names that exist included. (With no
// delegations below the anchor, the covering NSEC is the whole proof.)
func provenExpansions(answer, auth []dns.RR) error {
	for _, rr := range answer {
		sig, ok := rr.(*dns.RRSIG)
		if !ok {
			continue
		}
		owner := dns.CanonicalName(sig.Hdr.Name)
		if int(sig.Labels) >= dns.CountLabel(owner) {
			continue
		}
		if !slices.ContainsFunc(nsecs(auth), func(n *dns.NSEC) bool { return covers(n, owner) }) {
			return fmt.Errorf("%s/%s is a wildcard expansion without proof that the name does not exist",
				owner, dns.TypeToString[sig.TypeCovered])
		}
	}
	return nil
}

func nsecs(rrs []dns.RR) []*dns.NSEC {
	var out []*dns.NSEC
	for _, rr := range rrs {
		if n, ok := rr.(*dns.NSEC); ok {
			out = append(out, n)
		}
	}
	return out
}

// covers tells whether NSEC n proves that name does not exist: it sorts
// strictly between the owner and the next name (RFC 4035 §5.4), the last
// NSEC's span wrapping round to the apex.
func covers(n *dns.NSEC, name string) bool {
	owner, next := dns.CanonicalName(n.Hdr.Name), dns.CanonicalName(n.NextDomain)
	after := dnssec.CompareCanonical(owner, name) < 0
	before := dnssec.CompareCanonical(name, next) < 0
	if dnssec.CompareCanonical(owner, next) >= 0 { // last in the chain
		return after || before
	}
	return after && before
}

// provesNoData: the name's own NSEC lacks the type (and CNAME), or the name
// is an empty non-terminal: an NSEC covers it and its next name lies below
// it (RFC 4035 §3.1.3.1, §3.1.3.2).
func provesNoData(auth []dns.RR, name string, qtype uint16) bool {
	for _, n := range nsecs(auth) {
		if dns.CanonicalName(n.Hdr.Name) == name {
			for _, t := range n.TypeBitMap {
				if t == qtype || t == dns.TypeCNAME {
					return false
				}
			}
			return true
		}
		if covers(n, name) && dns.IsSubDomain(name, dns.CanonicalName(n.NextDomain)) {
			return true
		}
	}
	return false
}

// provesNXDomain: an NSEC covers the name and one covers the wildcard at
// the closest encloser (RFC 4035 §3.1.3.2). The closest encloser is the
// longest ancestor of the name that an NSEC shows to exist (its owner, or
// an ancestor of its next name); the apex at worst.
func provesNXDomain(auth []dns.RR, name, zone string) bool {
	ns := nsecs(auth)
	coveredName := false
	ce := zone
	for _, n := range ns {
		if covers(n, name) {
			coveredName = true
		}
		for _, existing := range []string{dns.CanonicalName(n.Hdr.Name), dns.CanonicalName(n.NextDomain)} {
			for p := existing; dns.IsSubDomain(zone, p); p = parentName(p) {
				if dns.IsSubDomain(p, name) && p != name && dns.CountLabel(p) > dns.CountLabel(ce) {
					ce = p
				}
				if p == zone {
					break
				}
			}
		}
	}
	if !coveredName {
		return false
	}
	wild := "*." + ce
	for _, n := range ns {
		if covers(n, wild) {
			return true
		}
	}
	return false
}

func parentName(name string) string {
	off, end := dns.NextLabel(name, 0)
	if end {
		return "."
	}
	return name[off:]
}

// exchange sends one DO query and returns the answer, retrying over TCP
// when truncated.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, true)
	m.AuthenticatedData = true // RFC 6840 §5.7: ask for the AD bit
	in, err := r.exchangeUDP(ctx, m)
	if err == nil && in.Truncated {
		c := &dns.Client{Net: "tcp", Timeout: r.timeout}
		in, _, err = c.ExchangeContext(ctx, m, r.addr.String())
	}
	if err != nil {
		return nil, fmt.Errorf("resolver: %s %s: %w", name, dns.TypeToString[qtype], err)
	}
	return in, nil
}
