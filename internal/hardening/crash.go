package hardening

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// mailboxAddr is the lab mailbox's address (lab/lib.sh MAILBOX_ADDR), the
// MX of every NAME.sender.lab.internal.
var mailboxAddr = netip.MustParseAddrPort("127.0.0.30:25")

// senderSource is a source address inside 127.128.0.0/10, which the SPF
// record of *.sender.lab.internal allows (lab/lib.sh SENDER_SPF_RANGE).
func senderSource(a, b, c int) netip.Addr { return source(128+a%64, b, c) }

// providerDomain is the lab's provider row (web.providers).
const providerDomain = "prov.sender.lab.internal"

// unauthenticated: a test mail whose sender does not authenticate (SPF
// -all for noauth.lab.internal; a provider's domain sent from outside its
// SPF) gets no result mail, and the provider table does not change.
func (s *Suite) unauthenticated(ctx context.Context) Check {
	mb, err := startMailbox(mailboxAddr)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	defer mb.close()
	// The provider row (web.providers in the lab: prov.sender.lab.internal)
	// first gets a genuine, authenticated test.
	var bad []string
	genuine, err := s.createTest(ctx, source(83, 2, 1))
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	if code := s.sendTestMail(ctx, senderSource(1, 91, 1), "lab@"+providerDomain, genuine.A); code != 250 {
		bad = append(bad, fmt.Sprintf("the genuine provider test mail got %d", code))
	} else if _, err := s.waitFinal(ctx, genuine, time.Now().Add(3*time.Minute)); err != nil {
		bad = append(bad, err.Error())
	}
	before, err := s.providerTable(ctx)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	if !bytes.Contains(before, []byte(providerDomain)) || !bytes.Contains(before, []byte(`"policy":"none"`)) && !bytes.Contains(before, []byte(`"policy": "none"`)) {
		bad = append(bad, fmt.Sprintf("no row for %s's genuine test in the provider table (is web.providers set?): %.300s", providerDomain, before))
	}
	cases := []struct {
		what, from string
		src        netip.Addr
	}{
		{"SPF -all", "x@noauth.lab.internal", senderSource(1, 90, 1)},
		// The provider's domain, whose SPF allows 127.128.0.0/10, sent
		// from outside it in plain text: a forged provider test.
		{"forged provider", "x@" + providerDomain, source(82, 1, 1)},
	}
	type pending struct {
		what, from string
		test       createdTest
	}
	var ps []pending
	for i, c := range cases {
		t, err := s.createTest(ctx, source(83, 1, 1+i))
		if err != nil {
			return result([]string{err.Error()}, nil, "")
		}
		if code := s.sendTestMail(ctx, c.src, c.from, t.A); code != 250 {
			bad = append(bad, fmt.Sprintf("%s: the test mail got %d", c.what, code))
			continue
		}
		ps = append(ps, pending{c.what, c.from, t})
	}
	deadline := time.Now().Add(3 * time.Minute)
	states := map[string]string{}
	for _, p := range ps {
		t, err := s.waitFinal(ctx, p.test, deadline)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", p.what, err))
			continue
		}
		states[p.what] = t.Report.Mail.State
		if t.Report.Mail.State != "withheld" {
			bad = append(bad, fmt.Sprintf("%s: result mail %s, want withheld", p.what, t.Report.Mail.State))
		}
	}
	time.Sleep(3 * time.Second) // a mail that went out anyway would be here by now
	for _, p := range ps {
		if n := mb.count(p.from); n != 0 {
			bad = append(bad, fmt.Sprintf("%s: %d mail(s) reached %s", p.what, n, p.from))
		}
	}
	after, err := s.providerTable(ctx)
	if err != nil {
		bad = append(bad, err.Error())
	} else if !bytes.Equal(before, after) {
		bad = append(bad, fmt.Sprintf("the provider table changed: %s → %s", before, after))
	}
	return result(bad, map[string]any{"tests": len(cases), "mail_states": states},
		fmt.Sprintf("%d unauthenticated tests: result mails %v, none delivered, provider table unchanged", len(ps), states))
}

