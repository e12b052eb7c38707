package cli

import (
	"encoding/json"
	"net/netip"
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
	c := store.SMTPConnection{TestID: "res", Started: now, Ended: now, Client: netip.MustParseAddrPort("192.0.2.7:4000"), Persona: 4,
		State: store.StateAcked, MailFrom: "j@example.org", Authentication: &store.Authentication{
			DKIM:        []store.Signature{{Type: "dkim", Domain: "example.org", Selector: "sel1", Result: "fail", Reason: "body hash mismatch"}},
			SPFMailFrom: store.SPFCheck{Domain: "example.org", Result: "pass"}, SPFHELO: store.SPFCheck{Result: "none"},
			DMARC: store.DMARCCheck{FromDomain: "example.org", Result: "pass", SPFAligned: true, SPFAlignment: "relaxed"}, ARC: store.ARCCheck{Result: "none"}}}
	if err := st.InsertConnection(ctx, &c); err != nil {
		t.Fatal(err)
	}
	// A test from before owner keys: its ID is its key, so its report
	// link is by the ID (migration 0015).
	if err := st.AddOwnerKey(ctx, "res", "res", store.KeyLegacyID, now); err != nil {
		t.Fatal(err)
	}
	st.Close()
	code, out, errOut := run(t, "-config", cfg, "test", "show", "res")
	if code != exitOK || !strings.Contains(out, "dane-only. Result mail: sent") || !strings.Contains(out, "Report: https://mailsec.example/t/res") ||
		!strings.Contains(out, "attempt ") || !strings.Contains(out, "Owner keys: legacy_id ") ||
		!strings.Contains(out, "\n  DKIM: fail (d=example.org, s=sel1): body hash mismatch\n  SPF (MAIL FROM example.org): pass\n") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = run(t, "-config", cfg, "test", "show", "-json", "res")
	var v struct {
		Result struct {
			Policy    string
			ReportURL string `json:"report_url"`
		}
		MailAttempts   []store.MailAttempt `json:"mail_attempts"`
		Authentication struct {
			SPFMailFrom store.SPFCheck `json:"spf_mail_from"`
			Lines       []string
		}
		Facts map[string]any
	}
	if err := json.Unmarshal([]byte(out), &v); code != exitOK || err != nil || v.Result.Policy != "dane-only" || v.Result.ReportURL == "" || len(v.MailAttempts) != 1 ||
		v.Authentication.SPFMailFrom.Result != "pass" || len(v.Authentication.Lines) != 5 || v.Facts["DKIM"] != "fail" || v.Facts["DMARC"] != "pass" {
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

// TestTestNewOwnerKey: `mailsec test new` gives the test's owner key and
// private link once; the key opens the test, the ID does not, and `test
// show` by ID (the operator's local read) says how the key was made.
func TestTestNewOwnerKey(t *testing.T) {
	cfg, st := configAndStore(t, "[web]\nbase_url = \"https://mailsec.example\"\n")
	st.Close()
	code, out, errOut := run(t, "-config", cfg, "test", "new", "-json")
	var a testAddresses
	if err := json.Unmarshal([]byte(out), &a); code != exitOK || err != nil {
		t.Fatalf("test new: exit %d %v\n%s%s", code, err, out, errOut)
	}
	if len(a.OwnerKey) != store.OwnerKeyLen || a.URL != "https://mailsec.example/t/"+a.OwnerKey {
		t.Fatalf("test new: owner key %q, url %q", a.OwnerKey, a.URL)
	}
	code, out, _ = run(t, "-config", cfg, "test", "new")
	if code != exitOK || !strings.Contains(out, "Owner key (shown once") || !strings.Contains(out, "Private link: https://mailsec.example/t/") {
		t.Fatalf("test new (text): exit %d\n%s", code, out)
	}
	code, out, _ = run(t, "-config", cfg, "test", "show", "-json", a.ID)
	var shown struct {
		OwnerKeys []store.OwnerKeyInfo `json:"owner_keys"`
	}
	if err := json.Unmarshal([]byte(out), &shown); code != exitOK || err != nil || len(shown.OwnerKeys) != 1 || shown.OwnerKeys[0].Via != store.KeyCreated ||
		strings.Contains(out, a.OwnerKey) {
		t.Fatalf("test show -json: exit %d %v\n%s", code, err, out)
	}
	st2, err := store.Open(t.Context(), filepath.Join(filepath.Dir(cfg), "data", "mailsec.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	if got, err := st2.TestByOwnerKey(t.Context(), a.OwnerKey); err != nil || got.ID != a.ID {
		t.Fatalf("the key opens %+v, %v; want %s", got, err, a.ID)
	}
	if _, err := st2.TestByOwnerKey(t.Context(), a.ID); err == nil {
		t.Fatal("the test ID opens the test")
	}
}
