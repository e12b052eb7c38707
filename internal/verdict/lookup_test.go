package verdict

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// TestDANEOnlySettledOnLookup: a dane-only sender that refused B on its
// TLSA look-up (Postfix never connects to B) is dane-only in the attempt
// that showed its DANE checks toward A, without waiting for quiet; the
// look-up must ask for DNSSEC, be the slot's B host's, be LookupGrace old,
// and no connection to B may follow it. Final then need not wait for
// quiet once A's mail was accepted.
func TestDANEOnlySettledOnLookup(t *testing.T) {
	s := sim{policy: PolicyDANEOnly, toA: true, toB: true, client: "192.0.2.1",
		reached: []column{colPlainWindow, col3, col4, col5, col6}}
	conns, _ := s.history()
	now := lastStart(conns).Add(2 * time.Second) // the attempt has just ended: not quiet
	lookup := store.DNSQuery{Time: t0.Add(-time.Second), Client: netip.MustParseAddrPort("198.51.100.53:5353"), Name: bTLSAName, Type: tlsaType, DO: true, Rcode: 3}
	obs := func(qs ...store.DNSQuery) Observations {
		return Observations{Connections: conns, Now: now, Quiet: 10 * time.Minute, DNSLookups: qs, BTLSANames: []string{bTLSAName, bTCPName}}
	}

	v := Judge(obs(lookup))
	if v.Policy != PolicyDANEOnly || !v.Complete || !v.SettledOnLookup {
		t.Fatalf("with the look-up: %s complete=%v settled=%v: %s", v.Policy, v.Complete, v.SettledOnLookup, v.Why)
	}
	// Unbound minimises query names: it asks for _tcp.mx7.… (type A),
	// whose NXDOMAIN denies the TLSA name (RFC 8020).
	minimised := lookup
	minimised.Name, minimised.Type = bTCPName, 1
	if v := Judge(obs(minimised)); !v.SettledOnLookup || v.Policy != PolicyDANEOnly {
		t.Fatalf("minimised look-up: %s settled=%v: %s", v.Policy, v.SettledOnLookup, v.Why)
	}
	aOfHost := lookup
	aOfHost.Name, aOfHost.Type = "mx7.s001.b.example.", 1
	// Without it the same history waits for quiet.
	if v := Judge(obs()); v.Complete || v.SettledOnLookup {
		t.Fatalf("without a look-up: %s complete=%v: %s", v.Policy, v.Complete, v.Why)
	}
	noDO := lookup
	noDO.DO = false
	otherName := lookup
	otherName.Name = "_25._tcp.mx7.s002.b.example."
	tooNew := lookup
	tooNew.Time = now.Add(-LookupGrace + time.Millisecond)
	for name, q := range map[string]store.DNSQuery{"without DO": noDO, "another slot's": otherName, "within the grace": tooNew, "the host's address": aOfHost} {
		if v := Judge(obs(q)); v.SettledOnLookup || v.Complete {
			t.Errorf("%s: %s complete=%v settled=%v", name, v.Policy, v.Complete, v.SettledOnLookup)
		}
	}
	// A connection to B after the look-up that delivered: not refused.
	withB := append([]store.SMTPConnection(nil), conns...)
	withB = append(withB, store.SMTPConnection{ID: 99, Client: netip.MustParseAddrPort("192.0.2.1:40000"), Started: lastStart(conns), Ended: lastStart(conns).Add(time.Second),
		Persona: 7, CertPersona: 7, SNI: "mx7.s001.b.example", TLSVersion: "TLS 1.3", STARTTLSOffered: true, State: store.StateMail, EHLO: "mta.example.org"})
	o := obs(lookup)
	o.Connections = withB
	if v := Judge(o); v.Policy == PolicyDANEOnly || v.SettledOnLookup {
		t.Fatalf("delivered to B after the look-up: %s settled=%v: %s", v.Policy, v.SettledOnLookup, v.Why)
	}

	// The acknowledgement of A's mail: 250 once B was refused on its
	// look-up, 451 (collecting evidence) without the look-up.
	// (mx5 not reached yet: the persona rules alone would ask for
	// another attempt, as in the lab's retest.)
	partial, _ := sim{policy: PolicyDANEOnly, toA: true, toB: true, client: "192.0.2.1",
		reached: []column{colPlainWindow, col3, col4, col6}}.history()
	ackIn := AckInput{Zone: 1, Now: lastStart(partial).Add(time.Second), History: partial, AckAfter: 10 * time.Minute,
		DNSLookups: []store.DNSQuery{lookup}, BTLSANames: []string{bTLSAName, bTCPName}}
	if a := Acknowledge(ackIn); !a.Accept {
		t.Errorf("B refused on its look-up: %+v", a)
	}
	ackIn.DNSLookups = nil
	if a := Acknowledge(ackIn); a.Accept {
		t.Errorf("without the look-up: %+v", a)
	}

	// Final: at once once A's mail was accepted, not before.
	test := store.Test{ID: "t", Created: t0.Add(-time.Minute), State: store.TestOpen}
	in := FinalInput{Test: test, Connections: conns, Verdict: v, Now: now, Quiet: 10 * time.Minute, Expiry: 48 * time.Hour}
	if Final(in) {
		t.Error("final before A's mail was accepted")
	}
	in.Test.State, in.Test.Acked = store.TestAcked, lastStart(conns)
	if !Final(in) {
		t.Error("not final although A was accepted and B refused on its look-up")
	}
	in.Verdict.SettledOnLookup = false
	if Final(in) {
		t.Error("final before quiet without the look-up")
	}
}

