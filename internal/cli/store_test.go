package cli

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/pgtest"
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

// TestStoreBackupAndPurge: a backup is a copy the purge can work on: as of
// a year later, the copy's test is gone and the original keeps it.
func TestStoreBackupAndPurge(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailsec.toml")
	os.WriteFile(cfg, []byte("data_dir = \"data\"\n"), 0o600)
	if code, _, errOut := run(t, "-config", cfg, "test", "new"); code != 0 {
		t.Fatalf("test new: %d %s", code, errOut)
	}
	backup := filepath.Join(dir, "copy.db")
	if code, _, errOut := run(t, "-config", cfg, "store", "backup", backup); code != 0 {
		t.Fatalf("backup: %d %s", code, errOut)
	}
	if code, _, _ := run(t, "-config", cfg, "store", "backup", backup); code != exitUsage {
		t.Fatalf("a backup over an existing file: %d, want usage", code)
	}
	code, out, errOut := run(t, "-config", cfg, "store", "purge", "-json", "-as-of", "+8760h", "-db", backup)
	if code != 0 || !strings.Contains(out, `"tests": 1`) {
		t.Fatalf("purge of the copy: %d %s %s", code, out, errOut)
	}
	rows := func(db string) int64 {
		t.Helper()
		args := []string{"-config", cfg, "store", "stats", "-json"}
		if db != "" {
			args = append(args, "-db", db)
		}
		code, out, errOut := run(t, args...)
		var st struct {
			Tables map[string]int64 `json:"tables"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
			t.Fatalf("stats: %d %s %s", code, out, errOut)
		}
		return st.Tables["tests"]
	}
	if got := rows(backup); got != 0 {
		t.Fatalf("the purged copy holds %d tests", got)
	}
	if got := rows(""); got != 1 {
		t.Fatalf("the original holds %d tests, want 1", got)
	}
	if code, _, _ := run(t, "-config", cfg, "store", "purge", "-as-of", "tomorrow"); code != exitUsage {
		t.Fatalf("-as-of tomorrow: %d, want usage", code)
	}
	if code, _, _ := run(t, "-config", cfg, "store", "stats", "-db", filepath.Join(dir, "missing.db")); code != exitUsage {
		t.Fatalf("-db of a missing file: %d, want usage", code)
	}
}

// TestStoreOnPostgres: the store commands on a PostgreSQL store
// (store.driver = "postgres"): stats count its rows; the integrity check
// needs amcheck and says so; backup refuses, naming pg_dump; purge runs.
// No output shows the DSN's password, nor does 'mailsec config'.
func TestStoreOnPostgres(t *testing.T) {
	dsn := pgtest.Database(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	// The test cluster trusts every local connection: a password in the
	// DSN is sent and ignored, and must never be printed.
	u.User = url.UserPassword(u.User.Username(), "s3cret-pw")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailsec.toml")
	os.WriteFile(cfg, []byte("data_dir = \"data\"\n[store]\ndriver = \"postgres\"\ndsn = \""+u.String()+"\"\n"), 0o600)
	if code, _, errOut := run(t, "-config", cfg, "test", "new"); code != 0 {
		t.Fatalf("test new: %d %s", code, errOut)
	}
	code, out, errOut := run(t, "-config", cfg, "store", "stats", "-json")
	if code != 0 || !strings.Contains(out, `"tests": 1`) {
		t.Fatalf("store stats: %d %s %s", code, out, errOut)
	}
	said := []string{out, errOut}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"store", "stats", "-integrity"}, "amcheck"},
		{[]string{"store", "backup", filepath.Join(dir, "copy.db")}, "pg_dump"},
	} {
		code, out, errOut := run(t, append([]string{"-config", cfg}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want a failure naming %s", tc.args, code, errOut, tc.want)
		}
		said = append(said, out, errOut)
	}
	code, out, errOut = run(t, "-config", cfg, "store", "purge", "-json")
	if code != 0 {
		t.Errorf("store purge: %d %s %s", code, out, errOut)
	}
	said = append(said, out, errOut)
	code, out, errOut = run(t, "-config", cfg, "config")
	if code != 0 || !strings.Contains(out, "xxxxx@127.0.0.1") {
		t.Errorf("config: %d %s %s; want the DSN with its password masked", code, out, errOut)
	}
	said = append(said, out, errOut)
	if all := strings.Join(said, "\n"); strings.Contains(all, "s3cret-pw") {
		t.Errorf("the password was printed:\n%s", all)
	}
}
