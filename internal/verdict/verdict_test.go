package verdict

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/store"
)

// designTable is DESIGN.md §2's table of expected behaviour, transcribed
// independently of the production matrix so that the tests check the
// verdict against the design, not against itself. Columns: persona 1 while
// STARTTLS is withheld, persona 1 although offered, personas 2-6, persona 7
// in plain text and over TLS. D deliver, R refuse, - never.
var designTable = map[Policy]string{
	PolicyNone:       "DD-----D-", // never TLS; plain to A and B
	PolicyMay:        "D-DDDDDDD", // delivers everywhere, TLS once offered
	PolicyEncrypt:    "R-DDDDDRD", // TLS required, nothing verified
	PolicyVerify:     "R-RRRDDRD", // PKIX required
	PolicyDANE:       "R--RDRDDD", // DANE for A; B (no TLSA): opportunistic ("deliver (may)")
	PolicyDANEOnly:   "R--RDRDRR", // DANE required everywhere
	PolicyMTASTS:     "R---RDDDD", // mx3 not in the policy; B: default level may
	PolicyDANEMTASTS: "R--RDRDDD", // footnote 3: DANE wins over MTA-STS for mx5
}

// variantTable transcribes the senders the table has no row for (the
// issue's wording, docs/verdict.md "Named behaviours"), columns as
// designTable. F: refuses the certificate, then delivers in plain text on
// the same host in the same attempt.
var variantTable = map[string]string{
	"fallback":            "D-FFFDDDD", // verifies, falls back to plain text (Exim's default): may
	"verify-when-offered": "D-RRRDDDD", // Haraka, rejectUnauthorized=true, no force_tls_hosts: may
	"overrides-dane":      "R--RDDDDD", // dane+mta-sts, MTA-STS accepting persona 5 (RFC 8461 §2): dane+mta-sts
}

// variantTruth is the policy each variant is judged as.
var variantTruth = map[string]Policy{"fallback": PolicyMay, "verify-when-offered": PolicyMay, "overrides-dane": PolicyDANEMTASTS}

// sim builds the connection history of a correct sender of a policy
// (DESIGN.md §2), or of a variant of it.
type sim struct {
	policy   Policy
	noSNI    bool     // never sends SNI: every TLS handshake lands on persona 2
	toA, toB bool     // which test addresses the mail went to
	reached  []column // columns the sender got to (nil: all it would)
	client   string
	dkim     bool
	// refuse3: an MTA-STS sender that connects to persona 3 and refuses
	// it (Postfix with postfix-mta-sts-resolver) instead of skipping it.
	refuse3 bool
	// variant: a key of variantTable (policy is then its truth).
	variant string
	// perHost: one address per MX host (the address names the persona);
	// else one shared address.
	perHost bool
	// resolver: whether the broken host is in A's MX set, and how the
	// sender's resolver treats it: noBrokenHost (the host is not
	// deployed), validating (its look-up fails validation: never
	// connected), nonValidating (connected first, answered 421).
	resolver resolverKind
	// v6: whether the IPv6-only host is in A's MX set, and whether the
	// sender delivers over IPv6: noIPv6Host, ipv6Sender (connects to it
	// first in its walk toward A, from its IPv6 address, answered 421),
	// ipv4Only (looks up its A record, NODATA, goes on).
	v6 ipv6Kind
}

// ipv6Kind is the IPv6-only-host column of the simulated sender.
type ipv6Kind int

const (
	noIPv6Host ipv6Kind = iota
	ipv6Sender
	ipv4Only
)

// v6HostAddr and v6HostName are the IPv6-only host's address and name in
// the simulated test's slot; v6Client is the IPv6 sender's own address.
var (
	v6HostAddr = netip.MustParseAddr("fd00::6:1")
	v6Client   = netip.MustParseAddrPort("[fd00::1]:40000")
)

const v6HostName = "mx-v6.s001.a.example."

// resolverKind is the broken-host column of the simulated sender.
type resolverKind int

const (
	noBrokenHost resolverKind = iota
	validating
	nonValidating
)

// brokenAddr and brokenName are the broken host's address and its name
// in the simulated test's slot.
var brokenAddr = netip.MustParseAddr("127.0.0.29")

const brokenName = "broken.s001.a.example."

// towardA tells whether the simulated sender got to any of A's hosts.
func (s sim) towardA() bool {
	if !s.toA {
		return false
	}
	conns, _ := s.history()
	return slices.ContainsFunc(conns, func(c store.SMTPConnection) bool {
		return c.Persona != 7 && c.Local.Addr() != brokenAddr && c.Local.Addr() != v6HostAddr
	})
}

func (s sim) history() ([]store.SMTPConnection, []store.PolicyFetch) {
	var row [numColumns]expect
	const eFallback expect = "fallback"
	cells := designTable[s.policy]
	if s.variant != "" {
		cells = variantTable[s.variant]
	}
	for i, c := range cells {
		row[i] = map[rune]expect{'D': eDeliver, 'R': eRefuse, '-': eNever, 'F': eFallback}[c]
	}
	if s.refuse3 && s.policy == PolicyMTASTS {
		row[col3] = eRefuse
	}
	var out []store.SMTPConnection
	var fetches []store.PolicyFetch
	at := t0
	id := int64(0)
	client := netip.AddrPortFrom(netip.MustParseAddr(s.client), 40000)
	add := func(col column) {
		e := row[col]
		if s.noSNI {
			// Without SNI, personas 3-6 are out of reach; A's TLS lands
			// on 2, B's on 7 after persona 2's certificate.
			switch col {
			case col3, col4, col5, col6:
				return
			case col2:
				// As for any persona with a self-signed certificate.
				e = row[col3]
			}
		} else if col == col2 {
			return // with SNI, persona 2 is never reached
		}
		if e == eNever || e == eAny {
			return
		}
		if s.reached != nil && !slices.Contains(s.reached, col) {
			return
		}
		switch col {
		case col7Plain, col7TLS:
			if !s.toB {
				return
			}
		default:
			if !s.toA {
				return
			}
		}
		id++
		c := store.SMTPConnection{ID: id, Client: client, Started: at, EHLO: "mta.example.org", State: store.StateNone,
			Local: netip.MustParseAddrPort("127.0.0.1:25")}
		at = at.Add(30 * time.Second)
		if s.perHost {
			// The window's plain session lands on whichever host comes
			// first; B and the TLS personas on their own.
			host := map[column]byte{colPlainWindow: 4, colPlainOffer: 4, col2: 2, col3: 3, col4: 4, col5: 5, col6: 6, col7Plain: 7, col7TLS: 7}[col]
			c.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, host}), 25)
		}
		fallback := e == eFallback
		if fallback {
			e = eRefuse
		}
		switch col {
		case colPlainWindow:
			c.Persona = 1
		case colPlainOffer:
			c.Persona, c.STARTTLSOffered = 1, true
		case col7Plain:
			c.Persona = 7
		default:
			c.STARTTLSOffered, c.TLSVersion, c.State = true, "TLS 1.3", store.StateTLSStarted
			n := map[column]int{col2: 2, col3: 3, col4: 4, col5: 5, col6: 6, col7TLS: 7}[col]
			c.Persona, c.CertPersona = n, n
			if !s.noSNI {
				c.SNI = fmt.Sprintf("mx%d.a.example", n)
			}
			if col == col7TLS && s.noSNI {
				c.CertPersona = 2
			}
			if e == eRefuse && col != col7TLS {
				// Refused during the handshake: only the ClientHello.
				c.State, c.TLSVersion = store.StateSniSeen, ""
			}
		}
		if e == eDeliver {
			c.State = store.StateMail
			if col == col7TLS || col == col7Plain {
				c.Persona = 7
			}
			c.MailFrom = "sender@example.org"
			if s.dkim {
				c.Signatures = []store.Signature{{Type: "dkim", Domain: "example.org", Result: "pass"}}
			}
		} else if col == col7TLS {
			// Refused B's certificate: no recipient known, persona as served.
			c.State, c.TLSVersion, c.Persona = store.StateSniSeen, "", c.CertPersona
		}
		c.Ended = c.Started.Add(time.Second)
		out = append(out, c)
		if fallback {
			// Straight after the refused handshake, on the same host:
			// plain text, STARTTLS offered and not used, delivered.
			id++
			out = append(out, store.SMTPConnection{ID: id, Client: client, Local: c.Local, Started: c.Ended, Ended: c.Ended.Add(time.Second),
				EHLO: "mta.example.org", STARTTLSOffered: true, Persona: 1, State: store.StateMail, MailFrom: "sender@example.org"})
		}
	}
	if usesMTASTS(s.policy) && s.toA {
		fetches = append(fetches, store.PolicyFetch{Time: t0, Client: client, Path: "/.well-known/mta-sts.txt", Status: 200})
	}
	for col := range numColumns {
		add(col)
	}
	if s.resolver == nonValidating && slices.ContainsFunc(out, func(c store.SMTPConnection) bool { return c.Persona != 7 }) {
		// Toward A it tries the most preferred host first, the broken
		// one, whose address its resolver handed out: answered 421
		// before the greeting, nothing more.
		id++
		out = append([]store.SMTPConnection{{ID: id, Client: client, Local: netip.AddrPortFrom(brokenAddr, 25),
			Started: t0.Add(-500 * time.Millisecond), Ended: t0.Add(-500 * time.Millisecond), State: store.StateNone,
			Reply: "421 4.3.2 try the next MX host"}}, out...)
	}
	if s.v6 == ipv6Sender && slices.ContainsFunc(out, func(c store.SMTPConnection) bool { return c.Persona != 7 && c.Local.Addr() != brokenAddr }) {
		// Then the IPv6-only host, ranked after the broken one, over
		// IPv6 from its own IPv6 address: answered 421 before the
		// greeting, nothing more.
		id++
		out = append(out, store.SMTPConnection{ID: id, Client: v6Client, Local: netip.AddrPortFrom(v6HostAddr, 25),
			Started: t0.Add(-400 * time.Millisecond), Ended: t0.Add(-400 * time.Millisecond), State: store.StateNone,
			Reply: "421 4.4.3 this host only tests IPv6 reachability: try the next MX host"})
	}
	return out, fetches
}

