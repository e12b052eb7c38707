package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/store"
)

// `mailsec test new -sending-server` resolves a host name through the
// configured resolver and stores the server with the test.
func TestTestNewSendingServer(t *testing.T) {
	d := peertest.StartDNS(t)
	d.Set(t, "mx.sender.example. 60 IN A 192.0.2.25")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailsec.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir = \"data\"\n[resolver]\naddress = %q\n", d.Addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "-config", cfg, "test", "new", "-json", "-sending-server", "MX.sender.example")
	if code != 0 {
		t.Fatalf("test new: %d %s", code, errOut)
	}
	var a struct {
		ID               string   `json:"id"`
		SendingServer    string   `json:"sending_server"`
		SendingAddresses []string `json:"sending_addresses"`
	}
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if a.SendingServer != "mx.sender.example" || len(a.SendingAddresses) != 1 || a.SendingAddresses[0] != "192.0.2.25" {
		t.Errorf("answer %+v", a)
	}
	st, err := store.Open(context.Background(), filepath.Join(dir, "data", "mailsec.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got, err := st.Test(context.Background(), a.ID); err != nil || got.SendingServer != "mx.sender.example" || len(got.SendingAddrs) != 1 {
		t.Errorf("stored %+v, %v", got, err)
	}
	// Bad input is a usage error and stores nothing.
	for _, bad := range []string{"not a host", "missing.sender.example"} {
		if code, _, errOut := run(t, "-config", cfg, "test", "new", "-sending-server", bad); code != exitUsage || !strings.Contains(errOut, "-sending-server") {
			t.Errorf("%q: %d %s", bad, code, errOut)
		}
	}
	if stats, err := st.Stats(context.Background(), false); err != nil || stats.Tables["tests"] != 1 {
		t.Errorf("%d tests stored, want 1 (%v)", stats.Tables["tests"], err)
	}
}