// providerTable reads GET /api/v1/providers.
func (s *Suite) providerTable(ctx context.Context) ([]byte, error) {
	resp, err := httpFrom(source(81, 2, 1)).Get(strings.TrimSuffix(s.Env.Web, "/") + "/api/v1/providers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return nil, err
	}
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /api/v1/providers: %s", resp.Status)
	}
	return b.Bytes(), nil
}

// crash sends Sizes.CrashSessions scripted test sessions (authenticated
// senders, Sizes.CrashTests tests) while killing the service with SIGKILL
// Sizes.CrashKills times and starting it again as it was started: every
// 250 a client saw is an acknowledged connection of its test, the store
// passes its integrity check, every test becomes final and its result mail
// arrives at least once and at most twice.
func (s *Suite) crash(ctx context.Context) Check {
	mb, err := startMailbox(mailboxAddr)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	defer mb.close()
	id := runID()
	type testRun struct {
		createdTest
		dom  string
		acks atomic.Int64 // 250s the senders saw
	}
	tests := make([]*testRun, s.Sizes.CrashTests)
	for i := range tests {
		t, err := s.createTest(ctx, source(84, 1+i/200, 1+i%200))
		if err != nil {
			return result([]string{err.Error()}, nil, "")
		}
		tests[i] = &testRun{createdTest: t, dom: fmt.Sprintf("r4-%s-%d.sender.lab.internal", id, i)}
	}
	var sent, acked, broken atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	sem := make(chan struct{}, 20)
	go func() {
		defer close(done)
		for i := range s.Sizes.CrashSessions {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				t := tests[i%len(tests)]
				code := s.sendTestMail(ctx, senderSource(i/250, 1+i%250, 7), "lab@"+t.dom, t.A)
				sent.Add(1)
				switch code {
				case 250:
					acked.Add(1)
					t.acks.Add(1)
				default:
					broken.Add(1)
				}
			}()
			time.Sleep(50 * time.Millisecond)
		}
		wg.Wait()
	}()
	var bad []string
	kills := 0
	// The sessions take about their count × 50 ms to start plus a retry
	// after the downgrade window: spread the kills over that.
	every := (time.Duration(s.Sizes.CrashSessions)*50*time.Millisecond + s.Env.Downgrade) / time.Duration(s.Sizes.CrashKills+1)
	for kills < s.Sizes.CrashKills {
		select {
		case <-done:
		case <-time.After(every):
		}
		if err := s.killAndRestart(ctx); err != nil {
			bad = append(bad, err.Error())
			break
		}
		kills++
	}
	<-done
	// Every test final, its result mail settled, within the quiet time
	// (timing.ack_after) and a margin.
	deadline := time.Now().Add(3 * time.Minute)
	var notAcked []string
	var mailsOK, finals int
	for _, t := range tests {
		rt, err := s.waitFinal(ctx, t.createdTest, deadline)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		finals++
		n := 0
		for _, h := range rt.Report.History {
			if h.State == "Acked" {
				n++
			}
		}
		if int64(n) < t.acks.Load() {
			notAcked = append(notAcked, fmt.Sprintf("%s: %d acknowledged in the store, %d 250s seen", t.ID, n, t.acks.Load()))
		}
		if t.acks.Load() > 0 && rt.Report.Mail.State != "sent" {
			bad = append(bad, fmt.Sprintf("%s: result mail %s", t.ID, rt.Report.Mail.State))
		}
	}
	time.Sleep(3 * time.Second)
	var dupes []string
	for _, t := range tests {
		n := mb.count("lab@" + t.dom)
		switch {
		case t.acks.Load() == 0:
		case n == 0:
			bad = append(bad, fmt.Sprintf("%s: no result mail arrived", t.ID))
		case n > 2:
			bad = append(bad, fmt.Sprintf("%s: %d result mails arrived", t.ID, n))
		default:
			mailsOK++
			if n == 2 {
				dupes = append(dupes, t.ID)
			}
		}
	}
	bad = append(bad, notAcked...)
	integrity := ""
	args := append(append([]string(nil), s.Env.Command[1:]...), "store", "stats", "-integrity")
	if out, err := exec.CommandContext(ctx, s.Env.Command[0], args...).CombinedOutput(); err != nil {
		bad = append(bad, fmt.Sprintf("integrity check: %v: %s", err, out))
		integrity = "failed"
	} else {
		integrity = "ok"
	}
	figures := map[string]any{"sessions": sent.Load(), "acknowledged_250": acked.Load(), "not_acknowledged": broken.Load(), "kills": kills,
		"tests": len(tests), "tests_final": finals, "result_mails_ok": mailsOK, "result_mails_twice": len(dupes), "integrity": integrity}
	return result(bad, figures, fmt.Sprintf("%d sessions, %d kill -9: %d got 250 (all in the store), %d did not; %d of %d tests final, %d result mails right (%d twice); integrity %s",
		sent.Load(), kills, acked.Load(), broken.Load(), finals, len(tests), mailsOK, len(dupes), integrity))
}

