package scan

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/inbound"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

// The tests in this file run the real inbound check (inbound.Check through
// InboundChecker) for every domain, through a real Unbound that serves the
// domains from local data, against SMTP listeners on loopback that count
// the sessions they hold at once: the caps and the host cache are asserted
// from the servers' side.

const (
	sharedMX = "127.0.9.1" // mx.hoster.scan.example, MX of the h* domains
	ownMX    = "127.0.9.2" // mxN.own.scan.example, one name per o* domain
	tarpitMX = "127.0.9.3" // accepts and never greets
)

type world struct {
	resolver string
	port     int
	shared   *countingSMTP
	own      *countingSMTP
	list     string
}

// listenSamePort listens on every address with one port number.
func listenSamePort(t *testing.T, addrs ...string) []net.Listener {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", addrs[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		ls := []net.Listener{first}
		for _, a := range addrs[1:] {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", a, port))
			if err != nil {
				break
			}
			ls = append(ls, l)
		}
		if len(ls) == len(addrs) {
			return ls
		}
		for _, l := range ls {
			l.Close()
		}
	}
	t.Fatal("no port free on every address")
	return nil
}

func startWorld(t *testing.T) *world {
	t.Helper()
	ls := listenSamePort(t, sharedMX, ownMX, tarpitMX)
	w := &world{port: ls[0].Addr().(*net.TCPAddr).Port}
	w.shared = serveCounting(t, ls[0])
	w.own = serveCounting(t, ls[1])
	// The tarpit holds connections open without a word.
	var held sync.WaitGroup
	held.Go(func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ls[2].Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	})
	t.Cleanup(func() { ls[2].Close(); held.Wait() })

	var data, list strings.Builder
	list.WriteString("# domains of the scan test\n")
	fmt.Fprintf(&data, "  local-data: \"mx.hoster.scan.example. 60 IN A %s\"\n", sharedMX)
	for i := range 30 {
		fmt.Fprintf(&data, "  local-data: \"h%d.scan.example. 60 IN MX 10 mx.hoster.scan.example.\"\n", i)
		fmt.Fprintf(&list, "h%d.scan.example,hoster\n", i)
	}
	for i := range 16 {
		fmt.Fprintf(&data, "  local-data: \"o%d.scan.example. 60 IN MX 10 mx%d.own.scan.example.\"\n", i, i)
		fmt.Fprintf(&data, "  local-data: \"mx%d.own.scan.example. 60 IN A %s\"\n", i, ownMX)
		fmt.Fprintf(&list, "o%d.scan.example,own\n", i)
	}
	fmt.Fprintf(&data, "  local-data: \"slow.scan.example. 60 IN MX 10 tarpit.scan.example.\"\n")
	fmt.Fprintf(&data, "  local-data: \"tarpit.scan.example. 60 IN A %s\"\n", tarpitMX)
	list.WriteString("slow.scan.example,misbehaving\nnot_a..domain\nH1.SCAN.example.,duplicate\n")
	u := peertest.StartUnbound(t, peertest.UnboundOptions{Extra: "  local-zone: \"scan.example.\" static\n" + data.String()})
	w.resolver = u.Addr.String()
	w.list = list.String()
	return w
}

// serveCounting serves the counting SMTP greeter of scan_test.go on l.
func serveCounting(t *testing.T, l net.Listener) *countingSMTP {
	t.Helper()
	s := &countingSMTP{ln: l}
	s.wg.Go(func() { s.serve() })
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	return s
}

func (w *world) checker(perDest int, hostTTL time.Duration, base context.Context) (Checker, *HostCache[inbound.Address]) {
	opts := inbound.Options{Resolver: w.resolver, AllowPrivate: true, Timeout: 5 * time.Second, StepTimeout: 2 * time.Second,
		Port: w.port, HELO: "scan-test.example"}
	hosts := NewHostCache[inbound.Address](base, hostTTL, opts.Timeout)
	return InboundChecker(opts, NewDestinations(perDest), hosts), hosts
}

func records(t *testing.T, st *store.Store, id string) map[int64]Record {
	t.Helper()
	out := map[int64]Record{}
	sc := bufio.NewScanner(strings.NewReader(jsonl(t, st, id)))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		out[r.Line] = r
	}
	return out
}

