package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestStoreStats: 'store stats' counts rows after 'test new', in text and
// JSON, and the integrity check passes on a sound file.
func TestStoreStats(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailsec.toml")
	os.WriteFile(cfg, []byte("data_dir = \"data\"\n"), 0o600)
	if code, _, errOut := run(t, "-config", cfg, "test", "new"); code != 0 {
		t.Fatalf("test new: %d %s", code, errOut)
	}
	code, out, errOut := run(t, "-config", cfg, "store", "stats", "-json", "-integrity")
	if code != 0 {
		t.Fatalf("store stats: %d %s", code, errOut)
	}
	var st struct {
		Tables    map[string]int64 `json:"tables"`
		Bytes     int64            `json:"bytes"`
		Integrity string           `json:"integrity"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if st.Tables["tests"] != 1 || st.Integrity != "ok" || st.Bytes <= 0 {
		t.Fatalf("stats: %+v", st)
	}
	if code, out, _ := run(t, "-config", cfg, "store", "stats"); code != 0 || !regexp.MustCompile(`(?m)^tests\s+1$`).MatchString(out) {
		t.Fatalf("text: %d\n%s", code, out)
	}
	if code, _, _ := run(t, "-config", cfg, "store", "frob"); code != exitUsage {
		t.Fatalf("store frob: %d, want usage", code)
	}
}
