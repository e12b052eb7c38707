package cli

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/store"
)

func TestCheckUsage(t *testing.T) {
	for _, args := range [][]string{
		{"check"},
		{"check", "a..b"},
		{"check", "user@example.org"},
		{"check", "one.example", "two.example"},
		{"check", "--roots", filepath.Join(t.TempDir(), "missing.pem"), "example.org"},
		{"check", "--timeout", "-1s", "example.org"},
		{"check", "--frobnicate", "example.org"},
		{"check", "--resolver", "localhost:53", "example.org"},
	} {
		if code, _, errOut := run(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
	}
}

// TestCheckThroughUnbound runs `mailsec check` against a real Unbound that
// serves a few names from local data (insecure): a null MX, and an MX on
// loopback that the check must refuse without --allow-private.
func TestCheckThroughUnbound(t *testing.T) {
	u := peertest.StartUnbound(t, peertest.UnboundOptions{Extra: `  local-zone: "cli.example." static
  local-data: "null.cli.example. 60 IN MX 0 ."
  local-data: "loop.cli.example. 60 IN MX 10 mx.loop.cli.example."
  local-data: "mx.loop.cli.example. 60 IN A 127.0.0.1"
`})
	cfg := filepath.Join(t.TempDir(), "mailsec.toml")
	os.WriteFile(cfg, []byte("[resolver]\naddress = \""+u.Addr.String()+"\"\n"), 0o600)

	code, out, errOut := run(t, "-config", cfg, "check", "--json", "Null.CLI.example.")
	if code != exitOK {
		t.Fatalf("null MX: exit %d\n%s\n%s", code, out, errOut)
	}
	var r struct {
		Schema, Domain, Input, Colour string
		MX                            struct{ Kind string }
		Findings                      []struct{ Code string }
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Schema != "mailsec.check.v1" || r.Domain != "null.cli.example" || r.Input != "Null.CLI.example." || r.Colour != "grey" || r.MX.Kind != "null" {
		t.Fatalf("report %+v", r)
	}

	// Flags after the domain work too; the loopback MX is refused: exit 1,
	// the JSON still printed.
	code, out, errOut = run(t, "-config", cfg, "check", "loop.cli.example", "--json", "--timeout", "5s")
	if code != exitFail || !strings.Contains(errOut, "private") {
		t.Fatalf("refused: exit %d\n%s", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Colour != "grey" {
		t.Fatalf("refused: %v %+v", err, r)
	}
	refused := false
	for _, f := range r.Findings {
		refused = refused || f.Code == "safety.private_refused"
	}
	if !refused {
		t.Fatalf("no safety.private_refused: %s", out)
	}

	// Text report by default.
	code, out, _ = run(t, "-config", cfg, "check", "null.cli.example")
	if code != exitOK || !strings.Contains(out, "null.cli.example: GREY") || !strings.Contains(out, "null MX") {
		t.Fatalf("text: exit %d\n%s", code, out)
	}
}

// TestCheckResolverDown: a resolver that does not answer is a fatal error
// (exit 1), with the JSON report still printed.
func TestCheckResolverDown(t *testing.T) {
	dead := peertest.FreeAddr(t)
	code, out, errOut := run(t, "check", "--json", "--resolver", netip.AddrPortFrom(dead.Addr(), dead.Port()).String(), "--timeout", "3s", "example.org")
	if code != exitFail || !strings.Contains(errOut, "resolver") {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var r struct{ Colour string }
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Colour != "grey" {
		t.Fatalf("%v\n%s", err, out)
	}
}

// TestTestShowInbound: `mailsec test show` shows the inbound check stored
// with the test.
func TestTestShowInbound(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailsec.toml")
	os.WriteFile(cfg, []byte("data_dir = \"data\"\n"), 0o600)
	ctx := t.Context()
	st, err := store.Open(ctx, filepath.Join(dir, "data", "mailsec.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := st.CreateTest(ctx, store.Test{ID: "abc", Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen}); err != nil {
		t.Fatal(err)
	}
	report := `{"schema":"mailsec.check.v1","domain":"example.org","colour":"white","colour_reason":"Encryption with valid certificates everywhere."}`
	if err := st.AddInboundCheck(ctx, store.InboundCheck{TestID: "abc", Domain: "example.org", Checked: now, Stored: now, Colour: "white", Report: []byte(report)}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errOut := run(t, "-config", cfg, "test", "show", "abc")
	if code != exitOK || !strings.Contains(out, "Inbound check of example.org") || !strings.Contains(out, "white — Encryption with valid") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = run(t, "-config", cfg, "test", "show", "-json", "abc")
	var v struct {
		Inbound struct{ Schema, Colour string }
	}
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || v.Inbound.Schema != "mailsec.check.v1" || v.Inbound.Colour != "white" {
		t.Fatalf("exit %d %v\n%s", code, err, out)
	}
}
