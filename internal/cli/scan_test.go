package cli

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/peertest"
)

func TestScanUsage(t *testing.T) {
	for _, args := range [][]string{
		{"scan"},
		{"scan", "a.txt", "b.txt"},
		{"scan", "--resume"},
		{"scan", "--concurrency", "0", "a.txt"},
		{"scan", "--per-destination", "-1", "a.txt"},
		{"scan", "--bogus", "a.txt"},
	} {
		if code, _, errOut := run(t, args...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d\n%s", args, code, exitUsage, errOut)
		}
	}
}

func TestParseScanFlags(t *testing.T) {
	e := &env{ctx: context.Background(), stdout: io.Discard, stderr: io.Discard}
	tests := []struct {
		name string
		args []string
		want func(scanFlags) bool
	}{
		{"defaults", []string{"list.txt"}, func(f scanFlags) bool {
			return slices.Equal(f.files, []string{"list.txt"}) && f.concurrency == 32 && f.perDest == 2 && f.hostTTL == time.Hour && f.rate == 0 && !f.json && !f.quiet
		}},
		{"flags after FILE", []string{"-", "--concurrency", "5", "--rate", "2.5", "--json", "--out", "d", "--label-default", "x"}, func(f scanFlags) bool {
			return slices.Equal(f.files, []string{"-"}) && f.concurrency == 5 && f.rate == 2.5 && f.json && f.out == "d" && f.labelDefault == "x"
		}},
		{"resume without FILE", []string{"--resume", "--scan-id", "s1", "--quiet"}, func(f scanFlags) bool {
			return len(f.files) == 0 && f.resume && f.scanID == "s1" && f.quiet && !f.worker
		}},
		{"worker", []string{"--resume", "--scan-id", "s1", "--worker", "--rate", "50"}, func(f scanFlags) bool {
			return f.resume && f.worker && f.rate == 50
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := parseScanFlags(e, tc.args)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.want(f) {
				t.Errorf("%q: parsed %+v", tc.args, f)
			}
		})
	}
}

// TestScanThroughUnbound: `mailsec scan` end to end — the list with bad
// lines, a null-MX domain and an NXDOMAIN checked through a real Unbound,
// all three outputs, and a rerun that resumes (checks nothing again).
func TestScanThroughUnbound(t *testing.T) {
	u := peertest.StartUnbound(t, peertest.UnboundOptions{Extra: `  local-zone: "cli.example." static
  local-data: "null.cli.example. 60 IN MX 0 ."
`})
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailsec.toml")
	os.WriteFile(cfg, []byte("data_dir = \"data\"\n[resolver]\naddress = \""+u.Addr.String()+"\"\n"), 0o600)
	list := filepath.Join(dir, "list.txt")
	os.WriteFile(list, []byte("# test\nNull.CLI.example.,<b>authority</b>\n\nnx.cli.example\nnot..valid\nnull.cli.example,dup\n=cmd|x,formula\n"), 0o600)
	out := filepath.Join(dir, "out")
	code, stdout, errOut := run(t, "-config", cfg, "scan", "--out", out, "--json", "--timeout", "5s", list, "--label-default", "none")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, errOut)
	}
	var sum struct {
		Scan                string
		Items, Done, Errors int
		Checked, Pending    int
		Outputs             []string
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if !strings.HasPrefix(sum.Scan, "scan-") || sum.Items != 5 || sum.Done != 2 || sum.Errors != 3 || sum.Checked != 2 || sum.Pending != 0 || len(sum.Outputs) != 3 {
		t.Fatalf("summary %+v\n%s", sum, errOut)
	}
	f, err := os.Open(filepath.Join(out, "results.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) != 6 {
		t.Fatalf("CSV: %d rows %v", len(rows), err)
	}
	want := [][]string{
		{"null.cli.example", "<b>authority</b>", "grey"},
		{"nx.cli.example", "none", ""},
		{"", "none", ""},
		{"null.cli.example", "dup", ""},
		{"", "formula", ""},
	}
	for i, w := range want {
		r := rows[i+1]
		if r[0] != w[0] || r[1] != w[1] || (w[2] != "" && r[2] != w[2]) {
			t.Errorf("row %d: %q, want %q", i+1, r, w)
		}
	}
	if rows[5][11] != "'=cmd|x" {
		t.Errorf("formula not defused: %q", rows[5][11])
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(html), "<b>authority</b>") || !strings.Contains(string(html), "&lt;b&gt;authority&lt;/b&gt;") || !strings.Contains(string(html), "<svg") {
		t.Error("the HTML report does not escape the label, or has no chart")
	}
	jl, err := os.ReadFile(filepath.Join(out, "results.jsonl"))
	if err != nil || strings.Count(string(jl), "\n") != 5 || !strings.Contains(string(jl), `"schema":"mailsec.check.v1"`) {
		t.Fatalf("JSONL: %v\n%s", err, jl)
	}

	// The same command again: the scan is resumed, nothing is checked twice.
	code, stdout, errOut = run(t, "-config", cfg, "scan", "--out", out, "--json", "--quiet", list)
	if code != exitOK {
		t.Fatalf("rerun: exit %d\n%s", code, errOut)
	}
	if err := json.Unmarshal([]byte(stdout), &sum); err != nil || sum.Checked != 0 || sum.Done != 2 {
		t.Fatalf("rerun checked again: %+v %v", sum, err)
	}
	// Another input under the same ID is refused.
	other := filepath.Join(dir, "other.txt")
	os.WriteFile(other, []byte("x.cli.example\n"), 0o600)
	if code, _, errOut := run(t, "-config", cfg, "scan", "--scan-id", sum.Scan, other); code != exitUsage || !strings.Contains(errOut, "another input") {
		t.Fatalf("other input under the same ID: exit %d %s", code, errOut)
	}
}
