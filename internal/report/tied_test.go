package report

import (
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// The report says which connections count because of the sending server
// the user named, and names that server.
func TestTiedBySendingServer(t *testing.T) {
	in := Input{
		Test: store.Test{ID: "t1", Created: t0, SendingServer: "mx.sender.example"},
		Connections: []store.SMTPConnection{
			{ID: 1, Started: t0.Add(time.Minute), Persona: 2, CertPersona: 2, State: store.StateSniSeen, TiedBy: store.TiedBySendingServer},
			{ID: 2, Started: t0.Add(2 * time.Minute), Persona: 2, CertPersona: 2, State: store.StateSniSeen, TiedBy: store.TiedByClient},
			{ID: 3, Started: t0.Add(3 * time.Minute), Persona: 1, State: store.StateMail, MailFrom: "jane.doe@sender.example"},
			{ID: 4, Started: t0.Add(4 * time.Minute), State: store.StateNone, Reply: "421 4.4.3 IPv6", TiedBy: store.TiedBySlotAddress},
		},
	}
	r := Build(in)
	if r.SendingServer != "mx.sender.example" {
		t.Errorf("sending server %q", r.SendingServer)
	}
	wantBy := []string{store.TiedBySendingServer, store.TiedByClient, "", store.TiedBySlotAddress}
	wantMark := []string{"[from your sending server]", "[tied: same address", "", "[to this test's own address of the IPv6-only MX host]"}
	for i, h := range r.History {
		if h.TiedBy != wantBy[i] {
			t.Errorf("line %d tied by %q, want %q", i, h.TiedBy, wantBy[i])
		}
		if wantMark[i] != "" && !strings.Contains(h.Text, wantMark[i]) || wantMark[i] == "" && strings.Contains(h.Text, "[") {
			t.Errorf("line %d: %q, want mark %q", i, h.Text, wantMark[i])
		}
	}
	txt, err := Text(r)
	if err != nil {
		t.Fatal(err)
	}
	html, err := HTML(r)
	if err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": txt, "html": html} {
		if !strings.Contains(out, "Sending server you named: mx.sender.example") || !strings.Contains(out, "[from your sending server]") {
			t.Errorf("%s rendering does not name the sending server and its connections:\n%s", name, out)
		}
	}
}
