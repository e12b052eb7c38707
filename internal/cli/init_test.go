package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInit: 'init' writes a configuration that 'config' accepts, with the
// flags' values; it refuses to replace a file without -force, and names a
// bad or missing flag.
func TestInit(t *testing.T) {
	out := filepath.Join(t.TempDir(), "mailsec.toml")
	flags := []string{"init", "-zone-a", "a.tests.example.org", "-zone-b", "b.tests.example.org", "-addr", "198.51.100.7,2001:db8:7::25",
		"-policy-addr", "198.51.100.8", "-acme-email", "ops@example.org", "-web-url", "https://tests.example.org", "-o", out}
	if code, _, errOut := run(t, flags...); code != 0 {
		t.Fatalf("init: %d %s", code, errOut)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("written file: %v %v", fi.Mode(), err)
	}
	code, cfg, errOut := run(t, "-config", out, "config")
	if code != 0 {
		t.Fatalf("config of the written file: %d %s", code, errOut)
	}
	for _, want := range []string{`a = "a.tests.example.org."`, `listen = ["198.51.100.7:25", "[2001:db8:7::25]:25"]`, `listen = ["198.51.100.8:443"]`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("effective configuration lacks %s:\n%s", want, cfg)
		}
	}
	if code, _, errOut := run(t, flags...); code != exitUsage || !strings.Contains(errOut, "-force") {
		t.Errorf("init over an existing file: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, append(flags, "-force")...); code != 0 {
		t.Errorf("init -force: %d %s", code, errOut)
	}
	bad := append([]string{}, flags[:len(flags)-2]...)
	bad[6] = "198.51.100.300"
	if code, _, errOut := run(t, bad...); code != exitUsage || !strings.Contains(errOut, "-addr") {
		t.Errorf("bad -addr: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "init", "-zone-a", "a.tests.example.org"); code != exitUsage || !strings.Contains(errOut, "-addr") {
		t.Errorf("missing flags: %d %s", code, errOut)
	}
}
