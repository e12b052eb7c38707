package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// TestTestShowResult: `mailsec test show` says where and when the result
// mail went; -mail prints the message as sent.
func TestTestShowResult(t *testing.T) {
	cfg, st := configAndStore(t, "[web]\nbase_url = \"https://mailsec.example\"\n")
	ctx := t.Context()
	now := time.Now().UTC()
	tt := store.Test{ID: "res", Created: now, Updated: now, Kind: store.TestToken, Sender: "j@example.org", State: store.TestFinal}
	if err := st.CreateTest(ctx, tt); err != nil {
		t.Fatal(err)
	}
	r := store.TestResult{TestID: "res", Final: now, Verdict: []byte(`{"policy":"dane-only"}`), SenderDomain: "example.org",
		MailState: store.MailSent, MailReason: "delivered to mx.example.org [192.0.2.1]", Attempts: 1, Sent: now,
		DeliveredTo: "mx.example.org [192.0.2.1]", MessageID: "<res.1@a.example>", Message: []byte("Subject: x\r\n\r\nbody\r\n")}
	if err := st.FinalizeTest(ctx, tt, r); err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateResultMail(ctx, r, &store.MailAttempt{Time: now, Status: "delivered", Detail: "mx.example.org delivered"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errOut := run(t, "-config", cfg, "test", "show", "res")
	if code != exitOK || !strings.Contains(out, "dane-only. Result mail: sent") || !strings.Contains(out, "Report: https://mailsec.example/t/res") ||
		!strings.Contains(out, "attempt ") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = run(t, "-config", cfg, "test", "show", "-json", "res")
	var v struct {
		Result struct {
			Policy    string
			ReportURL string `json:"report_url"`
		}
		MailAttempts []store.MailAttempt `json:"mail_attempts"`
	}
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || v.Result.Policy != "dane-only" || v.Result.ReportURL == "" || len(v.MailAttempts) != 1 {
		t.Fatalf("exit %d %v\n%s", code, err, out)
	}
	code, out, _ = run(t, "-config", cfg, "test", "show", "-mail", "res")
	if code != exitOK || out != "Subject: x\r\n\r\nbody\r\n" {
		t.Fatalf("-mail: exit %d %q", code, out)
	}
}

// configAndStore writes a configuration file (data_dir "data" and extra)
// and opens its store; the caller closes the store before running mailsec.
func configAndStore(t *testing.T, extra string) (string, *store.Store) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "mailsec.toml")
	if err := os.WriteFile(cfg, []byte("data_dir = \"data\"\n"+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), filepath.Join(dir, "data", "mailsec.db"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg, st
}
