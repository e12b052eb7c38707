package cli

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/store"
)

// hostile is text a peer might send to take over the operator's
// terminal: clear the screen, set the title, CSI as C1, a forged line.
const hostile = "x\x1b[2J\x1b]0;pwned\x07\u009b31m\r\nFAKE\tcolumn"

// rawControl returns the first control character other than a line break
// in s (or -1): what a terminal would act on.
func rawControl(s string) rune {
	for _, r := range s {
		if r == '\n' {
			continue
		}
		if r < 0x20 || r == 0x7f || 0x80 <= r && r <= 0x9f || r == utf8.RuneError {
			return r
		}
	}
	return -1
}

// TestTextOutputHasNoControlCharacters: `mailsec test show` and
// `mailsec verdict` print what peers sent (SNI, replies, the result
// mail's reasons) without their control characters; so does the log.
func TestTextOutputHasNoControlCharacters(t *testing.T) {
	cfg, st := configAndStore(t, "")
	ctx := t.Context()
	now := time.Now().UTC()
	tt := store.Test{ID: "ctl", Created: now.Add(-time.Hour), Updated: now, Kind: store.TestToken, Sender: "j@example.org", State: store.TestFinal}
	if err := st.CreateTest(ctx, tt); err != nil {
		t.Fatal(err)
	}
	c := store.SMTPConnection{TestID: "ctl", Started: now.Add(-time.Hour), Ended: now.Add(-time.Hour + time.Second),
		Client: netip.MustParseAddrPort("192.0.2.7:4000"), EHLO: hostile, Persona: 4, CertPersona: 4, SNI: hostile,
		STARTTLSOffered: true, TLSVersion: "TLS 1.3", State: store.StateMail, MailFrom: hostile + "@example.org", Reply: "250 " + hostile}
	if err := st.InsertConnection(ctx, &c); err != nil {
		t.Fatal(err)
	}
	r := store.TestResult{TestID: "ctl", Final: now, Verdict: []byte(`{"policy":"dane"}`), SenderDomain: "example.org",
		MailState: store.MailFailed, MailReason: "refused: 550 " + hostile, Attempts: 1}
	if err := st.FinalizeTest(ctx, tt, r); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateResultMail(ctx, r, &store.MailAttempt{Time: now, Status: "bounced", Detail: "mx.example.org: 550 " + hostile}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	for _, args := range [][]string{{"test", "show", "ctl"}, {"verdict", "-test", "ctl"}} {
		code, out, errOut := run(t, append([]string{"-config", cfg}, args...)...)
		if code != exitOK {
			t.Fatalf("%v: exit %d %s", args, code, errOut)
		}
		if r := rawControl(out); r != -1 {
			t.Errorf("%v prints control character %U:\n%q", args, r, out)
		}
		if strings.Contains(out, "\nFAKE") {
			t.Errorf("%v prints a forged line:\n%s", args, out)
		}
	}
	if !strings.Contains(errorText(errJoined()), "\n") || rawControl(errorText(errJoined())) != -1 {
		t.Errorf("error text %q", errorText(errJoined()))
	}

	// The log: both formats escape what they are given.
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		e := &env{stderr: &buf}
		log := e.logger(&config.Config{Log: config.Log{Level: "info", Format: format}})
		log.Info("smtp: "+hostile, "ehlo", hostile, "err", errJoined(), slog.Group("g", "sni", hostile))
		if r := rawControl(strings.TrimSuffix(buf.String(), "\n")); r != -1 {
			t.Errorf("%s log prints control character %U:\n%q", format, r, buf.String())
		}
	}
}

type joined struct{}

func (joined) Error() string { return "first: " + hostile + "\nsecond: " + hostile }

func errJoined() error { return joined{} }
