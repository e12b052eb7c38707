package scan

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

func openStore(t *testing.T, driver string) *store.Store {
	t.Helper()
	return storetest.Open(t, driver)
}

// newScan creates scan id and loads input into it.
func newScan(t *testing.T, st *store.Store, id, input string) LoadStats {
	t.Helper()
	if err := st.CreateScan(t.Context(), store.Scan{ID: id, Created: time.Now(), Source: "test", Options: "{}"}); err != nil {
		t.Fatal(err)
	}
	ls, err := Load(t.Context(), st, id, strings.NewReader(input), testNorm, "")
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// fakeReport is a minimal check result in the contract's schema; its
// colour and facts are a pure function of the domain.
func fakeReport(domain string) json.RawMessage {
	colours := []string{"green", "white", "yellow", "red", "grey"}
	h := 0
	for _, c := range domain {
		h = h*31 + int(c)
	}
	h &= 0xffff
	c := colours[h%len(colours)]
	return json.RawMessage(fmt.Sprintf(`{"schema":"mailsec.check.v1","domain":%q,"colour":%q,"qualified_encryption":%v,
"mx":{"kind":"mx","dnssec":%q,"hosts":[{"name":"mx.%s","addresses":[{"ip":"127.0.0.9","status":"ok","starttls":%v,
"tls":{"version":"TLS 1.3"},"certificate":{"pkix_valid":%v,"name_match":true},"dane":{"state":%q}}]}]},
"mta_sts":{"record":{"valid":%v},"policy":{"valid":true,"mode":"enforce"}}}`,
		domain, c, c == "green", map[bool]string{true: "secure", false: "insecure"}[h%2 == 0], domain, c != "red",
		c == "green" || c == "white", map[bool]string{true: "valid", false: "none"}[c == "green"], h%3 == 0))
}

func fakeChecker(calls *atomic.Int64) Checker {
	return func(ctx context.Context, domain string) (json.RawMessage, error) {
		if calls != nil {
			calls.Add(1)
		}
		if strings.HasPrefix(domain, "fail") {
			return nil, fmt.Errorf("resolver unusable for %s", domain)
		}
		return fakeReport(domain), nil
	}
}

func jsonl(t *testing.T, st *store.Store, id string) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSONL(t.Context(), st, id, &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// recordsByDomain reads scan id's JSON Lines output back, by domain.
func recordsByDomain(t *testing.T, st *store.Store, id string) map[string]Record {
	t.Helper()
	recs := map[string]Record{}
	for _, l := range strings.Split(strings.TrimSpace(jsonl(t, st, id)), "\n") {
		var r Record
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		recs[r.Domain] = r
	}
	return recs
}

func domainList(n int) string {
	var b strings.Builder
	b.WriteString("# test list\n")
	for i := range n {
		fmt.Fprintf(&b, "d%03d.example,label%d\n", i, i%3)
		if i%17 == 0 {
			fmt.Fprintf(&b, "fail%d.example\n", i)
		}
	}
	b.WriteString("bad..example\nd001.example,dup\n\n")
	return b.String()
}

func TestRunComplete(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		ls := newScan(t, st, "s", domainList(50))
		if ls.Domains != 53 || ls.Invalid != 1 || ls.Duplicates != 1 {
			t.Fatalf("load: %+v", ls)
		}
		var calls atomic.Int64
		var last Progress
		stats, err := Run(t.Context(), st, "s", fakeChecker(&calls), Options{Concurrency: 4, Progress: func(p Progress) { last = p }})
		if err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 53 || stats.Checked != 53 || stats.Failed != 3 || stats.Counts != (store.ScanCounts{Done: 50, Error: 5}) {
			t.Fatalf("calls %d stats %+v", calls.Load(), stats)
		}
		if !last.Final || last.Finished != 55 || last.Total != 55 {
			t.Errorf("last progress %+v", last)
		}
		// A rerun checks nothing again.
		calls.Store(0)
		stats, err = Run(t.Context(), st, "s", fakeChecker(&calls), Options{})
		if err != nil || calls.Load() != 0 || stats.Checked != 0 {
			t.Fatalf("rerun: calls %d %+v %v", calls.Load(), stats, err)
		}
		var csvOut bytes.Buffer
		if err := WriteCSV(t.Context(), st, "s", &csvOut); err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(&csvOut).ReadAll()
		if err != nil || len(rows) != 56 || strings.Join(rows[0], ",") != strings.Join(CSVHeader, ",") {
			t.Fatalf("CSV: %d rows, %v", len(rows), err)
		}
		if r := rows[1]; r[0] != "d000.example" || r[2] == "" || (r[4] != "true" && r[4] != "false") || r[12] != "done" {
			t.Errorf("first CSV row %q", r)
		}
		// Every line is in the output, in order, with its reason.
		out := jsonl(t, st, "s")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 55 {
			t.Fatalf("%d JSONL records, want 55", len(lines))
		}
		var r Record
		if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil || r.Kind != store.ScanKindDuplicate || !strings.Contains(r.Error, "duplicate of line") {
			t.Fatalf("last record %+v %v", r, err)
		}
		if err := json.Unmarshal([]byte(lines[0]), &r); err != nil || r.Domain != "d000.example" || r.DNSSEC == nil || r.Colour == "" || len(r.Result) == 0 {
			t.Fatalf("first record %+v %v", r, err)
		}
	})
}