// TestNotDANEAwareOnLookups: a sender done whose resolver looked up the
// test's names but never a TLSA record does not validate DANE (likely);
// the same history without look-ups leaves it to the connections
// (unknown where personas 3-5 were not all seen); a TLSA look-up of B's
// host alone is DANE-awareness.
func TestNotDANEAwareOnLookups(t *testing.T) {
	s := sim{policy: PolicyVerify, toA: true, toB: true, client: "192.0.2.1", reached: []column{colPlainWindow, col6, col7TLS}}
	conns, _ := s.history()
	now := lastStart(conns).Add(time.Hour)
	o := Observations{Connections: conns, Now: now, Quiet: 10 * time.Minute, DNSLookups: s.lookups(), BTLSANames: []string{bTLSAName, bTCPName}}
	if f := fact(t, Judge(o), FactValidatesDANE); f.Value || f.Confidence != Likely || !contains(f.Why, "never a TLSA record") {
		t.Errorf("with look-ups and no TLSA: %+v", f)
	}
	o.DNSLookups = nil
	if f := fact(t, Judge(o), FactValidatesDANE); f.Confidence != Unknown {
		t.Errorf("without look-ups: %+v", f)
	}
	o.DNSLookups = []store.DNSQuery{{Time: t0, Name: bTCPName, Type: 1, DO: true, Rcode: 3}}
	if f := fact(t, Judge(o), FactValidatesDANE); f.Confidence != Unknown {
		t.Errorf("with B's TLSA look-up (minimised): %+v", f)
	}
	o.DNSLookups, o.Now = s.lookups(), lastStart(conns).Add(time.Second) // not quiet yet
	if f := fact(t, Judge(o), FactValidatesDANE); f.Confidence != Unknown {
		t.Errorf("before the sender is done: %+v", f)
	}
}

// TestMissingTLSALookUpNeverBeatsDANE: for every history of the DANE
// policies (every subset of the places the sender went, quiet or not),
// the same look-ups with the TLSA queries missing — a shared resolver's
// cache answered them, or the query log dropped them — never make "validates
// DANE" contradict a verdict whose policy implies it.
func TestMissingTLSALookUpNeverBeatsDANE(t *testing.T) {
	checked := 0
	for _, p := range []Policy{PolicyDANE, PolicyDANEOnly, PolicyDANEMTASTS} {
		for _, dest := range [][2]bool{{true, true}, {true, false}, {false, true}} {
			for mask := 0; mask < 1<<numColumns; mask++ {
				s := sim{policy: p, toA: dest[0], toB: dest[1], reached: reachedOf(mask), client: "192.0.2.1"}
				conns, fetches := s.history()
				var lookups []store.DNSQuery
				for _, q := range s.lookups() {
					if q.Type != tlsaType {
						lookups = append(lookups, q)
					}
				}
				if len(lookups) == 0 {
					lookups = []store.DNSQuery{{Time: t0.Add(-time.Second), Name: "mx4.s001.a.example.", Type: 1, DO: true}}
				}
				for _, quiet := range []bool{false, true} {
					now := t0.Add(time.Hour)
					if !quiet {
						now = lastStart(conns)
					}
					v := Judge(Observations{Connections: conns, PolicyFetches: fetches, Now: now, Quiet: 10 * time.Minute,
						DNSLookups: lookups, BTLSANames: []string{bTLSAName, bTCPName}})
					checked++
					if c := factConflicts(v); len(c) > 0 {
						t.Fatalf("%+v quiet=%v: %v", s, quiet, c)
					}
				}
			}
		}
	}
	t.Logf("%d histories judged", checked)
}