// serviceProcess is how the running service was started.
type serviceProcess struct {
	pid      int
	argv     []string
	env      []string
	dir      string
	pidsFile string
	pids     string
}

// findService reads the service's pid from lab/state/pids and its command
// line, environment and directory from /proc.
func (s *Suite) findService() (serviceProcess, error) {
	sp := serviceProcess{pidsFile: filepath.Join(s.Env.State, "pids")}
	pids, err := os.ReadFile(sp.pidsFile)
	if err != nil {
		return sp, fmt.Errorf("restart: %w", err)
	}
	sp.pids = string(pids)
	for _, line := range strings.Split(sp.pids, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "mailsec" {
			sp.pid, _ = strconv.Atoi(f[1])
		}
	}
	if sp.pid == 0 {
		return sp, fmt.Errorf("restart: no mailsec pid in %s", sp.pidsFile)
	}
	proc := fmt.Sprintf("/proc/%d", sp.pid)
	cmdline, err1 := os.ReadFile(proc + "/cmdline")
	environ, err2 := os.ReadFile(proc + "/environ")
	cwd, err3 := os.Readlink(proc + "/cwd")
	if err := firstErr(err1, err2, err3); err != nil {
		return sp, fmt.Errorf("restart: reading pid %d: %w", sp.pid, err)
	}
	sp.argv, sp.env, sp.dir = splitNul(cmdline), splitNul(environ), cwd
	if len(sp.argv) == 0 {
		return sp, fmt.Errorf("restart: pid %d has no command line", sp.pid)
	}
	return sp, nil
}

