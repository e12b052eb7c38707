package verdict

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// conn builds a history entry: persona n reached state st at t0+at.
func conn(n int, st store.ConnState, at time.Duration) store.SMTPConnection {
	c := store.SMTPConnection{Persona: n, State: st, Started: t0.Add(at), Ended: t0.Add(at + time.Second), STARTTLSOffered: n != 1, EHLO: "mta.example.org"}
	if n != 1 {
		// A TLS persona: its certificate was served; the handshake
		// completed unless it was refused right there.
		c.CertPersona = n
		if st != store.StateSniSeen {
			c.TLSVersion = "TLS 1.3"
		}
	}
	if st.Rank() >= store.StateMail.Rank() {
		c.MailFrom = "sender@example.org"
	}
	return c
}

func plainAfterOffer(at time.Duration) store.SMTPConnection {
	c := conn(1, store.StateMail, at)
	c.STARTTLSOffered = true
	return c
}

// sni gives c the SNI of its persona's MX host.
func sni(c store.SMTPConnection) store.SMTPConnection {
	c.SNI = fmt.Sprintf("mx%d.a.example", c.Persona)
	return c
}

// plainRefusalAt is a plain-text session at persona n's address, inside
// the downgrade window, that ended before MAIL FROM.
func plainRefusalAt(n int) store.SMTPConnection {
	c := conn(n, store.StateNone, 0)
	c.STARTTLSOffered, c.CertPersona, c.TLSVersion = false, 0, ""
	return c
}

// open makes c a connection still in progress.
func open(c store.SMTPConnection) store.SMTPConnection {
	c.Ended = time.Time{}
	return c
}

