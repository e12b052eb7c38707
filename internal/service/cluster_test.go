package service

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailsec/mailsec/internal/cluster"
	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/pgtest"
	"github.com/mailsec/mailsec/internal/store"
)

// resultInbox is the user's MTA receiving result mails: go-smtp on
// loopback, counting what arrives per recipient.
type resultInbox struct {
	mu    sync.Mutex
	mails map[string]int
}

func (b *resultInbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &inboxSession{b: b}, nil }

func (b *resultInbox) count(rcpt string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mails[rcpt]
}

type inboxSession struct {
	b    *resultInbox
	rcpt []string
}

func (s *inboxSession) Reset()                               { s.rcpt = nil }
func (s *inboxSession) Logout() error                        { return nil }
func (s *inboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *inboxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpt = append(s.rcpt, to)
	return nil
}
func (s *inboxSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	for _, rc := range s.rcpt {
		s.b.mails[rc]++
	}
	return nil
}

// clusterNode is one node's configuration: its own data directory (the
// key files copied from keyDir, "" for none) and loopback address, the
// shared store.
func clusterNode(t *testing.T, name, addr, dsn, keyDir, resolverAddr string, inboxPort int) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	if keyDir != "" {
		if err := os.CopyFS(cfg.KeyDir(), os.DirFS(keyDir)); err != nil {
			t.Fatal(err)
		}
	}
	cfg.Node.Name = name
	cfg.Node.Heartbeat.Duration, cfg.Node.DeadAfter.Duration = 200*time.Millisecond, 3*time.Second
	cfg.Store.Driver, cfg.Store.DSN = store.DriverPostgres, dsn
	cfg.DNS.Listen = []string{net.JoinHostPort(addr, strconv.Itoa(int(peertest.FreeAddr(t).Port())))}
	cfg.SMTP.Listen = []string{addr + ":0"}
	cfg.PolicyHost.Listen = []string{addr + ":0"}
	cfg.Web.Listen = nil
	cfg.TLS.Issuer = "local"
	cfg.Resolver.Address = resolverAddr
	cfg.Inbound.CheckSenders = false
	cfg.Network.AllowDestinations = []string{"127.0.0.0/8"}
	cfg.ResultMail.Port = inboxPort
	cfg.ResultMail.Interval.Duration = 100 * time.Millisecond
	// A test is final once nothing happened for test_expiry; zone B is
	// acknowledged once the client's downgrade window is over.
	cfg.Timing.DowngradeWindow.Duration = 2 * time.Second
	cfg.Timing.TestExpiry.Duration = 3 * time.Second
	return cfg
}

// startNode starts cfg's node with a context of its own, cancelled when
// the test ends or by the returned function.
func startNode(t *testing.T, cfg config.Config) (*Running, context.CancelFunc) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	run, err := Start(ctx, &cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = run.Wait() })
	return run, cancel
}

// waitFor polls cond every 20 ms until it holds, at most limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("not within %s: %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// nodeProcessEnv carries TestNodeProcess's configuration (JSON).
const nodeProcessEnv = "MAILSEC_TEST_NODE_CONFIG"

