package verdict_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// A sender wrote to the test's A and B addresses. Its recorded history:
// toward A it refused persona 1 while STARTTLS was withheld, refused the
// certificates whose TLSA records match nothing (personas 3 and 5) and
// delivered to the personas whose records match (4 and 6); toward B,
// which has no TLSA records, it delivered with or without TLS. Of the
// policies of DESIGN.md §2 only DANE explains all of it.
func ExampleJudge() {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	client := netip.MustParseAddrPort("192.0.2.25:40000")
	var history []store.SMTPConnection
	add := func(persona int, tls, delivered bool) {
		c := store.SMTPConnection{
			ID:      int64(len(history) + 1),
			Client:  client,
			Started: start.Add(time.Duration(len(history)) * time.Minute),
			EHLO:    "mta.example.org",
			Persona: persona,
			State:   store.StateNone,
		}
		if tls {
			c.STARTTLSOffered, c.CertPersona = true, persona
			c.SNI = fmt.Sprintf("mx%d.a.example", persona)
			c.State = store.StateSniSeen // refused in the handshake
			if delivered {
				c.TLSVersion = "TLS 1.3"
			}
		}
		if delivered {
			c.State, c.MailFrom = store.StateMail, "sender@example.org"
		}
		c.Ended = c.Started.Add(time.Second)
		history = append(history, c)
	}
	add(1, false, false) // A in plain text: refused, it wants TLS
	add(3, true, false)  // TLSA matches nothing
	add(4, true, true)   // DANE-EE 3 1 1 matches the key
	add(5, true, false)  // PKIX-valid, but TLSA matches nothing
	add(6, true, true)   // PKIX-valid and TLSA matches
	add(7, false, true)  // B in plain text (no TLSA: opportunistic)
	add(7, true, true)   // B over TLS

	v := verdict.Judge(verdict.Observations{
		Connections: history,
		Now:         start.Add(time.Hour),
		Quiet:       10 * time.Minute,
		SenderDone:  true, // its queue is empty: nothing more will come
		SentToB:     true,
	})
	fmt.Println("policy:", v.Policy)
	fmt.Println("complete:", v.Complete)
	fmt.Println("persona 5:", v.Seen["persona 5"])
	// Output:
	// policy: dane
	// complete: true
	// persona 5: R
}

// A sender tried STARTTLS with persona 3, refused its self-signed
// certificate, and at once delivered on the same host in plain text
// although STARTTLS was offered. No policy of the table does that; the
// verdict names it and judges it may, the protection it gives.
func ExampleJudge_plainFallback() {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	mx3 := netip.MustParseAddrPort("192.0.2.3:25") // one address per MX host
	history := []store.SMTPConnection{
		{ID: 1, Local: mx3, Started: start, Ended: start.Add(time.Second), EHLO: "mta.example.org",
			STARTTLSOffered: true, Persona: 3, CertPersona: 3, SNI: "mx3.a.example", State: store.StateSniSeen},
		{ID: 2, Local: mx3, Started: start.Add(time.Second), Ended: start.Add(3 * time.Second), EHLO: "mta.example.org",
			STARTTLSOffered: true, Persona: 1, State: store.StateMail, MailFrom: "sender@example.org"},
	}
	v := verdict.Judge(verdict.Observations{Connections: history, SenderDone: true})
	fmt.Println("policy:", v.Policy)
	for _, b := range v.Behaviours {
		fmt.Println(b.Name, b.Evidence)
	}
	// Output:
	// policy: may
	// plain-fallback-after-failed-verification [1 2]
}
