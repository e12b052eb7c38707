package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpAndErrors(t *testing.T) {
	code, out, _ := run(t, "help")
	if code != 0 || !strings.Contains(out, "demo") || !strings.Contains(out, "serve") || !strings.Contains(out, "verdict") {
		t.Fatalf("help: %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "frobnicate"); code != exitUsage || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: %d %s", code, errOut)
	}
	cfg := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(cfg, []byte("[dns]\nlisten_on = 1\n"), 0o600)
	if code, _, errOut := run(t, "-config", cfg, "config"); code != exitUsage || !strings.Contains(errOut, "dns.listen_on") {
		t.Fatalf("bad config: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "verdict"); code != exitUsage || !strings.Contains(errOut, "-test") {
		t.Fatalf("verdict without -test: %d %s", code, errOut)
	}
}

// TestVerdictReplaysStoredHistory: `mailsec verdict -test ID` judges what
// the store holds.
func TestVerdictReplaysStoredHistory(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailsec.toml")
	os.WriteFile(cfg, []byte("data_dir = \"data\"\n"), 0o600)
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "data", "mailsec.db"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Add(-time.Hour).UTC()
	test := store.Test{ID: "replaytest000001", Created: t0, Updated: t0, Kind: store.TestToken, State: store.TestOpen}
	if err := st.CreateTest(ctx, test); err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddrPort("192.0.2.7:40000")
	add := func(c store.SMTPConnection) {
		t.Helper()
		c.TestID, c.Client, c.EHLO, c.Ended = test.ID, client, "mta.example.org", c.Started.Add(time.Second)
		if err := st.InsertConnection(ctx, &c); err != nil {
			t.Fatal(err)
		}
	}
	// A dane-only sender: refuses plain text, DANE toward A.
	add(store.SMTPConnection{Started: t0, Persona: 1, State: store.StateNone})
	add(store.SMTPConnection{Started: t0.Add(4 * time.Minute), Persona: 3, CertPersona: 3, SNI: "mx3.a.mailtest.example", STARTTLSOffered: true, State: store.StateSniSeen})
	add(store.SMTPConnection{Started: t0.Add(4 * time.Minute), Persona: 4, CertPersona: 4, SNI: "mx4.a.mailtest.example", STARTTLSOffered: true, TLSVersion: "TLS 1.3", State: store.StateMail, MailFrom: "a@example.org"})
	add(store.SMTPConnection{Started: t0.Add(9 * time.Minute), Persona: 5, CertPersona: 5, SNI: "mx5.a.mailtest.example", STARTTLSOffered: true, State: store.StateSniSeen})
	st.Close()

	verdictOf := func(args ...string) map[string]any {
		t.Helper()
		code, out, errOut := run(t, append([]string{"-config", cfg, "verdict", "-test", test.ID, "-json"}, args...)...)
		if code != 0 {
			t.Fatalf("verdict: %d %s", code, errOut)
		}
		var v struct {
			Verdict map[string]any `json:"verdict"`
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return v.Verdict
	}
	// Quiet for an hour but nothing known about B: dane or dane-only.
	if v := verdictOf(); v["policy"] != "unknown" {
		t.Fatalf("without knowing about B: %v", v["policy"])
	}
	if v := verdictOf("-done", "-sent-to-b"); v["policy"] != "dane-only" || v["complete"] != true {
		t.Fatalf("done, B never delivered: %v (%v)", v["policy"], v["why"])
	}
	if code, out, _ := run(t, "-config", cfg, "verdict", "-test", test.ID); code != 0 || !strings.Contains(out, "validates DANE") {
		t.Fatalf("text output: %d\n%s", code, out)
	}

	// A connection of the same client that no test claimed (refused before
	// RCPT TO): persona 5 delivered to would contradict dane-only. Without
	// -tie-client it is not the test's; with it, it is.
	st, err = store.Open(ctx, filepath.Join(dir, "data", "mailsec.db"))
	if err != nil {
		t.Fatal(err)
	}
	untied := store.SMTPConnection{Started: t0.Add(10 * time.Minute), Client: client, EHLO: "mta.example.org",
		Persona: 5, CertPersona: 5, SNI: "mx5.a.mailtest.example", STARTTLSOffered: true, TLSVersion: "TLS 1.3",
		State: store.StateMail, MailFrom: "a@example.org"}
	untied.Ended = untied.Started.Add(time.Second)
	other := untied
	other.Client = netip.MustParseAddrPort("192.0.2.8:40000")
	for _, c := range []*store.SMTPConnection{&untied, &other} {
		if err := st.InsertConnection(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if v := verdictOf("-done", "-sent-to-b", "-tie-client", "192.0.2.9"); v["policy"] != "dane-only" {
		t.Fatalf("tying a client without connections changed the verdict: %v (%v)", v["policy"], v["why"])
	}
	if v := verdictOf("-done", "-sent-to-b", "-tie-client", "192.0.2.7"); v["policy"] == "dane-only" {
		t.Fatalf("the client's untied delivery to persona 5 was not tied: %v (%v)", v["policy"], v["why"])
	}
	st, err = store.Open(ctx, filepath.Join(dir, "data", "mailsec.db"))
	if err != nil {
		t.Fatal(err)
	}
	conns, err := st.Connections(ctx, store.ConnectionFilter{TestID: test.ID})
	st.Close()
	if err != nil || len(conns) != 5 {
		t.Fatalf("the test has %d connections (want the 4 + the one tied, not the other client's): %v", len(conns), err)
	}
	if code, _, errOut := run(t, "-config", cfg, "verdict", "-test", test.ID, "-tie-client", "nope"); code != exitUsage {
		t.Fatalf("-tie-client nope: %d %s", code, errOut)
	}
}