// TestNodeProcess runs a node from the configuration in nodeProcessEnv
// until it is killed: TestTwoNodes's node 1, the test binary run again,
// so that a real SIGKILL ends it. It prints "READY <SMTP address> <keys>
// <DS of A>" once it serves.
func TestNodeProcess(t *testing.T) {
	raw := os.Getenv(nodeProcessEnv)
	if raw == "" {
		t.Skip("a helper process of TestTwoNodes")
	}
	var cfg config.Config
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	run, err := Start(context.Background(), &cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("READY %s %s %s\n", run.SMTPAddrs[0], PublishedKeys(run.Zones), strings.ReplaceAll(run.Zones.KeyA.DS().String(), "\t", " "))
	t.Fatalf("node stopped: %v", run.Wait())
}

// nodeProcess is a node running in TestNodeProcess.
type nodeProcess struct {
	cmd      *exec.Cmd
	smtp     string // its SMTP address
	keys, ds string // PublishedKeys, DS of zone A
}

// startNodeProcess runs cfg's node in a process of its own until it is
// killed or the test ends.
func startNodeProcess(t *testing.T, cfg config.Config) *nodeProcess {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNodeProcess$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), nodeProcessEnv+"="+string(raw))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) > 3 && f[0] == "READY" {
				ready <- f
			}
		}
		close(ready)
	}()
	select {
	case f, ok := <-ready:
		if !ok {
			t.Fatal("the node process ended before it served")
		}
		return &nodeProcess{cmd: cmd, smtp: f[1], keys: f[2], ds: strings.Join(f[3:], " ")}
	case <-time.After(60 * time.Second):
		t.Fatal("the node process did not serve within 60 s")
	}
	return nil
}