// bTLSAName is the TLSA name of B's host in the simulated test's slot,
// bTCPName the name above it that a resolver minimising query names asks.
const (
	bTLSAName = "_25._tcp.mx7.s001.b.example."
	bTCPName  = "_tcp.mx7.s001.b.example."
)

// lookups are the DNS look-ups of the simulated sender's resolver for the
// test's slot, before every connection of the history: every sender going
// toward A looks up an MX host's address; a DANE sender (RFC 7672 §2.2)
// also its TLSA record, and, going toward B, the TLSA record of B's host,
// with the DO bit, before it connects there; a dane sender then connects
// (B has no TLSA: opportunistic TLS), a dane-only one does not deliver.
// Other senders do not look up TLSA.
func (s sim) lookups() []store.DNSQuery {
	dane := s.policy == PolicyDANE || s.policy == PolicyDANEOnly || s.policy == PolicyDANEMTASTS
	reached := func(cols ...column) bool {
		return s.reached == nil || slices.ContainsFunc(cols, func(c column) bool { return slices.Contains(s.reached, c) })
	}
	q := func(name string, qtype uint16, rcode int) store.DNSQuery {
		return store.DNSQuery{Time: t0.Add(-time.Second), Client: netip.MustParseAddrPort("198.51.100.53:5353"), Name: name, Type: qtype, DO: true, Rcode: rcode}
	}
	var out []store.DNSQuery
	if s.toA && reached(colPlainWindow, colPlainOffer, col2, col3, col4, col5, col6) {
		switch s.resolver {
		case validating:
			out = append(out, q(brokenName, 1, 2)) // SERVFAIL: bogus
		case nonValidating:
			b := q(brokenName, 1, 0)
			b.DO = false
			out = append(out, b)
		}
		switch s.v6 {
		case ipv6Sender:
			out = append(out, q(v6HostName, dns.TypeAAAA, 0))
		case ipv4Only:
			out = append(out, q(v6HostName, dns.TypeA, 0)) // NODATA
		}
		out = append(out, q("mx4.s001.a.example.", 1, 0))
		if dane {
			out = append(out, q("_25._tcp.mx4.s001.a.example.", tlsaType, 0))
		}
	}
	if dane && s.toB && reached(col7Plain, col7TLS) {
		out = append(out, q(bTLSAName, tlsaType, 3))
	}
	return out
}

func judge(s sim, quiet bool) Verdict {
	conns, fetches := s.history()
	now := t0.Add(time.Hour)
	q := 10 * time.Minute
	if !quiet {
		now = lastStart(conns)
	}
	obs := Observations{Connections: conns, PolicyFetches: fetches, Now: now, Quiet: q,
		DNSLookups: s.lookups(), BTLSANames: []string{bTLSAName, bTCPName}}
	if s.resolver != noBrokenHost {
		obs.BrokenHostAddrs, obs.BrokenHostNames = []netip.Addr{brokenAddr}, []string{brokenName}
	}
	if s.v6 != noIPv6Host {
		obs.IPv6HostAddrs, obs.IPv6HostNames = []netip.Addr{netip.MustParseAddr("fd00::6:0"), v6HostAddr}, []string{v6HostName}
	}
	return Judge(obs)
}

// TestJudgeFullMatrix: a correct sender of each policy that went
// everywhere it would is recognised, with SNI, and to A and B.
func TestJudgeFullMatrix(t *testing.T) {
	for _, p := range Candidates {
		t.Run(string(p), func(t *testing.T) {
			v := judge(sim{policy: p, toA: true, toB: true, client: "192.0.2.1", dkim: true}, true)
			if v.Policy != p || !v.Complete {
				t.Fatalf("verdict %s (complete %v), want %s: %s\nseen %v candidates %v", v.Policy, v.Complete, p, v.Why, v.Seen, v.Candidates)
			}
			for _, f := range v.Facts {
				if f.Confidence == Proven && len(f.Evidence) == 0 && f.Name != FactAppliesMTASTS && f.Name != FactSignsDKIM && f.Name != FactSignsARC {
					t.Errorf("fact %q proven without evidence", f.Name)
				}
			}
		})
	}
}