func TestAcknowledge(t *testing.T) {
	const ackAfter = 10 * time.Minute
	tests := []struct {
		name     string
		zone     persona.Zone
		window   bool
		acked    bool
		now      time.Duration
		history  []store.SMTPConnection
		fetched  bool
		accept   bool
		reasonIs string
	}{
		// Settled early by the verdict: fewer attempts.
		{name: "encrypt settled after its first TLS delivery", zone: persona.ZoneA, now: 4 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0), conn(3, store.StateMail, 4*time.Minute)},
			accept:  true},
		// chasquid's retest: it remembers zone A's TLS level and its
		// policy fetch counts for a week, so it refuses plain text in the
		// window and delivers to persona 6 at once: mta-sts is the only
		// row left, but no certificate was tested: 451, another attempt.
		{name: "one policy left but its checks not shown: 451", zone: persona.ZoneA, now: 4 * time.Minute, fetched: true,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0), plainRefusalAt(7), sni(conn(6, store.StateMail, 4*time.Minute))},
			accept:  false},
		{name: "mta-sts with a policy fetch settled at its first delivery", zone: persona.ZoneA, now: 4 * time.Minute, fetched: true,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0), conn(4, store.StateSniSeen, 4*time.Minute), conn(5, store.StateMail, 4*time.Minute)},
			accept:  true},
		// Seen in the lab (per-host addresses): Postfix delivers to A and B
		// at once; its B session was in the TLS handshake while A's mail
		// was acknowledged. An open session is no refusal.
		{name: "an open session in the handshake is no refusal", zone: persona.ZoneA, now: 4 * time.Minute, fetched: true,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0), conn(4, store.StateSniSeen, 4*time.Minute),
				open(conn(7, store.StateTLSStarted, 4*time.Minute)), conn(5, store.StateMail, 4*time.Minute)},
			accept: true, reasonIs: "policy settled: mta-sts"},
		{name: "a closed session that stopped in the handshake is a refusal", zone: persona.ZoneA, now: 4 * time.Minute, fetched: true,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0), conn(4, store.StateSniSeen, 4*time.Minute),
				conn(7, store.StateTLSStarted, 4*time.Minute), conn(5, store.StateMail, 4*time.Minute)},
			accept: true, reasonIs: "no policy of the table explains the connections: nothing more to learn"},
		{name: "mta-sts without a fetch: verify still possible", zone: persona.ZoneA, now: 4 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0), conn(4, store.StateSniSeen, 4*time.Minute), conn(5, store.StateMail, 4*time.Minute)},
			accept:  false},
		{name: "dane or dane+mta-sts: indistinguishable by personas", zone: persona.ZoneA, now: 5 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0), conn(3, store.StateSniSeen, 4*time.Minute),
				conn(4, store.StateMail, 4*time.Minute), conn(7, store.StateMail, 4*time.Minute)},
			accept: true},
		{name: "A inside the downgrade window", zone: persona.ZoneA, window: true,
			history: []store.SMTPConnection{conn(1, store.StateMail, 0)}, accept: false},
		{name: "B inside the downgrade window", zone: persona.ZoneB, window: true,
			history: []store.SMTPConnection{conn(1, store.StateMail, 0)}, accept: false},
		{name: "B after the window", zone: persona.ZoneB, now: 4 * time.Minute,
			history: []store.SMTPConnection{conn(7, store.StateMail, 4*time.Minute)}, accept: true},
		{name: "already acknowledged", zone: persona.ZoneA, window: true, acked: true, accept: true},
		{name: "first TLS connection, SNI persona", zone: persona.ZoneA, now: 4 * time.Minute,
			history: []store.SMTPConnection{conn(6, store.StateMail, 4*time.Minute)}, accept: false},
		// dane: delivers to 4 and 6, refuses 3 and 5 after the handshake.
		{name: "dane sender, all of 3-6 hit", zone: persona.ZoneA, now: 6 * time.Minute,
			history: []store.SMTPConnection{
				conn(3, store.StateSniSeen, 4*time.Minute), conn(4, store.StateMail, 4*time.Minute),
				conn(5, store.StateSniSeen, 5*time.Minute), conn(6, store.StateMail, 6*time.Minute)},
			accept: true},
		{name: "three of 3-6 hit", zone: persona.ZoneA, now: 6 * time.Minute,
			history: []store.SMTPConnection{
				conn(3, store.StateSniSeen, 4*time.Minute), conn(4, store.StateMail, 4*time.Minute),
				conn(6, store.StateMail, 6*time.Minute)},
			accept: false},
		// mta-sts: never contacts 3 (not in the policy); 4-6 for long enough.
		// TLS toward A in an earlier attempt and still no policy fetch: no
		// MTA-STS sender (RFC 8461 §5), so verify is left. The refusal in
		// the downgrade window is what tells verify from a may sender that
		// verifies certificates only when STARTTLS is offered.
		{name: "4-6 hit over attempts without a policy fetch: verify", zone: persona.ZoneA, now: 8 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0),
				conn(4, store.StateSniSeen, 4*time.Minute), conn(5, store.StateMail, 5*time.Minute),
				conn(6, store.StateMail, 6*time.Minute)},
			accept: true, reasonIs: "policy settled: verify"},
		// The first TLS attempt: a background fetcher may not have fetched
		// yet, and persona 2 (no SNI) could still tell verify from mta-sts.
		{name: "first TLS attempt, no fetch yet, no SNI: persona 2 can still tell verify from mta-sts", zone: persona.ZoneA, now: 4 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0),
				conn(4, store.StateSniSeen, 4*time.Minute), conn(5, store.StateMail, 4*time.Minute)},
			accept: false},
		// With SNI, persona 2 is out of reach: nothing tells verify from
		// mta-sts but the fetch, which the final verdict weighs.
		{name: "first TLS attempt with SNI: verify and mta-sts alike for every reachable persona", zone: persona.ZoneA, now: 4 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0),
				sni(conn(4, store.StateSniSeen, 4*time.Minute)), sni(conn(5, store.StateMail, 4*time.Minute))},
			accept: true, reasonIs: "the remaining policies (verify, mta-sts) behave alike toward every persona still to be seen"},
		// A sender that verifies certificates toward A by a per-domain rule
		// (Haraka's force_tls_hosts: no MTA-STS, no DANE), seen only at
		// persona 6 after refusing plain text: no fetch must not settle
		// "dane", which no connection tested; another attempt can still
		// reach persona 4 or 5.
		{name: "per-domain verifier seen only at persona 6: no fetch does not settle dane", zone: persona.ZoneA, now: 5 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0),
				sni(conn(6, store.StateMail, 4*time.Minute)), sni(conn(6, store.StateMail, 5*time.Minute))},
			accept: false},
		{name: "mta-sts sender, 4-6 hit for ack_after", zone: persona.ZoneA, now: 14 * time.Minute,
			history: []store.SMTPConnection{
				conn(4, store.StateSniSeen, 4*time.Minute), conn(5, store.StateMail, 5*time.Minute),
				conn(6, store.StateMail, 6*time.Minute)},
			accept: true},
		// may and encrypt differ only in plain text, inside the downgrade
		// window, which is past: more attempts cannot tell them apart.
		{name: "no SNI: persona 2 once, may or encrypt: nothing more to learn", zone: persona.ZoneA, now: 4 * time.Minute,
			history: []store.SMTPConnection{conn(2, store.StateMail, 4*time.Minute)}, accept: true,
			reasonIs: "the remaining policies (may, encrypt) behave alike toward every persona still to be seen"},
		{name: "no SNI: refused plain text and persona 2: only verify does", zone: persona.ZoneA, now: 4 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0), conn(2, store.StateSniSeen, 4*time.Minute)},
			accept:  true, reasonIs: "policy settled: verify"},
		{name: "no SNI: persona 2 twice", zone: persona.ZoneA, now: 5 * time.Minute,
			history: []store.SMTPConnection{conn(2, store.StateMail, 4*time.Minute), conn(2, store.StateMail, 5*time.Minute)},
			accept:  true},
		{name: "SNI, first delivery to persona 6: verify, dane, mta-sts still apart at 4 and 5", zone: persona.ZoneA, now: 5 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateNone, 0), sni(conn(6, store.StateMail, 5*time.Minute))},
			accept:  false},
		{name: "none: plain although STARTTLS was offered", zone: persona.ZoneA, now: 4 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateMail, 0), plainAfterOffer(4 * time.Minute)}, accept: true},
		{name: "plain inside the window only", zone: persona.ZoneA, now: 2 * time.Minute,
			history: []store.SMTPConnection{conn(1, store.StateMail, 0)}, accept: false},
		{name: "plain EHLO-only after offer says nothing", zone: persona.ZoneA, now: 4 * time.Minute,
			history: []store.SMTPConnection{{Persona: 1, State: store.StateNone, STARTTLSOffered: true, Started: t0.Add(4 * time.Minute)}},
			accept:  false},
		{name: "handshake refused on 2 only (verify without SNI)", zone: persona.ZoneA, now: 5 * time.Minute,
			history: []store.SMTPConnection{conn(2, store.StateSniSeen, 4*time.Minute), conn(2, store.StateSniSeen, 5*time.Minute)},
			accept:  true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var fetches []store.PolicyFetch
			if tc.fetched {
				fetches = []store.PolicyFetch{{Time: t0}}
			}
			got := Acknowledge(AckInput{Zone: tc.zone, Now: t0.Add(tc.now), InDowngradeWindow: tc.window,
				History: tc.history, AckAfter: ackAfter, AlreadyAcked: tc.acked, Fetches: fetches})
			if got.Accept != tc.accept {
				t.Fatalf("accept %v (%s), want %v", got.Accept, got.Reason, tc.accept)
			}
			if got.Reason == "" {
				t.Fatal("no reason given")
			}
		})
	}
}