// TestTwoNodes: two service.Start instances on one PostgreSQL database,
// on 127.0.0.1 and 127.0.0.2 (docs/cluster.md).
//   - Node 2, given node 1's key files, publishes the same DS and keys; a
//     node with keys of its own refuses to start.
//   - Exactly one node leads.
//   - A test mail to zone B over node 1 gets the downgrade window's 451;
//     its retry over node 2 once the window is over gets the 250: node 2
//     reads the window node 1 started, and acknowledges.
//   - The leader, node 1 in a process of its own (TestNodeProcess), is
//     killed with SIGKILL before the test is final: node 2 takes the lock,
//     finalises the test and sends the result mail, once.
//
// The figures of docs/cluster.md "Failover" come from its log.
func TestTwoNodes(t *testing.T) {
	dsn := pgtest.Database(t)
	userDNS := peertest.StartDNS(t)
	userDNS.Set(t, "user.example. 60 IN MX 10 mx.user.example.", "mx.user.example. 60 IN A 127.0.0.1",
		`user.example. 60 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
	inbox := &resultInbox{mails: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := smtp.NewServer(inbox)
	srv.Domain, srv.ReadTimeout, srv.WriteTimeout = "mx.user.example", 10*time.Second, 10*time.Second
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	inboxPort := l.Addr().(*net.TCPAddr).Port

	cfg1 := clusterNode(t, "node1", "127.0.0.1", dsn, "", userDNS.Addr, inboxPort)
	node1 := startNodeProcess(t, cfg1)
	cfg2 := clusterNode(t, "node2", "127.0.0.2", dsn, cfg1.KeyDir(), userDNS.Addr, inboxPort)
	run2, stop2 := startNode(t, cfg2)
	defer stop2()
	if ds2, keys2 := strings.Join(strings.Fields(run2.Zones.KeyA.DS().String()), " "), PublishedKeys(run2.Zones); node1.ds != ds2 || node1.keys != keys2 {
		t.Fatalf("the nodes publish different keys: DS %s / %s, keys %s / %s", node1.ds, ds2, node1.keys, keys2)
	}
	node1Leads := func() bool {
		nodes, err := run2.Store.Nodes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if n.Name == "node1" {
				return n.Leading
			}
		}
		return false
	}

	// A node with key files of its own is refused while the others live.
	cfg3 := clusterNode(t, "node3", "127.0.0.3", dsn, "", userDNS.Addr, inboxPort)
	if _, err := BuildZones(&cfg3, time.Now(), CreateZoneKeys); err != nil {
		t.Fatal(err)
	}
	if run3, err := Start(t.Context(), &cfg3, slog.New(slog.DiscardHandler)); !errors.Is(err, cluster.ErrKeysDiffer) {
		if err == nil {
			run3.Wait()
		}
		t.Fatalf("a node with other keys: Start = %v, want ErrKeysDiffer", err)
	}

	// Exactly one leader, over several heartbeats: node 1, which started
	// first.
	waitFor(t, 10*time.Second, "node 1 leads", node1Leads)
	for range 10 {
		if l1, l2 := node1Leads(), run2.Leading(); !l1 || l2 {
			t.Fatalf("leading: node1 %v, node2 %v; want node 1 alone", l1, l2)
		}
		time.Sleep(cfg1.Node.Heartbeat.Duration / 2)
	}

	// The test mail: 451 over node 1 (the window starts), 250 over node 2
	// once it is over.
	ctx := t.Context()
	now := time.Now()
	test := store.Test{ID: "clusteraaaaaaaaa", Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen}
	if err := run2.Store.CreateTest(ctx, test); err != nil {
		t.Fatal(err)
	}
	rcpt := "t-" + test.ID + "@" + strings.TrimSuffix(cfg1.Zones.B, ".")
	const from = "someone@user.example"
	body := "From: " + from + "\r\nSubject: test\r\n\r\nhello\r\n"
	var reply *smtp.SMTPError
	if err := sendMail(node1.smtp, "mail.user.example", from, rcpt, body); !errors.As(err, &reply) || reply.Code != 451 {
		t.Fatalf("first mail over node 1: %v, want the downgrade window's 451", err)
	}
	conns, err := run2.Store.Connections(ctx, store.ConnectionFilter{TestID: test.ID})
	if err != nil || len(conns) == 0 {
		t.Fatalf("node 1's connection: %+v, %v", conns, err)
	}
	windowEnd := conns[0].Started.Add(cfg1.Timing.DowngradeWindow.Duration)
	time.Sleep(time.Until(windowEnd) + 100*time.Millisecond)
	if err := sendMail(run2.SMTPAddrs[0].String(), "mail.user.example", from, rcpt, body); err != nil {
		t.Fatalf("retry over node 2 after node 1's window: %v, want 250", err)
	}
	got, err := run2.Store.Test(ctx, test.ID)
	if err != nil || got.Sender != from {
		t.Fatalf("after node 2's 250 the test is %+v, %v", got, err)
	}
	if conns, err = run2.Store.Connections(ctx, store.ConnectionFilter{TestID: test.ID}); err != nil || len(conns) != 2 ||
		conns[0].Node != "node1" || conns[1].Node != "node2" || conns[1].State != store.StateAcked {
		t.Fatalf("connections: %+v, %v", conns, err)
	}

	// The leader is killed (SIGKILL) before the test is final: node 2
	// takes over.
	killed := time.Now()
	if err := node1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = node1.cmd.Wait()
	takeover := waitFor(t, 10*time.Second, "node 2 leads", run2.Leading)
	waitFor(t, 30*time.Second, "the test is final", func() bool {
		r, err := run2.Store.Result(ctx, test.ID)
		return err == nil && !r.Final.IsZero()
	})
	finalised := time.Since(killed)
	waitFor(t, 30*time.Second, "the result mail arrives", func() bool { return inbox.count(from) > 0 })
	mailed := time.Since(killed)
	// A second mail would be sent in the next rounds of the deliverer
	// (every 100 ms): give it twenty.
	time.Sleep(20 * cfg2.ResultMail.Interval.Duration)
	if n := inbox.count(from); n != 1 {
		t.Errorf("%d result mails received, want 1", n)
	}
	r, err := run2.Store.Result(ctx, test.ID)
	if err != nil || r.MailState != store.MailSent || r.Attempts != 1 {
		t.Errorf("result: state %s attempts %d, %v", r.MailState, r.Attempts, err)
	}
	t.Logf("failover: node 2 led %s after node 1 was killed; test final %s, result mail received %s after (test_expiry %s, heartbeat %s)",
		takeover.Round(time.Millisecond), finalised.Round(time.Millisecond), mailed.Round(time.Millisecond),
		cfg2.Timing.TestExpiry.Duration, cfg2.Node.Heartbeat.Duration)
}