// TestJudgeNeverWrong is the exhaustive property: for every policy, with
// and without SNI, to A and/or B, and for every subset of the places the
// sender would go (a sender that gives up early, tries only the first MX,
// ...), the verdict never names another policy as settled, and the true
// policy is always among the candidates.
func TestJudgeNeverWrong(t *testing.T) {
	checked := 0
	for _, p := range Candidates {
		for _, noSNI := range []bool{false, true} {
			if noSNI && p != PolicyNone && p != PolicyMay && p != PolicyEncrypt && p != PolicyVerify {
				continue // DANE and MTA-STS senders always send SNI
			}
			for _, dest := range [][2]bool{{true, true}, {true, false}, {false, true}} {
				for _, refuse3 := range []bool{false, true} {
					if refuse3 && p != PolicyMTASTS {
						continue
					}
					for mask := 0; mask < 1<<numColumns; mask++ {
						s := sim{policy: p, noSNI: noSNI, toA: dest[0], toB: dest[1], reached: reachedOf(mask), client: "192.0.2.1", refuse3: refuse3}
						for _, quiet := range []bool{false, true} {
							v := judge(s, quiet)
							checked++
							checkProperties(t, s, quiet, v)
							if !slices.Contains(v.Candidates, p) && v.Policy != PolicyUnknown {
								t.Fatalf("%+v quiet=%v: true policy %s eliminated (%s)", s, quiet, p, v.Why)
							}
							if v.Policy != p && v.Policy != PolicyUnknown {
								t.Fatalf("%+v quiet=%v: named %s, truth %s: %s", s, quiet, v.Policy, p, v.Why)
							}
							// A single candidate whose claim no connection
							// showed stays unknown (never a false secure).
							if v.Complete && v.Policy != p && len(v.Candidates) == 1 && !strings.Contains(v.Why, "before showing") {
								t.Fatalf("%+v: settled on %s, truth %s: %s", s, v.Policy, p, v.Why)
							}
							if v.Complete && v.Policy != p && !quiet {
								t.Fatalf("%+v: complete with %s before the sender went quiet, truth %s", s, v.Policy, p)
							}
							if v.SettledOnLookup && (v.Policy != PolicyDANEOnly || p != PolicyDANEOnly) {
								t.Fatalf("%+v quiet=%v: settled on a look-up as %s, truth %s: %s", s, quiet, v.Policy, p, v.Why)
							}
						}
					}
				}
			}
		}
	}
	t.Logf("%d histories judged", checked)
}

func reachedOf(mask int) []column {
	var reached []column
	for col := range numColumns {
		if mask&(1<<col) != 0 {
			reached = append(reached, col)
		}
	}
	return reached
}

// expectedBehaviours is the named behaviours a simulated sender's history
// holds, from how it was generated: the patterns of docs/verdict.md
// "Named behaviours", written without the production code.
func expectedBehaviours(s sim) []string {
	if s.variant == "" || !s.toA {
		return nil
	}
	reached := func(c column) bool { return s.reached == nil || slices.Contains(s.reached, c) }
	switch s.variant {
	case "fallback":
		if reached(col3) || reached(col4) {
			return []string{BehaviourPlainFallback}
		}
	case "verify-when-offered":
		if reached(colPlainWindow) && (reached(col3) || reached(col4)) {
			return []string{BehaviourVerifyWhenOffered}
		}
	case "overrides-dane":
		// It fetched the policy (every MTA-STS sender does here): 4 and
		// 5 delivered are the violation, with or without 3 refused.
		if reached(col4) && reached(col5) {
			return []string{BehaviourMTASTSOverridesDANE}
		}
	}
	return nil
}

// checkProperties holds for every judged history: the facts never
// contradict the verdict; a named behaviour appears exactly when its
// pattern is in the history; a plain-text behaviour is judged may (never
// verify, never inconsistent); the RFC 8461 §2 violation is judged
// dane+mta-sts with the facts saying so.
func checkProperties(t *testing.T, s sim, quiet bool, v Verdict) {
	t.Helper()
	if c := factConflicts(v); len(c) > 0 {
		t.Fatalf("%+v quiet=%v: facts disagree with the verdict %s: %v", s, quiet, v.Policy, c)
	}
	var names []string
	for _, b := range v.Behaviours {
		names = append(names, b.Name)
		if len(b.Evidence) == 0 || b.Text == "" {
			t.Fatalf("%+v: behaviour without evidence or text: %+v", s, b)
		}
	}
	if want := expectedBehaviours(s); !slices.Equal(names, want) {
		t.Fatalf("%+v quiet=%v: behaviours %v, want %v (%s)", s, quiet, names, want, v.Why)
	}
	if v.Behaviours == nil {
		t.Fatalf("%+v: behaviours nil (the JSON key must be a list)", s)
	}
	for _, b := range v.Behaviours {
		switch b.Name {
		case BehaviourPlainFallback, BehaviourVerifyWhenOffered:
			if v.Policy != PolicyMay || !v.Complete {
				t.Fatalf("%+v quiet=%v: %s judged %s (complete %v): %s", s, quiet, b.Name, v.Policy, v.Complete, v.Why)
			}
			f := fact(t, v, FactEnforcesEncryption)
			if f.Confidence != Unknown && f.Value || b.Name == BehaviourPlainFallback && (f.Value || f.Confidence != Proven) {
				t.Fatalf("%+v: %s beside %+v", s, b.Name, f)
			}
		case BehaviourMTASTSOverridesDANE:
			if v.Policy != PolicyDANEMTASTS {
				t.Fatalf("%+v quiet=%v: %s judged %s: %s", s, quiet, b.Name, v.Policy, v.Why)
			}
			f := fact(t, v, FactRespectsRFC8461S2)
			if f.Value || f.Confidence != Proven || len(f.Evidence) == 0 {
				t.Fatalf("%+v: RFC 8461 §2 fact %+v", s, f)
			}
			if d := fact(t, v, FactValidatesDANE); d.Value && d.Caveat == "" {
				t.Fatalf("%+v: unqualified DANE fact beside the violation: %+v", s, d)
			}
		}
	}
}

// TestJudgeNamedBehaviours is the exhaustive test of the senders the
// table has no row for: for each, in both layouts (one shared address,
// one address per MX host), to A and/or B, for every subset of the places
// it would go, mid-way and once quiet, the verdict is the variant's
// policy or unknown — never another policy, never inconsistent — and the
// properties of checkProperties hold.
func TestJudgeNamedBehaviours(t *testing.T) {
	checked, named := 0, 0
	for _, variant := range []string{"fallback", "verify-when-offered", "overrides-dane"} {
		truth := variantTruth[variant]
		for _, perHost := range []bool{false, true} {
			for _, dest := range [][2]bool{{true, true}, {true, false}, {false, true}} {
				for mask := 0; mask < 1<<numColumns; mask++ {
					s := sim{policy: truth, variant: variant, perHost: perHost, toA: dest[0], toB: dest[1], reached: reachedOf(mask), client: "192.0.2.1"}
					for _, quiet := range []bool{false, true} {
						v := judge(s, quiet)
						checked++
						checkProperties(t, s, quiet, v)
						if len(v.Behaviours) > 0 {
							named++
						}
						if v.Policy != truth && v.Policy != PolicyUnknown {
							t.Fatalf("%+v quiet=%v: named %s, truth %s: %s\nseen %v", s, quiet, v.Policy, truth, v.Why, v.Seen)
						}
						if v.Policy != PolicyUnknown && !slices.Contains(v.Candidates, truth) {
							t.Fatalf("%+v quiet=%v: truth %s eliminated: %s", s, quiet, truth, v.Why)
						}
					}
				}
			}
		}
	}
	t.Logf("%d histories judged, %d with a named behaviour", checked, named)
}