func TestScanRealChecks(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		w := startWorld(t)
		st := openStore(t, driver)
		ls := newScanNorm(t, st, "s", w.list)
		if ls.Domains != 47 || ls.Invalid != 1 || ls.Duplicates != 1 {
			t.Fatalf("load %+v", ls)
		}
		check, hosts := w.checker(2, time.Hour, t.Context())
		stats, err := Run(t.Context(), st, "s", check, Options{Concurrency: 16, CheckTimeout: 20 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if stats.Counts.Pending+stats.Counts.Running != 0 || stats.Counts.Done != 47 {
			t.Fatalf("counts %+v (failed %d)", stats.Counts, stats.Failed)
		}
		// From the servers' side: the own-name MX address never held more
		// than two sessions at once, and the shared host was probed once for
		// its 30 domains.
		if m := w.own.max.Load(); m > 2 || m < 1 {
			t.Errorf("the server at %s held up to %d sessions at once; the cap is 2", ownMX, m)
		}
		if n := w.own.total.Load(); n != 16 {
			t.Errorf("the server at %s saw %d sessions for 16 domains with their own MX names", ownMX, n)
		}
		if n := w.shared.total.Load(); n != 1 {
			t.Errorf("the shared MX host was probed %d times for 30 domains (host cache: %+v)", n, hosts.Stats())
		}
		recs := records(t, st, "s")
		seen := 0
		for _, r := range recs {
			switch {
			case r.Domain == "slow.scan.example":
				// The tarpit costs its own domain the step timeout, not the others.
				if r.State != store.ScanDone || r.Colour != "grey" || !strings.Contains(string(r.Result), "not_testable") {
					t.Errorf("tarpit domain: %+v", r)
				}
			case r.Kind == store.ScanKindInvalid, r.Kind == store.ScanKindDuplicate:
				if r.State != store.ScanError || r.Error == "" {
					t.Errorf("bad line: %+v", r)
				}
			default:
				// No STARTTLS on the counting servers: red, STARTTLS false.
				if r.State != store.ScanDone || r.Colour != "red" || r.STARTTLS == nil || *r.STARTTLS {
					t.Errorf("domain %s: %+v %s", r.Domain, r, r.Result)
				}
			}
			seen++
		}
		if seen != 49 {
			t.Errorf("%d records, want 49 (every line)", seen)
		}
	})
}

// Without the cap the same scan opens more than two sessions at once to
// the own-name MX address: the assertion above can fail.
func TestScanRealChecksNoCap(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		w := startWorld(t)
		st := openStore(t, driver)
		newScanNorm(t, st, "s", w.list)
		check, _ := w.checker(0, 0, t.Context())
		if _, err := Run(t.Context(), st, "s", check, Options{Concurrency: 16, CheckTimeout: 20 * time.Second}); err != nil {
			t.Fatal(err)
		}
		if m := w.own.max.Load(); m <= 2 {
			t.Skipf("only %d concurrent sessions without a cap on this machine: too slow to show the difference", m)
		}
		if n := w.shared.total.Load(); n != 30 {
			t.Errorf("without the host cache the shared host saw %d sessions, want 30", n)
		}
	})
}

// An interrupted scan of real checks, resumed, gives the same results as
// one that ran straight through.
func TestResumeRealChecks(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		w := startWorld(t)
		summary := func(recs map[int64]Record) string {
			var b strings.Builder
			for line := int64(0); line < 100; line++ {
				r, ok := recs[line]
				if !ok {
					continue
				}
				var rep struct {
					Findings []struct{ Code, Host, Address string }
				}
				_ = json.Unmarshal(r.Result, &rep)
				fmt.Fprintf(&b, "%d %s %s %s %s %v %v %v %v %v %v %q %v\n", r.Line, r.Domain, r.Label, r.State, r.Colour,
					deref(r.DNSSEC), deref(r.DANE), deref(r.MTASTS), deref(r.ValidCert), deref(r.STARTTLS), deref(r.Qualified), r.Error, rep.Findings)
			}
			return b.String()
		}
		whole := openStore(t, driver)
		newScanNorm(t, whole, "s", w.list)
		check, _ := w.checker(2, time.Hour, t.Context())
		if _, err := Run(t.Context(), whole, "s", check, Options{Concurrency: 8, CheckTimeout: 20 * time.Second}); err != nil {
			t.Fatal(err)
		}

		parts := openStore(t, driver)
		newScanNorm(t, parts, "s", w.list)
		ctx, cancel := context.WithCancel(t.Context())
		var n atomic.Int64
		check2, _ := w.checker(2, time.Hour, ctx)
		interrupting := func(c context.Context, d string) (json.RawMessage, error) {
			if n.Add(1) == 20 {
				cancel() // Ctrl-C in the middle of the scan
			}
			return check2(c, d)
		}
		stats, err := Run(ctx, parts, "s", interrupting, Options{Concurrency: 8, CheckTimeout: 20 * time.Second})
		if err == nil || stats.Counts.Pending == 0 || stats.Counts.Running != 0 {
			t.Fatalf("interrupted run: %v %+v", err, stats.Counts)
		}
		check3, _ := w.checker(2, time.Hour, t.Context())
		if _, err := Run(t.Context(), parts, "s", check3, Options{Concurrency: 8, CheckTimeout: 20 * time.Second}); err != nil {
			t.Fatal(err)
		}
		a, b := summary(records(t, whole, "s")), summary(records(t, parts, "s"))
		if a != b {
			t.Fatalf("resumed scan differs from an uninterrupted one:\n--- whole\n%s--- resumed\n%s", a, b)
		}
	})
}

func deref(b *bool) string {
	if b == nil {
		return "-"
	}
	return fmt.Sprint(*b)
}

func newScanNorm(t *testing.T, st *store.Store, id, input string) LoadStats {
	t.Helper()
	if err := st.CreateScan(t.Context(), store.Scan{ID: id, Created: time.Now(), Source: "test", Options: "{}"}); err != nil {
		t.Fatal(err)
	}
	ls, err := Load(t.Context(), st, id, strings.NewReader(input), dnsname.NormalizeDomain, "")
	if err != nil {
		t.Fatal(err)
	}
	return ls
}
