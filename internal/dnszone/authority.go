package dnszone

import (
	"bufio"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnssec"
)

// Authority is the set of test zones the service is authoritative for, with
// their signers. Zone A changes at every MX rotation step; Authority builds
// the snapshot of a step once, on first use, and hands the same immutable
// snapshot to every query of that step.
type Authority struct {
	specs    []TestZoneSpec
	signers  []*dnssec.Signer // nil entry: zone unsigned
	rotation time.Duration

	current atomic.Pointer[Snapshot]
	mu      sync.Mutex // serialises rebuilds
	// challenges are the ACME challenge records every snapshot carries
	// (challenge.go); replaced, never changed, under mu.
	challenges atomic.Pointer[challengeSet]
}

// Snapshot is the state of every zone during one rotation step.
type Snapshot struct {
	Step  int64
	Zones []*SignedZone
}

// SignedZone is a zone snapshot with the signer of its zone.
type SignedZone struct {
	*Zone
	Signer *dnssec.Signer // nil if the zone is not signed
}

// NewAuthority builds the authority for specs; signers[i] signs specs[i]
// (nil for an unsigned zone). The rotation interval is that of zone A.
func NewAuthority(specs []TestZoneSpec, signers []*dnssec.Signer, rotation time.Duration, now time.Time) (*Authority, error) {
	if len(specs) != len(signers) {
		return nil, fmt.Errorf("dnszone: %d zones but %d signers", len(specs), len(signers))
	}
	a := &Authority{specs: specs, signers: signers, rotation: rotation}
	s, err := a.build(RotationStep(now, rotation))
	if err != nil {
		return nil, err
	}
	a.current.Store(s)
	return a, nil
}

// Snapshot returns the zones as they are at time now.
func (a *Authority) Snapshot(now time.Time) *Snapshot {
	step := RotationStep(now, a.rotation)
	if s := a.current.Load(); s.Step == step {
		return s
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s := a.current.Load(); s.Step == step {
		return s
	}
	s, err := a.build(step)
	if err != nil {
		// The content is the same as at start-up apart from the MX
		// order, which cannot fail to build; keep serving the last good
		// snapshot rather than nothing.
		return a.current.Load()
	}
	a.current.Store(s)
	return s
}

// Step returns the snapshot of rotation step s without installing it (for
// dumps and tests).
func (a *Authority) Step(s int64) (*Snapshot, error) { return a.build(s) }

// Rotation returns the MX rotation interval.
func (a *Authority) Rotation() time.Duration { return a.rotation }

func (a *Authority) build(step int64) (*Snapshot, error) {
	s := &Snapshot{Step: step}
	ch := a.challenges.Load()
	for i, spec := range a.specs {
		z, err := buildTestZone(spec, step, ch.records(spec.Origin))
		if err != nil {
			return nil, fmt.Errorf("zone %s: %w", spec.Origin, err)
		}
		s.Zones = append(s.Zones, &SignedZone{Zone: z, Signer: a.signers[i]})
	}
	return s, nil
}

// Find returns the zone that qname lies in, or nil. The test zones are
// never nested (config.Validate), so the first match is the only one.
func (s *Snapshot) Find(qname string) *SignedZone {
	for _, z := range s.Zones {
		if z.Contains(qname) {
			return z
		}
	}
	return nil
}

// Sign returns the RRset followed by its RRSIG (or only the RRset if the
// zone is unsigned), as served: the RRSIG of an owner listed as broken is
// corrupted.
func (z *SignedZone) Sign(now time.Time, rrset []dns.RR) ([]dns.RR, error) {
	return z.sign(now, rrset, true)
}

func (z *SignedZone) sign(now time.Time, rrset []dns.RR, injectFaults bool) ([]dns.RR, error) {
	if z.Signer == nil || len(rrset) == 0 {
		return rrset, nil
	}
	signed := rrset
	if rrset[0] == dns.RR(z.negSOA) {
		// The SOA of a negative answer is the apex SOA with a lower TTL
		// (RFC 2308 §3): it carries the apex SOA's signature, whose
		// original TTL stays that of the RRset (RFC 4034 §3.1.4), served
		// with the lowered TTL (RFC 4034 §3: an RRSIG's TTL is that of
		// the RRset it covers).
		signed = []dns.RR{z.soa}
	}
	sig, err := z.Signer.Sign(now, signed)
	if err != nil {
		return nil, err
	}
	if h := rrset[0].Header(); sig.Hdr.Ttl != h.Ttl {
		sig = dns.Copy(sig).(*dns.RRSIG)
		sig.Hdr.Ttl = h.Ttl
	}
	if injectFaults && z.brokenRRset(rrset) {
		sig = dnssec.Corrupt(sig)
	}
	out := make([]dns.RR, 0, len(rrset)+1)
	out = append(out, rrset...)
	return append(out, sig), nil
}

// brokenRRset tells whether rrset is served with a corrupted signature.
// Only the data of a broken owner is bogus. Its NSEC stays valid: it also
// proves the absence of unrelated names that sort after it.
func (z *SignedZone) brokenRRset(rrset []dns.RR) bool {
	h := rrset[0].Header()
	return h.Rrtype != dns.TypeNSEC && z.SignatureBroken(h.Name)
}

// Dump writes the zone in presentation format, every RRset followed by its
// RRSIG, NSEC records included, so that independent tools
// (ldns-verify-zone, named-checkzone, Knot) can load and verify it.
//
// The dump is the zone as published, with valid signatures throughout: the
// broken hosts' corrupted signatures are a fault injected when answering,
// noted in a comment. With asServed, the dump shows them corrupted, as a
// resolver receives them.
func (z *SignedZone) Dump(w io.Writer, now time.Time, asServed bool) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "$ORIGIN %s\n", z.Origin())
	for _, set := range z.RRsets() {
		if z.Signer != nil && z.brokenRRset(set) {
			state := "valid below; served corrupted (dump -as-served shows it)"
			if asServed {
				state = "corrupted below, as served"
			}
			fmt.Fprintf(bw, "; %s %s: signature deliberately broken (dnssec.broken_hosts): %s\n",
				set[0].Header().Name, dns.TypeToString[set[0].Header().Rrtype], state)
		}
		signed, err := z.sign(now, set, asServed)
		if err != nil {
			return err
		}
		for _, rr := range signed {
			fmt.Fprintln(bw, rr.String())
		}
	}
	return bw.Flush()
}