func TestJudgeSpecialSenders(t *testing.T) {
	t.Run("verify without SNI", func(t *testing.T) {
		v := judge(sim{policy: PolicyVerify, noSNI: true, toA: true, toB: true, client: "192.0.2.1"}, true)
		if v.Policy != PolicyVerify {
			t.Fatalf("verdict %s: %s (%v)", v.Policy, v.Why, v.Candidates)
		}
		f := fact(t, v, FactSendsSNI)
		if f.Value || f.Confidence != Proven || f.Why == "" || !contains(f.Why, "no SNI") {
			t.Fatalf("SNI fact %+v", f)
		}
	})
	t.Run("bounces after the first refused STARTTLS", func(t *testing.T) {
		s := sim{policy: PolicyDANE, toA: true, toB: true, reached: []column{colPlainWindow}, client: "192.0.2.1"}
		v := judge(s, true)
		if f := fact(t, v, FactEnforcesEncryption); !f.Value || f.Confidence != Proven {
			t.Fatalf("encryption fact %+v", f)
		}
		if slices.Contains(v.Candidates, PolicyMay) || slices.Contains(v.Candidates, PolicyNone) {
			t.Fatalf("candidates %v", v.Candidates)
		}
		conns, _ := s.history()
		refused := []int64{conns[0].ID}
		// Quiet for obs.Quiet since the refusal: no retry, likely.
		if f := fact(t, v, FactRetries); f.Value || f.Confidence != Likely || !slices.Equal(f.Evidence, refused) || !contains(f.Why, "after the refused STARTTLS") {
			t.Fatalf("retry fact once quiet %+v", f)
		}
		// Before that: still unknown.
		if f := fact(t, judge(s, false), FactRetries); f.Confidence != Unknown {
			t.Fatalf("retry fact mid-way %+v", f)
		}
		// The sender is known to be done: no retry, proven.
		done := Judge(Observations{Connections: conns, Now: lastStart(conns), SenderDone: true})
		if f := fact(t, done, FactRetries); f.Value || f.Confidence != Proven || !slices.Equal(f.Evidence, refused) || !contains(f.Why, "gave up") {
			t.Fatalf("retry fact once done %+v", f)
		}
		// A retry after all: yes, whatever else is known.
		retried, _ := sim{policy: PolicyDANE, toA: true, reached: []column{colPlainWindow, col4}, client: "192.0.2.1"}.history()
		if f := fact(t, Judge(Observations{Connections: retried, SenderDone: true}), FactRetries); !f.Value || f.Confidence != Proven {
			t.Fatalf("retry fact after a retry %+v", f)
		}
	})
	t.Run("IPv6 and DKIM", func(t *testing.T) {
		v := judge(sim{policy: PolicyMay, toA: true, toB: true, client: "2001:db8::25", dkim: true}, true)
		if f := fact(t, v, FactUsesIPv6); !f.Value || f.Confidence != Proven {
			t.Fatalf("IPv6 fact %+v", f)
		}
		if f := fact(t, v, FactSignsDKIM); !f.Value || len(f.Evidence) == 0 {
			t.Fatalf("DKIM fact %+v", f)
		}
	})
	t.Run("a DKIM signature that fails is no signature", func(t *testing.T) {
		conns, _ := sim{policy: PolicyMay, toA: true, toB: true, client: "192.0.2.1", dkim: true}.history()
		for i := range conns {
			for j := range conns[i].Signatures {
				conns[i].Signatures[j] = store.Signature{Type: "dkim", Domain: "example.org", Selector: "sel1", Result: "fail", Reason: "body hash mismatch"}
			}
		}
		f := fact(t, Judge(Observations{Connections: conns, SenderDone: true}), FactSignsDKIM)
		if f.Value || f.Confidence != Proven || len(f.Evidence) == 0 || f.Why != "DKIM: fail (d=example.org, s=sel1): body hash mismatch" {
			t.Fatalf("DKIM fact of a failing signature %+v", f)
		}
		// One passing signature beside a failing one: signed.
		conns[len(conns)-1].Signatures = append(conns[len(conns)-1].Signatures, store.Signature{Type: "dkim", Domain: "example.org", Selector: "sel2", Result: "pass"})
		f = fact(t, Judge(Observations{Connections: conns, SenderDone: true}), FactSignsDKIM)
		if !f.Value || f.Why != "DKIM: pass (d=example.org, s=sel2)" {
			t.Fatalf("DKIM fact with one passing signature %+v", f)
		}
	})
	t.Run("delivered to persona 3 is never dane or mta-sts", func(t *testing.T) {
		conns := []store.SMTPConnection{{ID: 1, Persona: 3, CertPersona: 3, SNI: "mx3.a.example", TLSVersion: "TLS 1.3",
			STARTTLSOffered: true, State: store.StateMail, MailFrom: "a@b", Started: t0}}
		v := Judge(Observations{Connections: conns, PolicyFetches: []store.PolicyFetch{{Time: t0}}, Now: t0.Add(time.Hour), Quiet: time.Minute})
		for _, p := range []Policy{PolicyDANE, PolicyDANEOnly, PolicyMTASTS, PolicyDANEMTASTS} {
			if v.Policy == p || slices.Contains(v.Candidates, p) {
				t.Fatalf("%s still possible after a delivery to persona 3: %v", p, v.Candidates)
			}
		}
		if v.Policy != PolicyInconsistent {
			t.Fatalf("delivery to 3 plus a policy fetch: want inconsistent, got %s", v.Policy)
		}
	})
	t.Run("dane-only never contacts B: settled by SentToB once done", func(t *testing.T) {
		// A real dane-only sender does not even connect to B (securely no
		// TLSA): nothing is recorded for B.
		conns, _ := sim{policy: PolicyDANEOnly, toA: true, client: "192.0.2.1"}.history()
		open := Judge(Observations{Connections: conns, Now: lastStart(conns)})
		if open.Complete || !slices.Contains(open.Candidates, PolicyDANE) || !slices.Contains(open.Candidates, PolicyDANEOnly) {
			t.Fatalf("without knowing about B: %s %v", open.Policy, open.Candidates)
		}
		done := Judge(Observations{Connections: conns, Now: lastStart(conns), SenderDone: true, SentToB: true})
		if done.Policy != PolicyDANEOnly || !done.Complete {
			t.Fatalf("sender done, mail for B never delivered: %s (%s)", done.Policy, done.Why)
		}
		dane, _ := sim{policy: PolicyDANE, toA: true, toB: true, client: "192.0.2.1"}.history()
		if v := Judge(Observations{Connections: dane, SenderDone: true, SentToB: true}); v.Policy != PolicyDANE {
			t.Fatalf("a dane sender that delivered to B: %s (%s)", v.Policy, v.Why)
		}
	})
	t.Run("several client addresses", func(t *testing.T) {
		// A provider's MTAs take turns: the verdict depends on what was
		// done, not from where.
		conns, fetches := sim{policy: PolicyMTASTS, toA: true, toB: true, client: "192.0.2.1"}.history()
		for i := range conns {
			conns[i].Client = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), 25)
		}
		v := Judge(Observations{Connections: conns, PolicyFetches: fetches, SenderDone: true})
		if v.Policy != PolicyMTASTS {
			t.Fatalf("%s: %s", v.Policy, v.Why)
		}
		if !ClientMatches(netip.MustParseAddr("192.0.2.200"), conns, 24, 48) || ClientMatches(netip.MustParseAddr("198.51.100.1"), conns, 24, 48) {
			t.Fatal("a fetch from the senders' /24 must count, one from elsewhere not")
		}
	})
	t.Run("MTA-STS sender that refuses persona 3 (Postfix)", func(t *testing.T) {
		v := judge(sim{policy: PolicyMTASTS, toA: true, toB: true, client: "192.0.2.1", refuse3: true}, true)
		if v.Policy != PolicyMTASTS {
			t.Fatalf("%s: %s", v.Policy, v.Why)
		}
	})
	t.Run("delivers to 4, 5, 6 and refuses 3: MTA-STS overrides DANE", func(t *testing.T) {
		// The sender, without a policy fetch seen: today's
		// inconsistent plus an unqualified "validates DANE".
		conns, _ := sim{policy: PolicyDANEMTASTS, variant: "overrides-dane", toA: true, toB: true, client: "192.0.2.1"}.history()
		v := Judge(Observations{Connections: conns, SenderDone: true, SentToB: true})
		if v.Policy != PolicyDANEMTASTS || !v.Complete || !hasBehaviour(v.Behaviours, BehaviourMTASTSOverridesDANE) {
			t.Fatalf("%s %v %v: %s", v.Policy, v.Candidates, v.Behaviours, v.Why)
		}
		var p5 []int64
		for _, c := range conns {
			if c.Persona == 5 {
				p5 = append(p5, c.ID)
			}
		}
		if f := fact(t, v, FactRespectsRFC8461S2); f.Value || f.Confidence != Proven || !slices.Equal(f.Evidence, p5) {
			t.Fatalf("RFC 8461 §2 fact %+v, want false, proven, persona 5 (%v)", f, p5)
		}
		if f := fact(t, v, FactValidatesDANE); !f.Value || f.Caveat == "" || !contains(f.Caveat, "persona 5") {
			t.Fatalf("DANE fact %+v", f)
		}
		if f := fact(t, v, FactAppliesMTASTS); f.Confidence != Unknown || !contains(f.Why, "does not change the verdict dane+mta-sts") {
			t.Fatalf("MTA-STS fact beside a final dane+mta-sts: %+v", f)
		}
		if c := factConflicts(v); c != nil {
			t.Fatal(c)
		}
	})
	t.Run("plain fallback on B without SNI, one shared address", func(t *testing.T) {
		// No SNI: B's handshake shows persona 2's certificate and, with no
		// recipient yet, is recorded as persona 2; the plain session that
		// follows names B's recipient: persona 7, STARTTLS offered.
		local := netip.MustParseAddrPort("127.0.0.1:25")
		conns := []store.SMTPConnection{
			{ID: 1, Local: local, Started: t0, Ended: t0.Add(time.Second), EHLO: "x", Persona: 1, State: store.StateMail, MailFrom: "a@b"},
			{ID: 2, Local: local, Started: t0.Add(5 * time.Minute), Ended: t0.Add(5*time.Minute + time.Second), EHLO: "x", STARTTLSOffered: true,
				Persona: 2, CertPersona: 2, State: store.StateSniSeen},
			{ID: 3, Local: local, Started: t0.Add(5*time.Minute + time.Second), Ended: t0.Add(5*time.Minute + 2*time.Second), EHLO: "x", STARTTLSOffered: true,
				Persona: 7, State: store.StateMail, MailFrom: "a@b"},
		}
		v := Judge(Observations{Connections: conns, SenderDone: true})
		if v.Policy != PolicyMay || !hasBehaviour(v.Behaviours, BehaviourPlainFallback) {
			t.Fatalf("%s %v: %s", v.Policy, v.Behaviours, v.Why)
		}
		if b := v.Behaviours[0]; !slices.Equal(b.Evidence, []int64{2, 3}) {
			t.Fatalf("evidence %v", b.Evidence)
		}
	})
	t.Run("plain fallback: same host, same attempt", func(t *testing.T) {
		at := func(s int) time.Time { return t0.Add(10*time.Minute + time.Duration(s)*time.Second) }
		mx3, mx4 := netip.MustParseAddrPort("127.0.0.3:25"), netip.MustParseAddrPort("127.0.0.4:25")
		refused := store.SMTPConnection{ID: 1, Local: mx3, Started: at(0), Ended: at(1), EHLO: "x", STARTTLSOffered: true,
			Persona: 3, CertPersona: 3, SNI: "mx3.a.example", State: store.StateSniSeen}
		plain := func(local netip.AddrPort, start time.Time) store.SMTPConnection {
			return store.SMTPConnection{ID: 2, Local: local, Started: start, Ended: start.Add(time.Second), EHLO: "x", STARTTLSOffered: true,
				Persona: 1, State: store.StateMail, MailFrom: "a@b"}
		}
		for _, c := range []struct {
			name  string
			plain store.SMTPConnection
			want  bool
		}{
			{"same address, next second", plain(mx3, at(1)), true},
			{"another host's address", plain(mx4, at(1)), false},
			{"a later attempt", plain(mx3, at(600)), false},
			{"STARTTLS not offered", func() store.SMTPConnection {
				c := plain(mx3, at(1))
				c.STARTTLSOffered, c.Persona = false, 7
				return c
			}(), false},
		} {
			v := Judge(Observations{Connections: []store.SMTPConnection{refused, c.plain}, SenderDone: true})
			if got := hasBehaviour(v.Behaviours, BehaviourPlainFallback); got != c.want {
				t.Errorf("%s: fallback named %v, want %v (%s: %s)", c.name, got, c.want, v.Policy, v.Why)
			}
			if c.want && v.Policy != PolicyMay {
				t.Errorf("%s: %s, want may", c.name, v.Policy)
			}
			// Not seen in the downgrade window: the fallback alone shows
			// that it does not enforce encryption.
			if f := fact(t, v, FactEnforcesEncryption); c.want && (f.Value || f.Confidence != Proven || !slices.Equal(f.Evidence, []int64{2})) {
				t.Errorf("%s: encryption fact %+v", c.name, f)
			}
		}
	})
	t.Run("no fallback after a refused plain session", func(t *testing.T) {
		// The downgrade window ends between two sessions: the first
		// refused without STARTTLS, the second offered it and went on in
		// plain text. No TLS failed; that is none's behaviour, not a
		// fallback.
		local := netip.MustParseAddrPort("127.0.0.1:25")
		conns := []store.SMTPConnection{
			{ID: 1, Local: local, Started: t0, Ended: t0.Add(time.Second), EHLO: "x", Persona: 1, State: store.StateNone},
			{ID: 2, Local: local, Started: t0.Add(time.Second), Ended: t0.Add(2 * time.Second), EHLO: "x", STARTTLSOffered: true,
				Persona: 1, State: store.StateMail, MailFrom: "a@b"},
		}
		if v := Judge(Observations{Connections: conns, SenderDone: true}); len(v.Behaviours) > 0 {
			t.Fatalf("%v: %s", v.Behaviours, v.Why)
		}
	})
	t.Run("plain fallback after a failed DANE validation", func(t *testing.T) {
		// Persona 5's CA certificate passes PKIX; its TLSA record matches
		// nothing. A DANE sender that then goes on in plain text on the
		// same host is no better than may.
		mx5 := netip.MustParseAddrPort("127.0.0.5:25")
		conns := []store.SMTPConnection{
			{ID: 1, Local: mx5, Started: t0, Ended: t0.Add(time.Second), EHLO: "x", STARTTLSOffered: true,
				Persona: 5, CertPersona: 5, SNI: "mx5.a.example", State: store.StateSniSeen},
			{ID: 2, Local: mx5, Started: t0.Add(time.Second), Ended: t0.Add(2 * time.Second), EHLO: "x", STARTTLSOffered: true,
				Persona: 1, State: store.StateMail, MailFrom: "a@b"},
		}
		v := Judge(Observations{Connections: conns, SenderDone: true})
		if v.Policy != PolicyMay || !hasBehaviour(v.Behaviours, BehaviourPlainFallback) {
			t.Fatalf("%s %v: %s", v.Policy, v.Behaviours, v.Why)
		}
	})
	t.Run("plain fallback although it fetched the MTA-STS policy", func(t *testing.T) {
		conns, _ := sim{policy: PolicyMay, variant: "fallback", toA: true, client: "192.0.2.1"}.history()
		v := Judge(Observations{Connections: conns, PolicyFetches: []store.PolicyFetch{{Time: t0}}, SenderDone: true})
		if v.Policy != PolicyMay || !v.Complete {
			t.Fatalf("%s: %s", v.Policy, v.Why)
		}
		if f := fact(t, v, FactAppliesMTASTS); f.Value && f.Caveat == "" {
			t.Fatalf("MTA-STS fact without caveat beside plain text: %+v", f)
		}
	})
	t.Run("final dane with DANE not seen directly says why", func(t *testing.T) {
		v := judge(sim{policy: PolicyDANE, toA: true, toB: true, reached: []column{colPlainWindow, col4, col6, col7Plain}, client: "192.0.2.1"}, true)
		if v.Policy != PolicyDANE {
			t.Fatalf("%s: %s", v.Policy, v.Why)
		}
		if f := fact(t, v, FactValidatesDANE); f.Confidence != Unknown || !contains(f.Why, "does not change the verdict dane") {
			t.Fatalf("DANE fact %+v", f)
		}
	})
	t.Run("nothing seen", func(t *testing.T) {
		if v := Judge(Observations{Now: t0}); v.Policy != PolicyUnknown || v.Complete {
			t.Fatalf("%+v", v)
		}
	})
}

