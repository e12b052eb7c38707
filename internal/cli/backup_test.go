package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/store"
)

// backupConfig writes a configuration of a loopback service with its data
// in dir/data and returns the file's path.
func backupConfig(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "mailsec.toml")
	text := fmt.Sprintf(`data_dir = "data"
[dns]
listen = [%q]
[smtp]
listen = ["127.0.0.1:0"]
[policy_host]
listen = ["127.0.0.1:0"]
[web]
listen = []
[tls]
issuer = "local"
`, peertest.FreeAddr(t).String())
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// published is what the zones publish that must survive a restore: the DS
// records, and zone A's TLSA and DKIM records (from 'dns dump').
func published(t *testing.T, cfg string) string {
	t.Helper()
	code, ds, errOut := run(t, "-config", cfg, "dns", "ds")
	if code != 0 {
		t.Fatalf("dns ds: %d %s", code, errOut)
	}
	code, dump, errOut := run(t, "-config", cfg, "dns", "dump", "-zone", "a")
	if code != 0 {
		t.Fatalf("dns dump: %d %s", code, errOut)
	}
	var keep []string
	for _, l := range strings.Split(dump, "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[3] == "TLSA" || f[3] == "DNSKEY" || (f[3] == "TXT" && strings.Contains(f[0], "_domainkey"))) {
			keep = append(keep, strings.Join(f, " "))
		}
	}
	slices.Sort(keep)
	return ds + strings.Join(keep, "\n")
}

// TestBackupUnderLoadAndRestore: 'backup' while the service runs and a
// bounded loop writes tests, connections and due result mails; 'restore'
// into a fresh data directory: the restored store opens, holds every test
// written before the backup began, the zones publish the same DS, DNSKEY,
// TLSA and DKIM records, and the pending result mails are still due.
// 'restore' refuses a non-empty data directory unless -replace, and a
// damaged backup.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	dir := t.TempDir()
	cfgPath := backupConfig(t, dir)
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	running, err := service.Start(ctx, &cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer func() { cancel(); _ = running.Wait() }()
	st := running.Store
	before := published(t, cfgPath)

	// The load: tests with a connection each, every third final with a
	// result mail pending, due an hour from now (the running delivery
	// loop leaves it alone until then). Bounded: at most 5,000 tests or
	// 60 s, and it stops once the backup is written.
	due := time.Now().Add(time.Hour).UTC()
	var (
		mu        sync.Mutex
		committed []string // tests written, in order
		pending   []string // of those, the ones with a result mail pending
	)
	backupStarted := make(chan struct{})
	stop := make(chan struct{})
	loadDone := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(time.Minute)
		for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				loadDone <- nil
				return
			default:
			}
			now := time.Now().UTC()
			test := store.Test{ID: fmt.Sprintf("load%05d", i), Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen}
			if err := st.CreateTest(ctx, test); err != nil {
				loadDone <- err
				return
			}
			c := store.SMTPConnection{TestID: test.ID, Started: now, Client: netip.MustParseAddrPort("192.0.2.1:1000"), Persona: 4, State: store.StateMail}
			if err := st.InsertConnection(ctx, &c); err != nil {
				loadDone <- err
				return
			}
			final := i%3 == 0
			if final {
				test.State = store.TestFinal
				if err := st.FinalizeTest(ctx, test, store.TestResult{TestID: test.ID, Final: now, Verdict: []byte(`{"policy":"dane"}`),
					SenderDomain: "example.org", MailState: store.MailPending, Recipient: "user@example.org", Next: due, Message: []byte("mail")}); err != nil {
					loadDone <- err
					return
				}
			}
			mu.Lock()
			committed = append(committed, test.ID)
			if final {
				pending = append(pending, test.ID)
			}
			n := len(committed)
			mu.Unlock()
			if n == 100 {
				close(backupStarted)
			}
		}
		loadDone <- fmt.Errorf("the load ended before the backup did")
	}()
	select {
	case <-backupStarted:
	case err := <-loadDone:
		t.Fatalf("load: %v", err)
	}
	mu.Lock()
	writtenBefore := slices.Clone(committed)
	pendingBefore := slices.Clone(pending)
	mu.Unlock()
	backupDir := filepath.Join(dir, "backup")
	code, out, errOut := run(t, "-config", cfgPath, "backup", backupDir)
	close(stop)
	if err := <-loadDone; err != nil {
		t.Fatalf("load: %v", err)
	}
	if code != 0 {
		t.Fatalf("backup: %d %s", code, errOut)
	}
	mu.Lock()
	t.Logf("%s; %d tests written before the backup began, %d by its end", strings.TrimSpace(out), len(writtenBefore), len(committed))
	mu.Unlock()
	if code, _, errOut := run(t, "-config", cfgPath, "backup", backupDir); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("a second backup into the same directory: %d %s", code, errOut)
	}

	// Restore on another machine: a fresh configuration, same zones.
	dir2 := t.TempDir()
	cfg2 := backupConfig(t, dir2)
	code, out, errOut = run(t, "-config", cfg2, "restore", backupDir)
	if code != 0 {
		t.Fatalf("restore: %d %s", code, errOut)
	}
	if !strings.Contains(out, "DS at the parent must be:") {
		t.Errorf("restore printed:\n%s", out)
	}
	if after := published(t, cfg2); after != before {
		t.Errorf("published records differ after the restore:\n%s\nwant\n%s", after, before)
	}
	restored, err := store.Open(t.Context(), filepath.Join(dir2, "data", "mailsec.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	for _, id := range writtenBefore {
		if _, err := restored.Test(t.Context(), id); err != nil {
			t.Fatalf("test %s, written before the backup began: %v", id, err)
		}
	}
	dueMails, err := restored.DueResultMails(t.Context(), due, 0)
	if err != nil {
		t.Fatal(err)
	}
	var dueIDs []string
	for _, r := range dueMails {
		dueIDs = append(dueIDs, r.TestID)
	}
	for _, id := range pendingBefore {
		if !slices.Contains(dueIDs, id) {
			t.Fatalf("the result mail of %s is not due after the restore (%d due)", id, len(dueIDs))
		}
	}

	// A second restore onto the now full data directory: refused, then
	// done with -replace, the old directory kept aside.
	if code, _, errOut := run(t, "-config", cfg2, "restore", backupDir); code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("restore over a data directory: %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "-config", cfg2, "restore", "-replace", backupDir); code != 0 {
		t.Errorf("restore -replace: %d %s", code, errOut)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir2, "data.before-restore-*")); len(aside) != 1 {
		t.Errorf("data directories moved aside: %v", aside)
	}
	// A damaged backup is refused before anything is written.
	if err := os.WriteFile(filepath.Join(backupDir, "data", "keys", "persona-4.key"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir3 := t.TempDir()
	if code, _, errOut := run(t, "-config", backupConfig(t, dir3), "restore", backupDir); code == 0 || !strings.Contains(errOut, "damaged") {
		t.Errorf("restore of a damaged backup: %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir3, "data")); err == nil {
		t.Error("a refused restore wrote the data directory")
	}
}