// An interrupted scan, resumed, ends with the same results as one run
// straight through: nothing lost, nothing checked twice that was done.
func TestResumeAfterInterrupt(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		input := domainList(120)
		stA := openStore(t, driver)
		newScan(t, stA, "s", input)
		if _, err := Run(t.Context(), stA, "s", fakeChecker(nil), Options{Concurrency: 5}); err != nil {
			t.Fatal(err)
		}

		stB := openStore(t, driver)
		newScan(t, stB, "s", input)
		ctx, cancel := context.WithCancel(t.Context())
		var calls atomic.Int64
		slow := func(c context.Context, d string) (json.RawMessage, error) {
			if calls.Add(1) == 40 {
				cancel() // Ctrl-C while checks are in flight
			}
			select {
			case <-time.After(time.Millisecond):
			case <-c.Done():
				return nil, c.Err()
			}
			return fakeChecker(nil)(c, d)
		}
		stats, err := Run(ctx, stB, "s", slow, Options{Concurrency: 5})
		if err == nil {
			t.Fatal("interrupted run returned no error")
		}
		if stats.Counts.Running != 0 || stats.Counts.Pending == 0 || stats.Counts.Finished() == 0 {
			t.Fatalf("after the interruption: %+v (want nothing running, some pending, some finished)", stats.Counts)
		}
		interrupted := jsonl(t, stB, "s")
		if !strings.Contains(interrupted, "not checked yet") {
			t.Error("the output of an interrupted scan does not say what is left")
		}
		calls.Store(0)
		stats2, err := Run(t.Context(), stB, "s", fakeChecker(&calls), Options{Concurrency: 3})
		if err != nil {
			t.Fatal(err)
		}
		if calls.Load() != stats.Counts.Pending {
			t.Errorf("resumed run checked %d domains, %d were pending", calls.Load(), stats.Counts.Pending)
		}
		if stats2.Counts != (store.ScanCounts{Done: 120, Error: 8 + 2}) {
			t.Errorf("counts after resume %+v", stats2.Counts)
		}
		if a, b := strip(t, jsonl(t, stA, "s")), strip(t, jsonl(t, stB, "s")); a != b {
			t.Fatalf("resumed results differ from an uninterrupted scan:\n%s\n---\n%s", a, b)
		}
	})
}

// strip drops what differs between runs (none of the fake's output does,
// but the records are compared field by field all the same).
func strip(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(r)
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// One domain whose check hangs, one whose check panics: the others are
// all checked, and both get an error record.
func TestMisbehavingDomainDoesNotStall(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		newScan(t, st, "s", "hang.example\npanic.example\n"+domainList(30))
		release := make(chan struct{})
		defer close(release)
		check := func(ctx context.Context, d string) (json.RawMessage, error) {
			switch d {
			case "hang.example":
				<-ctx.Done() // ignores everything but its deadline
				return nil, ctx.Err()
			case "panic.example":
				panic("boom")
			}
			return fakeChecker(nil)(ctx, d)
		}
		stats, err := Run(t.Context(), st, "s", check, Options{Concurrency: 2, CheckTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if stats.Counts.Pending != 0 || stats.Counts.Running != 0 || stats.Counts.Done != 30 {
			t.Fatalf("counts %+v", stats.Counts)
		}
		recs := recordsByDomain(t, st, "s")
		if r := recs["hang.example"]; r.State != store.ScanError || !strings.Contains(r.Error, "deadline") {
			t.Errorf("hanging domain: %+v", r)
		}
		if r := recs["panic.example"]; r.State != store.ScanError || !strings.Contains(r.Error, "boom") {
			t.Errorf("panicking domain: %+v", r)
		}
	})
}

// countingSMTP is a minimal SMTP greeter on loopback that counts the
// connections it holds at once, to check the per-destination cap from
// the server's side.
type countingSMTP struct {
	ln       net.Listener
	cur, max atomic.Int64
	total    atomic.Int64
	wg       sync.WaitGroup
}

func startCountingSMTP(t *testing.T) *countingSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveCounting(t, ln)
}