func fact(t *testing.T, v Verdict, name string) Fact {
	t.Helper()
	for _, f := range v.Facts {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no fact %q in %+v", name, v.Facts)
	return Fact{}
}

func contains(s, sub string) bool {
	return len(s) >= len(sub) && (s == sub || len(sub) == 0 || indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// FuzzJudge feeds random observation sequences: the verdict never panics,
// never settles on a DANE or MTA-STS policy for a sender that delivered to
// persona 3, and never claims a proven fact without evidence (policy
// fetches and signatures are their own evidence).
func FuzzJudge(f *testing.F) {
	f.Add(uint64(1), uint8(5))
	f.Add(uint64(42), uint8(20))
	f.Fuzz(func(t *testing.T, seed uint64, n uint8) {
		r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
		states := []store.ConnState{store.StateNone, store.StateSniSeen, store.StateTLSStarted, store.StateMail, store.StateAcked}
		var conns []store.SMTPConnection
		for i := range int(n) % 40 {
			c := store.SMTPConnection{ID: int64(i + 1), Persona: r.IntN(9), CertPersona: r.IntN(8),
				State: states[r.IntN(len(states))], STARTTLSOffered: r.IntN(2) == 0,
				Started: t0.Add(time.Duration(r.IntN(3600)) * time.Second)}
			if r.IntN(2) == 0 {
				c.TLSVersion = "TLS 1.3"
			}
			if r.IntN(2) == 0 {
				c.SNI = "mx4.a.example"
			}
			if r.IntN(2) == 0 {
				c.EHLO = "x"
			}
			if c.State.Rank() >= store.StateMail.Rank() {
				c.MailFrom = "a@b"
			}
			if r.IntN(4) == 0 {
				c.Client = netip.MustParseAddrPort("[2001:db8::1]:25")
			}
			c.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + r.IntN(3))}), 25) // 127.0.0.3: the broken host's
			if r.IntN(8) == 0 {
				c.Local = netip.AddrPortFrom(v6HostAddr, 25) // the IPv6-only host's
			}
			c.Ended = c.Started.Add(time.Duration(r.IntN(3)) * time.Second)
			conns = append(conns, c)
		}
		var fetches []store.PolicyFetch
		if r.IntN(3) == 0 {
			fetches = append(fetches, store.PolicyFetch{Time: t0})
		}
		obs := Observations{Connections: conns, PolicyFetches: fetches, Now: t0.Add(2 * time.Hour), Quiet: time.Minute}
		if r.IntN(2) == 0 {
			obs.BrokenHostAddrs = []netip.Addr{netip.MustParseAddr("127.0.0.3")}
		}
		if r.IntN(2) == 0 {
			obs.IPv6HostAddrs, obs.IPv6HostNames = []netip.Addr{v6HostAddr}, []string{v6HostName}
		}
		if r.IntN(3) == 0 {
			// Look-ups of the slot's names, with or without a TLSA query
			// (a shared resolver's cache may have answered it).
			obs.DNSLookups = []store.DNSQuery{{Time: t0.Add(-time.Second), Name: "mx4.s001.a.example.", Type: 1, DO: true}}
			if r.IntN(2) == 0 {
				obs.DNSLookups = append(obs.DNSLookups, store.DNSQuery{Time: t0.Add(-time.Second), Name: "_25._tcp.mx4.s001.a.example.", Type: tlsaType, DO: true})
			}
		}
		v := Judge(obs)
		if slices.ContainsFunc(conns, func(c store.SMTPConnection) bool { return slices.Contains(obs.IPv6HostAddrs, c.Local.Addr()) }) {
			// Connected to the IPv6-only host: it delivers over IPv6.
			if f := fact(t, v, FactUsesIPv6); !f.Value || f.Confidence != Proven {
				t.Fatalf("connected to the IPv6-only host, %q: %+v", FactUsesIPv6, f)
			}
		} else if f := fact(t, v, FactUsesIPv6); f.Confidence != Unknown && !f.Value && slices.ContainsFunc(conns, func(c store.SMTPConnection) bool { return c.Client.Addr().Is6() }) {
			t.Fatalf("connected over IPv6, %q: %+v", FactUsesIPv6, f)
		}
		if slices.ContainsFunc(conns, func(c store.SMTPConnection) bool { return slices.Contains(obs.BrokenHostAddrs, c.Local.Addr()) }) {
			// Connected to the broken host: its resolver does not validate.
			if f := fact(t, v, FactValidatesDNSSEC); f.Value || f.Confidence != Proven {
				t.Fatalf("connected to the broken host, %q: %+v", FactValidatesDNSSEC, f)
			}
		}
		delivered3 := false
		for _, c := range conns {
			col, d, ok := classify(c)
			// Connections to the broken host and the IPv6-only host are
			// no persona's.
			delivered3 = delivered3 || (ok && col == col3 && d && !slices.Contains(obs.BrokenHostAddrs, c.Local.Addr()) && !slices.Contains(obs.IPv6HostAddrs, c.Local.Addr()))
		}
		if delivered3 {
			switch v.Policy {
			case PolicyDANE, PolicyDANEOnly, PolicyMTASTS, PolicyDANEMTASTS:
				t.Fatalf("verdict %s for a sender that delivered to persona 3", v.Policy)
			}
		}
		if c := factConflicts(v); c != nil {
			t.Fatalf("facts disagree with %s: %v", v.Policy, c)
		}
		for _, b := range v.Behaviours {
			if plainClass(b.Name) && v.Policy != PolicyMay {
				t.Fatalf("%s judged %s", b.Name, v.Policy)
			}
		}
		for _, fct := range v.Facts {
			if fct.Confidence == Proven && len(fct.Evidence) == 0 {
				switch fct.Name {
				case FactAppliesMTASTS, FactSignsDKIM, FactSignsARC:
					// their evidence is the fetch or the mails themselves
				default:
					t.Fatalf("fact %q proven without evidence: %+v", fct.Name, fct)
				}
			}
		}
	})
}

