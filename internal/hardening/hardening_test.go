package hardening

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestLoadEnv(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		t.Helper()
		p := filepath.Join(dir, "env")
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := filepath.Join(dir, "mailsec.toml")
	if err := os.WriteFile(cfg, []byte("data_dir = \"d\"\n[metrics]\nlisten = [\"127.0.0.20:9100\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	good := "# written by lab/up\nMAILSEC_CONFIG=" + cfg + "\nMAILSEC_DNS=127.0.0.10:53\nMAILSEC_SMTP=127.0.0.20:25\nMAILSEC_HTTPS=127.0.0.20:443\nRESOLVER=127.0.0.53:53\n" +
		"MAILSEC_WEB=http://127.0.0.20:8080\nLAB_STATE=/x/lab/state\nDOWNGRADE_SECONDS=10\nZONE_A=a.mailtest.example.\nZONE_B=b.mailtest.example.\n" +
		"MAILSEC_CMD=\"/x/mailsec -config /x/lab/mailsec.toml\"\n"
	e, err := LoadEnv(write(good))
	if err != nil {
		t.Fatal(err)
	}
	if e.Config.DataDir != filepath.Join(dir, "d") || len(e.Config.Metrics.Listen) != 1 {
		t.Fatalf("configuration: %+v", e.Config.Metrics)
	}
	if e.DNS.String() != "127.0.0.10:53" || e.ZoneA != "a.mailtest.example." || len(e.Command) != 3 || e.Command[2] != "/x/lab/mailsec.toml" {
		t.Fatalf("%+v", e)
	}
	for _, bad := range []string{"", "MAILSEC_DNS=127.0.0.10\n", good[:40]} {
		if _, err := LoadEnv(write(bad)); !errors.Is(err, ErrEnv) {
			t.Errorf("%q: err %v, want ErrEnv", bad, err)
		}
	}
	if _, err := LoadEnv(filepath.Join(dir, "missing")); !errors.Is(err, ErrEnv) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReportJSON(t *testing.T) {
	rep := Report{Checks: []Check{
		{Name: "R6 refusals", OK: true, Figures: map[string]any{"any_rrsets": 1}},
		{Name: "R1 relay", OK: false, Detail: "RCPT TO:<x>: 250"},
	}}
	if rep.OK() {
		t.Fatal("a failed check: the report is not OK")
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Checks []map[string]any `json:"checks"`
	}
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if back.Checks[0]["name"] != "R6 refusals" || back.Checks[0]["ok"] != true || back.Checks[0]["any_rrsets"] != 1.0 || back.Checks[1]["detail"] != "RCPT TO:<x>: 250" {
		t.Fatalf("%s", js)
	}
	if (Report{}).OK() {
		t.Fatal("no checks: not OK")
	}
}

// TestRunChecksBeside: the checks of one beside group run at the same time
// (each waits until every one of them has started: run one after another,
// they would wait for ever), the others alone, and the results keep the
// suite's order.
func TestRunChecksBeside(t *testing.T) {
	var started sync.WaitGroup
	started.Add(3)
	var running, most atomic.Int32
	together := func(s *Suite, ctx context.Context) Check {
		// Counted as running before it says it started: else the others
		// may see every start, return and leave before it counts itself
		// (seen under load: "at most 2 of the group ran at once").
		n := running.Add(1)
		defer running.Add(-1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		started.Done()
		waited := make(chan struct{})
		go func() { started.Wait(); close(waited) }()
		select {
		case <-waited:
			return Check{OK: true}
		case <-time.After(10 * time.Second):
			return Check{Detail: "the group's other checks never started"}
		}
	}
	alone := func(s *Suite, ctx context.Context) Check {
		if n := running.Add(1); n != 1 {
			running.Add(-1)
			return Check{Detail: fmt.Sprintf("%d checks running beside a lone one", n)}
		}
		defer running.Add(-1)
		time.Sleep(10 * time.Millisecond)
		return Check{OK: true}
	}
	chosen := []check{
		{"first", alone, ""},
		{"w1", together, "waits"},
		{"w2", together, "waits"},
		{"w3", together, "waits"},
		{"after", alone, ""},
		{"last", alone, ""},
	}
	got := (&Suite{}).runChecks(context.Background(), chosen)
	if len(got) != len(chosen) {
		t.Fatalf("%d results for %d checks", len(got), len(chosen))
	}
	for i, c := range got {
		if c.Name != chosen[i].name {
			t.Errorf("result %d is %q, want %q (order lost)", i, c.Name, chosen[i].name)
		}
		if !c.OK {
			t.Errorf("%s: %s", c.Name, c.Detail)
		}
	}
	if most.Load() != 3 {
		t.Errorf("at most %d of the group ran at once, want 3", most.Load())
	}
}