// With an address per MX host, a plain session to mx7's address is B's
// persona 7 even without a recipient: refusing it in the downgrade window is
// evidence (encrypt, verify and dane-only refuse B in plain text; dane and
// the MTA-STS senders fall back to it, RFC 7672 §2.2). On a shared address
// the same session is persona 1 and says nothing about B.
func TestJudgePlainRefusalAtBAddress(t *testing.T) {
	window := func(n int) store.SMTPConnection {
		c := conn(n, store.StateNone, 0)
		c.STARTTLSOffered, c.CertPersona, c.TLSVersion = false, 0, ""
		return c
	}
	tests := []struct {
		name    string
		history []store.SMTPConnection
		want    []Policy
	}{
		{"refused at mx7's address", []store.SMTPConnection{window(1), window(7), sni(conn(4, store.StateMail, 4*time.Minute)), sni(conn(5, store.StateSniSeen, 4*time.Minute))},
			[]Policy{PolicyDANEOnly}},
		{"no session at B", []store.SMTPConnection{window(1), sni(conn(4, store.StateMail, 4*time.Minute)), sni(conn(5, store.StateSniSeen, 4*time.Minute))},
			[]Policy{PolicyDANE, PolicyDANEOnly, PolicyDANEMTASTS}},
		{"a plain session at mx7's address cut before EHLO says nothing", []store.SMTPConnection{window(1), func() store.SMTPConnection { c := window(7); c.EHLO = ""; return c }(),
			sni(conn(4, store.StateMail, 4*time.Minute)), sni(conn(5, store.StateSniSeen, 4*time.Minute))},
			[]Policy{PolicyDANE, PolicyDANEOnly, PolicyDANEMTASTS}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Judge(Observations{Connections: tt.history, Now: t0.Add(5 * time.Minute)})
			if !slices.Equal(v.Candidates, tt.want) {
				t.Errorf("candidates %v, want %v (%s)", v.Candidates, tt.want, v.Why)
			}
		})
	}
}