// TestNoFetchIsNoDANEEvidence: a sender done after refusing plain text in
// the window and delivering to persona 6 and to B in plain text, with no
// policy fetch, is not "dane": no connection tested DANE (personas 4, 5),
// so the missing fetch cannot decide between dane and mta-sts. With
// persona 4 delivered (DANE-valid, self-signed) it is dane.
func TestNoFetchIsNoDANEEvidence(t *testing.T) {
	// An MTA-STS-like sender without the fetch: Haraka with
	// force_tls_hosts for A.
	history := func(reached ...column) []store.SMTPConnection {
		t.Helper()
		conns, _ := sim{policy: PolicyMTASTS, toA: true, toB: true, reached: reached, client: "192.0.2.1"}.history()
		return conns
	}
	v := Judge(Observations{Connections: history(colPlainWindow, col6, col7Plain), SenderDone: true})
	if v.Policy == PolicyDANE || v.Policy == PolicyDANEOnly {
		t.Fatalf("untested DANE claimed: %s (%s)", v.Policy, v.Why)
	}
	if v.Policy != PolicyUnknown || !v.Complete {
		t.Fatalf("got %s complete=%v (%s), want a final unknown", v.Policy, v.Complete, v.Why)
	}
	// Once persona 4 or 5 tells: refused 4 and delivered 5 is no DANE.
	if v := Judge(Observations{Connections: history(colPlainWindow, col4, col5, col6, col7Plain), SenderDone: true}); v.Policy == PolicyDANE || v.Policy == PolicyDANEOnly {
		t.Fatalf("with personas 4 and 5: %s (%s)", v.Policy, v.Why)
	}
	// A DANE sender without a fetch that reached persona 4 is dane.
	conns, _ := sim{policy: PolicyDANE, toA: true, toB: true, reached: []column{colPlainWindow, col4, col6, col7Plain}, client: "192.0.2.1"}.history()
	if v := Judge(Observations{Connections: conns, SenderDone: true}); v.Policy != PolicyDANE {
		t.Fatalf("dane sender at persona 4: %s (%s), want dane", v.Policy, v.Why)
	}
}

