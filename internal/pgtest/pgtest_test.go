package pgtest

import (
	"database/sql"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestDatabase: a database of the cluster takes a connection and a table,
// and two tests' databases are apart.
func TestDatabase(t *testing.T) {
	a, b := Database(t), Database(t)
	if a == b {
		t.Fatalf("two databases with one DSN %s", a)
	}
	for _, dsn := range []string{a, b} {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(t.Context(), `CREATE TABLE x (id BIGINT)`); err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
	}
}

// TestWithoutPostgres: without PostgreSQL a test that needs it is skipped
// on a developer machine and fails under CI=true, so CI cannot pass by
// skipping. The test binary runs itself with PostgreSQL hidden.
func TestWithoutPostgres(t *testing.T) {
	if os.Getenv("PGTEST_CHILD") == "1" {
		Database(t)
		t.Log("PostgreSQL was found")
		return
	}
	for _, tc := range []struct {
		ci       string
		wantFail bool
		want     string
	}{
		{"", false, "PostgreSQL half skipped"},
		{"true", true, "PostgreSQL is required here"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestWithoutPostgres$", "-test.v")
		cmd.Env = append(os.Environ(), "PGTEST_CHILD=1", BinDirEnv+"="+t.TempDir(), "CI="+tc.ci, "MAILSEC_REQUIRE_PEERS=")
		out, err := cmd.CombinedOutput()
		if (err != nil) != tc.wantFail || !strings.Contains(string(out), tc.want) {
			t.Errorf("CI=%q: %v, want failure %v and %q:\n%s", tc.ci, err, tc.wantFail, tc.want, out)
		}
	}
}