func (s *countingSMTP) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		n := s.cur.Add(1)
		s.total.Add(1)
		for {
			m := s.max.Load()
			if n <= m || s.max.CompareAndSwap(m, n) {
				break
			}
		}
		s.wg.Go(func() {
			// The session counts until the server closes: the client
			// may free its slot only after it saw that close.
			defer c.Close()
			defer s.cur.Add(-1)
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			io.WriteString(c, "220 counting ESMTP\r\n")
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				switch cmd, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(l)), " "); cmd {
				case "EHLO":
					time.Sleep(20 * time.Millisecond) // a slow server: connections overlap
					io.WriteString(c, "250-counting\r\n250 PIPELINING\r\n")
				case "QUIT":
					io.WriteString(c, "221 bye\r\n")
					return
				default:
					io.WriteString(c, "502 no\r\n")
				}
			}
		})
	}
}

// twoConnections is a check that holds two connections to the one MX
// address addr at once, as the inbound check does for two MX hosts on one
// address, each greeted, EHLO and QUIT.
func twoConnections(dial DialFunc, addr string) Checker {
	return func(ctx context.Context, domain string) (json.RawMessage, error) {
		var wg sync.WaitGroup
		errs := make(chan error, 2)
		for range 2 {
			wg.Go(func() {
				c, err := dial(ctx, "tcp", addr)
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := br.ReadString('\n'); err != nil {
					errs <- err
					return
				}
				io.WriteString(c, "EHLO scan.test\r\n")
				if _, err := br.ReadString('\n'); err != nil {
					errs <- err
					return
				}
				io.WriteString(c, "QUIT\r\n")
				_, _ = br.ReadString('\n')
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			return nil, err
		}
		return fakeReport(domain), nil
	}
}

func TestPerDestinationCap(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		srv := startCountingSMTP(t)
		const limit = 2
		dests := NewDestinations(limit)
		d := &net.Dialer{}
		dial := dests.Dial(d.DialContext)
		st := openStore(t, driver)
		newScan(t, st, "s", domainList(40))
		check := twoConnections(dial, srv.ln.Addr().String())
		stats, err := Run(t.Context(), st, "s", check, Options{Concurrency: 16})
		if err != nil {
			t.Fatal(err)
		}
		if stats.Failed != 0 {
			t.Fatalf("failed checks: %+v\n%s", stats, jsonl(t, st, "s"))
		}
		if got := srv.max.Load(); got != limit {
			t.Fatalf("the server saw up to %d connections at once, want the cap %d (total %d)", got, limit, srv.total.Load())
		}
		if srv.total.Load() != 2*int64(stats.Checked) {
			t.Errorf("server saw %d connections for %d checks", srv.total.Load(), stats.Checked)
		}
		if dests.InUse() != 0 {
			t.Errorf("%d destinations still held after the scan", dests.InUse())
		}
	})
}

func TestHostCache(t *testing.T) {
	base, cancelBase := context.WithCancel(t.Context())
	defer cancelBase()
	c := NewHostCache[string](base, time.Hour, time.Minute)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	var probes atomic.Int64
	gate := make(chan struct{})
	probe := func(ctx context.Context) string {
		probes.Add(1)
		<-gate
		return "result"
	}
	var wg sync.WaitGroup
	got := make([]string, 10)
	for i := range got {
		wg.Go(func() { got[i] = c.Do(t.Context(), "mx.example|127.0.0.9", probe) })
	}
	for i := 0; i < 1000; i++ { // until every caller waits (bounded)
		if st := c.Stats(); st.Misses+st.Shared == 10 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A caller whose context ends does not wait for the shared probe.
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if v := c.Do(done, "mx.example|127.0.0.9", func(ctx context.Context) string {
		if ctx.Err() == nil {
			t.Error("own probe with a live context")
		}
		return "deadline"
	}); v != "deadline" {
		t.Errorf("cancelled caller got %q", v)
	}
	close(gate)
	wg.Wait()
	for _, v := range got {
		if v != "result" {
			t.Fatalf("got %q", v)
		}
	}
	if probes.Load() != 1 {
		t.Fatalf("%d probes for one key", probes.Load())
	}
	if v := c.Do(t.Context(), "mx.example|127.0.0.9", probe); v != "result" || probes.Load() != 1 {
		t.Fatalf("cached: %q, %d probes", v, probes.Load())
	}
	now = now.Add(2 * time.Hour) // past the TTL
	if c.Do(t.Context(), "mx.example|127.0.0.9", probe); probes.Load() != 2 {
		t.Fatalf("after the TTL: %d probes, want 2", probes.Load())
	}
	s := c.Stats()
	if s.Misses != 2 || s.Hits != 1 || s.Shared != 9 {
		t.Errorf("stats %+v", s)
	}
	// A probe cut short by the end of the scan is not kept.
	cancelBase()
	c.Do(t.Context(), "other|127.0.0.8", func(ctx context.Context) string { <-ctx.Done(); return "cut" })
	if c.Do(t.Context(), "other|127.0.0.8", probe); probes.Load() != 3 {
		t.Errorf("an interrupted probe was cached")
	}
}

// A 100,000-line list (20,000 under the race detector) loads with bounded memory (streamed in batches,
// duplicates found by the store) and every line is accounted for.
func TestLoadLargeList(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		if testing.Short() {
			t.Skip("short")
		}
		st := openStore(t, driver)
		if err := st.CreateScan(t.Context(), store.Scan{ID: "big", Created: time.Now(), Source: "gen", Options: "{}"}); err != nil {
			t.Fatal(err)
		}
		lines := 100_000
		if raceEnabled {
			lines = 20_000
		}
		pr, pw := io.Pipe()
		go func() {
			bw := bufio.NewWriter(pw)
			for i := range lines {
				switch {
				case i%1000 == 999:
					fmt.Fprintf(bw, "bad_%d..example\n", i)
				case i%500 == 1:
					fmt.Fprintf(bw, "d%d.example,dup\n", i-1)
				case i%250 == 3:
					bw.WriteString("# comment\n")
				default:
					fmt.Fprintf(bw, "d%d.example,l%d\n", i, i%4)
				}
			}
			bw.Flush()
			pw.Close()
		}()
		ls, err := Load(t.Context(), st, "big", pr, testNorm, "")
		if err != nil {
			t.Fatal(err)
		}
		k := lines / 1000
		if ls.Lines != int64(lines) || ls.Invalid != k || ls.Duplicates != 2*k || ls.Domains != lines-7*k {
			t.Fatalf("load %+v", ls)
		}
		c, err := st.ScanCounts(t.Context(), "big")
		if err != nil || c.Total() != int64(ls.Domains+ls.Invalid+ls.Duplicates) {
			t.Fatalf("counts %+v %v", c, err)
		}
	})
}