// TestClaimsNeedEvidence: a sender that remembers an earlier test (chasquid
// keeps a per-domain TLS level; its MTA-STS policy fetch is within the
// week) refuses plain text everywhere in the downgrade window and stops
// there: every weaker row is contradicted and mta-sts alone is left, but
// no certificate was tested, so the verdict is not mta-sts. Once it
// refuses persona 4's self-signed certificate, it is.
func TestClaimsNeedEvidence(t *testing.T) {
	fetch := []store.PolicyFetch{{Time: t0.Add(-time.Hour), Client: netip.MustParseAddrPort("192.0.2.1:4000"), Path: "/.well-known/mta-sts.txt", Status: 200}}
	history := func(reached ...column) []store.SMTPConnection {
		t.Helper()
		conns, _ := sim{policy: PolicyMTASTS, toA: true, toB: true, reached: reached, client: "192.0.2.1", variant: ""}.history()
		return conns
	}
	// Persona 7 in plain text refused: chasquid's remembered level for B.
	window := history(colPlainWindow)
	for i := range window {
		window[i].MailFrom = ""
	}
	b := store.SMTPConnection{ID: 99, Persona: 7, State: store.StateNone, Started: t0.Add(time.Second), Ended: t0.Add(2 * time.Second),
		EHLO: "mta.example.org", Client: netip.MustParseAddrPort("192.0.2.1:4001")}
	conns := append(window, b)
	for _, done := range []bool{false, true} {
		v := Judge(Observations{Connections: conns, PolicyFetches: fetch, SenderDone: done})
		if v.Policy != PolicyUnknown {
			t.Fatalf("done=%v: %s from refusals of plain text alone (%s)", done, v.Policy, v.Why)
		}
		if v.Complete != done {
			t.Fatalf("done=%v: complete=%v", done, v.Complete)
		}
	}
	withCert := append(history(colPlainWindow, col4, col5), b)
	if v := Judge(Observations{Connections: withCert, PolicyFetches: fetch, SenderDone: true}); v.Policy != PolicyMTASTS {
		t.Fatalf("with persona 4 refused: %s (%s), want mta-sts", v.Policy, v.Why)
	}
}

// TestJudgeDNSSECColumn is the exhaustive test of the broken-host column:
// for every policy, with and without SNI, to A and/or B, for every subset
// of the places the sender would go, mid-way and once quiet, with a
// validating and a non-validating resolver:
//   - the verdict (policy, candidates, completeness) is the one without the
//     broken host: no other verdict changes;
//   - "validates DNSSEC" is never the opposite of the truth, and is proven
//     once the sender went toward A;
//   - a non-validating sender's DANE claims are void: a DANE verdict, or
//     a "validates DANE" that holds, comes with the named behaviour and a
//     caveat; a validating sender never gets either.
func TestJudgeDNSSECColumn(t *testing.T) {
	checked := 0
	walkColumnHistories(func(base sim) {
		for _, res := range []resolverKind{validating, nonValidating} {
			s := base
			s.resolver = res
			for _, quiet := range []bool{false, true} {
				checked++
				checkDNSSECColumn(t, s, quiet, judge(base, quiet), judge(s, quiet))
			}
		}
	})
	t.Logf("%d histories judged", checked)
}

// walkColumnHistories calls f with every history of the walk the column
// tests share: every policy, with and without SNI (the policies that may
// send none), to A and/or B, for every subset of the places the sender
// would go.
func walkColumnHistories(f func(base sim)) {
	for _, p := range Candidates {
		for _, noSNI := range []bool{false, true} {
			if noSNI && p != PolicyNone && p != PolicyMay && p != PolicyEncrypt && p != PolicyVerify {
				continue
			}
			for _, dest := range [][2]bool{{true, true}, {true, false}, {false, true}} {
				for mask := 0; mask < 1<<numColumns; mask++ {
					f(sim{policy: p, noSNI: noSNI, toA: dest[0], toB: dest[1], reached: reachedOf(mask), client: "192.0.2.1"})
				}
			}
		}
	}
}

func checkDNSSECColumn(t *testing.T, s sim, quiet bool, without, v Verdict) {
	t.Helper()
	if v.Policy != without.Policy || v.Complete != without.Complete || !slices.Equal(v.Candidates, without.Candidates) || v.Attempts != without.Attempts {
		t.Fatalf("%+v quiet=%v: the broken host changed the verdict: %s %v (complete %v, %d attempts), without it %s %v (complete %v, %d attempts)",
			s, quiet, v.Policy, v.Candidates, v.Complete, v.Attempts, without.Policy, without.Candidates, without.Complete, without.Attempts)
	}
	if c := factConflicts(v); len(c) > 0 {
		t.Fatalf("%+v quiet=%v: facts disagree with the verdict %s: %v", s, quiet, v.Policy, c)
	}
	f := fact(t, v, FactValidatesDNSSEC)
	towardA := s.towardA()
	switch {
	case f.Confidence != Unknown && f.Value != (s.resolver == validating):
		t.Fatalf("%+v quiet=%v: %q is %v, truth %v: %s", s, quiet, FactValidatesDNSSEC, f.Value, s.resolver == validating, f.Why)
	case towardA && (f.Confidence != Proven || len(f.Evidence) == 0):
		t.Fatalf("%+v quiet=%v: went toward A, %q not proven: %+v", s, quiet, FactValidatesDNSSEC, f)
	case !towardA && f.Confidence != Unknown:
		t.Fatalf("%+v quiet=%v: never went toward A, %q settled: %+v", s, quiet, FactValidatesDNSSEC, f)
	}
	voided := hasBehaviour(v.Behaviours, BehaviourDANEWithoutDNSSEC)
	dane := fact(t, v, FactValidatesDANE)
	claims := daneFamily(v.Policy) || dane.Value && dane.Confidence != Unknown
	if s.resolver == nonValidating && towardA && claims && !voided {
		t.Fatalf("%+v quiet=%v: DANE claimed (%s, %+v) behind a non-validating resolver without %s", s, quiet, v.Policy, dane, BehaviourDANEWithoutDNSSEC)
	}
	if dane.Value && dane.Confidence != Unknown && s.resolver == nonValidating && towardA && !strings.Contains(dane.Caveat, "DNSSEC") {
		t.Fatalf("%+v quiet=%v: %q without the DNSSEC caveat: %+v", s, quiet, FactValidatesDANE, dane)
	}
	if voided && (s.resolver != nonValidating || !claims) {
		t.Fatalf("%+v quiet=%v: %s for %s, resolver %d", s, quiet, BehaviourDANEWithoutDNSSEC, v.Policy, s.resolver)
	}
}

