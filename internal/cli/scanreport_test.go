package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/scan"
	"github.com/mailsec/mailsec/internal/store"
)

// scanReportFixture writes a configuration whose store holds two scans a
// month apart (a.example red, then green; b.example white in both) and
// returns its path.
func scanReportFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mailsec.toml")
	if err := os.WriteFile(conf, []byte("data_dir = \"data\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenDriver(t.Context(), cfg.Store.Driver, cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i, sc := range []struct{ id, colourA string }{{"scan-march", "red"}, {"scan-april", "green"}} {
		if err := st.CreateScan(t.Context(), store.Scan{ID: sc.id, Created: day.AddDate(0, i, 0), Source: "list.txt", Options: "{}"}); err != nil {
			t.Fatal(err)
		}
		if _, err := scan.Load(t.Context(), st, sc.id, strings.NewReader("a.example,law firm\nb.example,authority\n"), dnsname.NormalizeDomain, ""); err != nil {
			t.Fatal(err)
		}
		colours := map[string]string{"a.example": sc.colourA, "b.example": "white"}
		check := func(ctx context.Context, d string) (json.RawMessage, error) {
			return json.RawMessage(fmt.Sprintf(`{"schema":"mailsec.check.v1","domain":%q,"colour":%q}`, d, colours[d])), nil
		}
		if _, err := scan.Run(t.Context(), st, sc.id, check, scan.Options{Concurrency: 1}); err != nil {
			t.Fatal(err)
		}
	}
	return conf
}

// TestScanCompareCommand: `mailsec scan compare A B` as text, JSON and
// HTML; usage errors.
func TestScanCompareCommand(t *testing.T) {
	conf := scanReportFixture(t)
	code, out, errOut := run(t, "-config", conf, "scan", "compare", "scan-march", "scan-april")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"scan-march → scan-april: 2 domains in both, 1 changed colour", `label "law firm": 1 in both, 1 changed (red → green: 1)`,
		"  a.example  red → green", `label "authority": 1 in both, 0 changed`} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	page := filepath.Join(t.TempDir(), "compare.html")
	code, out, errOut = run(t, "-config", conf, "scan", "compare", "--json", "scan-march", "scan-april", "--html", page)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var c scan.Comparison
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Schema != scan.CompareSchema || c.Changed != 1 || len(c.Labels) != 2 {
		t.Fatalf("JSON %+v %v\n%s", c, err, out)
	}
	if html, err := os.ReadFile(page); err != nil || !strings.Contains(string(html), "<td>a.example</td><td>red</td><td>green</td>") {
		t.Errorf("HTML page: %v", err)
	}
	for _, args := range [][]string{{"scan", "compare", "scan-march"}, {"scan", "compare", "a", "b", "c"}, {"scan", "compare", "--bogus", "a", "b"}} {
		if code, _, _ := run(t, append([]string{"-config", conf}, args...)...); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code, _, errOut := run(t, "-config", conf, "scan", "compare", "scan-march", "scan-none"); code != exitFail || !strings.Contains(errOut, "scan-none") {
		t.Errorf("unknown scan: exit %d %s", code, errOut)
	}
}

// TestScanTrendCommand: `mailsec scan trend` over every stored scan, as
// text and JSON.
func TestScanTrendCommand(t *testing.T) {
	conf := scanReportFixture(t)
	code, out, errOut := run(t, "-config", conf, "scan", "trend")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	if lines[0] != "all domains" || !strings.Contains(out, `label "law firm"`) || !strings.Contains(lines[2], "scan-march") ||
		!strings.Contains(lines[2], "50.0%") || !strings.Contains(lines[3], "scan-april") {
		t.Errorf("text:\n%s", out)
	}
	page := filepath.Join(t.TempDir(), "trend.html")
	code, out, errOut = run(t, "-config", conf, "scan", "trend", "--json", "--html", page, "scan-april")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var tr scan.Trend
	if err := json.Unmarshal([]byte(out), &tr); err != nil || tr.Schema != scan.TrendSchema || len(tr.Scans) != 1 || tr.All[0].Shares["green"] != 0.5 {
		t.Fatalf("JSON %+v %v", tr, err)
	}
	if html, err := os.ReadFile(page); err != nil || !strings.Contains(string(html), "<svg") {
		t.Errorf("HTML page: %v", err)
	}
}
