package dnssec

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxCachedSignatures bounds the signature cache. The test zones have a few
// dozen RRsets (times the MX rotation orders), so the bound is only reached
// if something is wrong; the cache is then dropped and refilled.
const maxCachedSignatures = 4096

// Signer signs RRsets of one zone with its key and caches the signatures.
// It is safe for concurrent use.
type Signer struct {
	key      *Key
	validity time.Duration // lifetime of a new signature
	refresh  time.Duration // re-sign when less than this remains
	backdate time.Duration // inception this far in the past, for skewed clocks

	mu    sync.RWMutex
	cache map[string]*dns.RRSIG
}

// NewSigner returns a signer that makes signatures valid from now-backdate to
// now+validity and replaces them once less than refresh remains, so a
// resolver never caches a signature that expires under it (RFC 4035 §5.3.3
// caps cached TTLs by the signature's expiration).
func NewSigner(key *Key, validity, refresh, backdate time.Duration) *Signer {
	return &Signer{key: key, validity: validity, refresh: refresh, backdate: backdate, cache: map[string]*dns.RRSIG{}}
}

// Key returns the signing key.
func (s *Signer) Key() *Key { return s.key }

// Sign returns an RRSIG over rrset, which must be one non-empty RRset (same
// owner, class and type). The returned record is shared: callers must not
// modify it.
func (s *Signer) Sign(now time.Time, rrset []dns.RR) (*dns.RRSIG, error) {
	if len(rrset) == 0 {
		return nil, fmt.Errorf("dnssec: signing an empty RRset")
	}
	id := rrsetID(rrset)
	s.mu.RLock()
	sig, ok := s.cache[id]
	s.mu.RUnlock()
	if ok && fresh(sig, now, s.refresh) {
		return sig, nil
	}

	h := rrset[0].Header()
	sig = &dns.RRSIG{
		Hdr:        dns.RR_Header{Name: h.Name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: h.Ttl},
		Algorithm:  s.key.DNSKEY.Algorithm,
		KeyTag:     s.key.KeyTag(),
		SignerName: s.key.DNSKEY.Hdr.Name,
		Inception:  uint32(now.Add(-s.backdate).Unix()),
		Expiration: uint32(now.Add(s.validity).Unix()),
	}
	if err := sig.Sign(s.key.private, rrset); err != nil {
		return nil, fmt.Errorf("dnssec: signing %s/%s: %w", h.Name, dns.TypeToString[h.Rrtype], err)
	}
	s.mu.Lock()
	if len(s.cache) >= maxCachedSignatures {
		s.cache = map[string]*dns.RRSIG{}
	}
	s.cache[id] = sig
	s.mu.Unlock()
	return sig, nil
}

func fresh(sig *dns.RRSIG, now time.Time, refresh time.Duration) bool {
	// Serial arithmetic is not needed: our own signatures are never near
	// the 2106 wrap of a uint32 timestamp.
	exp := time.Unix(int64(sig.Expiration), 0)
	inc := time.Unix(int64(sig.Inception), 0)
	return now.After(inc) && exp.Sub(now) > refresh
}

// rrsetID identifies an RRset by its content, TTL included (the TTL is
// signed as the RRSIG's original TTL, RFC 4034 §3.1.4). A change of content,
// as in each MX rotation, therefore yields a new signature.
func rrsetID(rrset []dns.RR) string {
	var b strings.Builder
	for _, rr := range rrset {
		b.WriteString(rr.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// Corrupt returns a copy of sig whose signature bytes are altered, so that
// it fails validation while looking well-formed. It exists for the persona
// with deliberately broken DNSSEC (DESIGN.md §4) and for tests.
func Corrupt(sig *dns.RRSIG) *dns.RRSIG {
	c := dns.Copy(sig).(*dns.RRSIG)
	b := []byte(c.Signature)
	// Flip a character of the base64 text in the middle; 'A' and 'B' are
	// both valid base64, so the record still parses.
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	c.Signature = string(b)
	return c
}