// TestNoBrokenHostNoDNSSECFact: without the broken host in the MX set the
// fact is not reported (it could only ever be unknown).
func TestNoBrokenHostNoDNSSECFact(t *testing.T) {
	v := judge(sim{policy: PolicyDANE, toA: true, toB: true, client: "192.0.2.1"}, true)
	for _, f := range v.Facts {
		if f.Name == FactValidatesDNSSEC {
			t.Fatalf("%q reported without the broken host: %+v", f.Name, f)
		}
	}
}

// TestJudgeIPv6Column is the exhaustive test of the IPv6-only-host column:
// every history of the walk of TestJudgeDNSSECColumn (every policy, with
// and without SNI, to A and/or B, every subset of the places the sender
// would go, mid-way and once quiet), without the broken host and with a
// non-validating resolver (which connects to the broken host before the
// IPv6-only one; a validating one only adds a look-up), judged with a sender that delivers over
// IPv6 (it connects to the IPv6-only host first toward A, answered 421)
// and one that does not (it looks the host up, finds no A record and
// goes on), beside the same history without the host:
//   - nothing else in the verdict changes: policy, candidates,
//     completeness, attempts, behaviours and every other fact;
//   - "delivers over IPv6" is never the opposite of the truth, is proven
//     with evidence once the sender went toward A, and unknown before.
func TestJudgeIPv6Column(t *testing.T) {
	checked := 0
	walkColumnHistories(func(h sim) {
		for _, res := range []resolverKind{noBrokenHost, nonValidating} {
			base := h
			base.resolver = res
			for _, quiet := range []bool{false, true} {
				without := judge(base, quiet)
				for _, kind := range []ipv6Kind{ipv6Sender, ipv4Only} {
					s := base
					s.v6 = kind
					checked++
					checkIPv6Column(t, s, quiet, without, judge(s, quiet))
				}
			}
		}
	})
	t.Logf("%d histories judged", checked)
}

func checkIPv6Column(t *testing.T, s sim, quiet bool, without, v Verdict) {
	t.Helper()
	if v.Policy != without.Policy || v.Complete != without.Complete || !slices.Equal(v.Candidates, without.Candidates) || v.Attempts != without.Attempts || v.Why != without.Why {
		t.Fatalf("%+v quiet=%v: the IPv6-only host changed the verdict: %s %v (complete %v, %d attempts), without it %s %v (complete %v, %d attempts)",
			s, quiet, v.Policy, v.Candidates, v.Complete, v.Attempts, without.Policy, without.Candidates, without.Complete, without.Attempts)
	}
	if !slices.EqualFunc(v.Behaviours, without.Behaviours, func(a, b Behaviour) bool {
		return a.Name == b.Name && a.Text == b.Text && slices.Equal(a.Evidence, b.Evidence)
	}) {
		t.Fatalf("%+v quiet=%v: the IPv6-only host changed the behaviours: %+v, without it %+v", s, quiet, v.Behaviours, without.Behaviours)
	}
	others := func(fs []Fact) []Fact {
		return slices.DeleteFunc(slices.Clone(fs), func(f Fact) bool { return f.Name == FactUsesIPv6 })
	}
	if a, b := others(v.Facts), others(without.Facts); !reflect.DeepEqual(a, b) {
		t.Fatalf("%+v quiet=%v: the IPv6-only host changed other facts:\n%v\nwithout it\n%v", s, quiet, a, b)
	}
	f := fact(t, v, FactUsesIPv6)
	towardA := s.towardA()
	switch {
	case f.Confidence != Unknown && f.Value != (s.v6 == ipv6Sender):
		t.Fatalf("%+v quiet=%v: %q is %v, truth %v: %s", s, quiet, FactUsesIPv6, f.Value, s.v6 == ipv6Sender, f.Why)
	case towardA && (f.Confidence != Proven || len(f.Evidence) == 0):
		t.Fatalf("%+v quiet=%v: went toward A, %q not proven: %+v", s, quiet, FactUsesIPv6, f)
	case !towardA && f.Confidence != Unknown:
		t.Fatalf("%+v quiet=%v: never went toward A, %q settled: %+v", s, quiet, FactUsesIPv6, f)
	}
}

// TestIPv6FactNeedsTheLookUp: without the look-up of the IPv6-only host in
// the test's slot (a test without a slot, or a sender that never asked),
// going past it proves nothing, and an IPv6 client proves "yes" without
// the host.
func TestIPv6FactNeedsTheLookUp(t *testing.T) {
	s := sim{policy: PolicyMay, toA: true, toB: true, client: "192.0.2.1", v6: ipv4Only}
	conns, fetches := s.history()
	obs := Observations{Connections: conns, PolicyFetches: fetches, Now: t0.Add(time.Hour), Quiet: time.Minute,
		IPv6HostAddrs: []netip.Addr{v6HostAddr}, IPv6HostNames: []string{v6HostName}}
	if f := fact(t, Judge(obs), FactUsesIPv6); f.Confidence != Unknown {
		t.Errorf("without look-ups: %+v, want unknown", f)
	}
	obs.DNSLookups = []store.DNSQuery{{Time: t0.Add(-time.Second), Name: "mx4.s001.a.example.", Type: dns.TypeA}}
	if f := fact(t, Judge(obs), FactUsesIPv6); f.Confidence != Unknown {
		t.Errorf("without the host's look-up: %+v, want unknown", f)
	}
	v6 := sim{policy: PolicyMay, toA: true, toB: true, client: "2001:db8::1"}
	if f := fact(t, judge(v6, true), FactUsesIPv6); !f.Value || f.Confidence != Proven {
		t.Errorf("an IPv6 client without the host: %+v, want yes", f)
	}
}

// TestClassifyInterruptedByService: a session the service cut off (its node
// died; store.InterruptedConnectionError) is no refusal by the sender; one
// that had reached MAIL still counts as the delivery it was, and the same
// session ended by the sender stays a refusal.
func TestClassifyInterruptedByService(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 9, 59, 0, 0, time.UTC)
	tlsCut := store.SMTPConnection{ID: 1, Persona: 7, TLSVersion: "TLS 1.3", SNI: "mx7.b.example", EHLO: "x",
		State: store.StateTLSStarted, Started: t0, Ended: t0}
	for _, tc := range []struct {
		name          string
		err           string
		state         store.ConnState
		wantOK, wantD bool
	}{
		{"cut by the service in TLS", store.InterruptedConnectionError, store.StateTLSStarted, false, false},
		{"ended by the sender in TLS", "", store.StateTLSStarted, true, false},
		{"cut by the service after MAIL", store.InterruptedConnectionError, store.StateMail, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Helper()
			c := tlsCut
			c.Error, c.State = tc.err, tc.state
			if tc.state.Rank() >= store.StateMail.Rank() {
				c.MailFrom = "a@b"
			}
			_, d, ok := classify(c)
			if ok != tc.wantOK || (ok && d != tc.wantD) {
				t.Fatalf("classify = delivered %v, ok %v; want delivered %v, ok %v", d, ok, tc.wantD, tc.wantOK)
			}
		})
	}
}