// Two workers on one store share the scan: every domain is checked
// exactly once, by one of them.
func TestTwoWorkers(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		newScan(t, st, "s", domainList(200))
		var mu sync.Mutex
		calls := map[string]int{}
		check := func(ctx context.Context, d string) (json.RawMessage, error) {
			mu.Lock()
			calls[d]++
			mu.Unlock()
			time.Sleep(time.Millisecond)
			return fakeChecker(nil)(ctx, d)
		}
		var wg sync.WaitGroup
		stats := make([]Stats, 2)
		for i := range stats {
			wg.Go(func() {
				var err error
				stats[i], err = Run(t.Context(), st, "s", check, Options{Owner: fmt.Sprintf("worker-%d", i), Concurrency: 4})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if len(calls) != 212 {
			t.Fatalf("%d domains checked, want 212", len(calls))
		}
		for d, n := range calls {
			if n != 1 {
				t.Errorf("%s checked %d times", d, n)
			}
		}
		if stats[0].Checked == 0 || stats[1].Checked == 0 || stats[0].Checked+stats[1].Checked != 212 {
			t.Errorf("shares: %d + %d", stats[0].Checked, stats[1].Checked)
		}
	})
}

// A transient failure (the resolver did not answer) is checked again
// later; one that persists is kept as an error after MaxAttempts.
func TestRetryTransient(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		newScan(t, st, "s", "flaky.example\nalways.example\nfine.example\n")
		transient := errors.New("resolver did not answer")
		var mu sync.Mutex
		calls := map[string]int{}
		check := func(ctx context.Context, d string) (json.RawMessage, error) {
			mu.Lock()
			calls[d]++
			n := calls[d]
			mu.Unlock()
			if d == "always.example" || (d == "flaky.example" && n == 1) {
				return nil, transient
			}
			return fakeReport(d), nil
		}
		stats, err := Run(t.Context(), st, "s", check, Options{Concurrency: 2, MaxAttempts: 3,
			Retry: func(err error) bool { return errors.Is(err, transient) }})
		if err != nil {
			t.Fatal(err)
		}
		if calls["flaky.example"] != 2 || calls["always.example"] != 3 || calls["fine.example"] != 1 {
			t.Fatalf("calls %v", calls)
		}
		if stats.Retried != 3 || stats.Counts != (store.ScanCounts{Done: 2, Error: 1}) {
			t.Fatalf("stats %+v", stats)
		}
		recs := recordsByDomain(t, st, "s")
		if r := recs["always.example"]; r.State != store.ScanError || !strings.Contains(r.Error, "resolver did not answer") {
			t.Errorf("persistent failure: %+v", r)
		}
		if r := recs["flaky.example"]; r.State != store.ScanDone || r.Error != "" || r.Colour == "" {
			t.Errorf("flaky domain: %+v", r)
		}
	})
}