// kill ends the service with SIGKILL and waits until it is gone.
func (sp serviceProcess) kill() error {
	if err := syscall.Kill(sp.pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("restart: kill -9 %d: %w", sp.pid, err)
	}
	proc := fmt.Sprintf("/proc/%d", sp.pid)
	for i := 0; ; i++ { // gone (or a zombie of lab/up's shell)
		st, err := os.ReadFile(proc + "/stat")
		if err != nil || bytes.Contains(st, []byte(") Z ")) {
			return nil
		}
		if i > 100 {
			return fmt.Errorf("restart: pid %d still alive after SIGKILL", sp.pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// start runs the service again as it was started, its output appended to
// its log and to out (if not nil).
func (s *Suite) start(sp serviceProcess, out *bytes.Buffer) (*exec.Cmd, <-chan struct{}, error) {
	logf, err := os.OpenFile(filepath.Join(s.Env.State, "logs", "mailsec.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, fmt.Errorf("restart: %w", err)
	}
	cmd := exec.Command(sp.argv[0], sp.argv[1:]...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = sp.env, sp.dir, logf, logf
	if out != nil {
		w := io.MultiWriter(logf, out)
		cmd.Stdout, cmd.Stderr = w, w
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, nil, fmt.Errorf("restart: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	return cmd, done, nil
}

// adopt records cmd as the lab's mailsec (lab/down stops it) and waits
// until SMTP greets.
func (s *Suite) adopt(ctx context.Context, sp serviceProcess, cmd *exec.Cmd) error {
	newPids := strings.ReplaceAll(sp.pids, fmt.Sprintf("mailsec %d\n", sp.pid), fmt.Sprintf("mailsec %d\n", cmd.Process.Pid))
	if err := os.WriteFile(sp.pidsFile, []byte(newPids), 0o644); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ok, _ := smtpGreets(ctx, source(85, 1, 1), s.Env.SMTP); ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("restart: SMTP does not greet 60 s after the restart (log %s)", filepath.Join(s.Env.State, "logs", "mailsec.log"))
		}
	}
}

// killAndRestart kills the service (SIGKILL) and starts it again with the
// same command line, environment and directory; lab/state/pids is updated
// so lab/down stops the new process. It returns once SMTP greets again.
func (s *Suite) killAndRestart(ctx context.Context) error {
	sp, err := s.findService()
	if err != nil {
		return err
	}
	if err := sp.kill(); err != nil {
		return err
	}
	cmd, _, err := s.start(sp, nil)
	if err != nil {
		return err
	}
	return s.adopt(ctx, sp, cmd)
}

// missingKeys stops the service, moves the DNSSEC key directory of its
// populated store aside and starts it: it must refuse to start (exit
// non-zero, naming the key), not make new keys that would turn both zones
// bogus. Then the keys go back and the service starts as before.
func (s *Suite) missingKeys(ctx context.Context) Check {
	keys := filepath.Join(s.Env.Config.DataDir, "keys")
	aside := keys + ".hardening-aside"
	sp, err := s.findService()
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	if err := sp.kill(); err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	var bad []string
	if err := os.Rename(keys, aside); err != nil {
		bad = append(bad, err.Error())
	}
	var output bytes.Buffer
	code, said := -1, ""
	if len(bad) == 0 {
		cmd, exited, err := s.start(sp, &output)
		if err != nil {
			bad = append(bad, err.Error())
		} else {
			select {
			case <-exited:
				code = cmd.ProcessState.ExitCode()
			case <-time.After(30 * time.Second):
				bad = append(bad, "the service started without its keys (still running after 30 s)")
				_ = cmd.Process.Kill()
				<-exited
			}
			said = strings.TrimSpace(lastLine(output.String()))
			if code == 0 || !strings.Contains(strings.ToLower(output.String()), "key") {
				bad = append(bad, fmt.Sprintf("without its keys: exit %d, %q", code, said))
			}
		}
		// The zones' keys are the ones the parents' DS records name; the
		// others (personas, DKIM) live in our own signed zone.
		made, _ := os.ReadDir(keys)
		for _, f := range made {
			for _, z := range []string{s.Env.ZoneA, s.Env.ZoneB} {
				if strings.HasPrefix(f.Name(), strings.TrimSuffix(z, ".")+".") {
					bad = append(bad, "a new zone key was made: "+f.Name())
				}
			}
		}
		_ = os.RemoveAll(keys) // what the start made before it refused
		if err := os.Rename(aside, keys); err != nil {
			bad = append(bad, "putting the keys back: "+err.Error())
		}
	}
	cmd, _, err := s.start(sp, nil)
	if err == nil {
		err = s.adopt(ctx, sp, cmd)
	}
	if err != nil {
		bad = append(bad, "restarting with the keys: "+err.Error())
	}
	return result(bad, map[string]any{"exit_code": code, "message": said},
		fmt.Sprintf("without its key directory the service exits %d: %q; with it back it serves again", code, said))
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func splitNul(b []byte) []string {
	var out []string
	for _, f := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		if len(f) > 0 {
			out = append(out, string(f))
		}
	}
	return out
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
