// Package hardening is the attack suite of lab/hardening: it attacks a
// running service (the lab's, inside its network namespace) the way
// Internet noise and hostile clients would, and records each check's
// figures. The checks are named R1 ... R6 after issue 16: R1 abuse (relay
// tricks), R3 store growth (floods of DNS names, oversize TLS-RPT mail), R6
// DNS (refusal, ANY, AXFR, answer sizes, amplification, response rate
// limiting, idle TCP connections). It only talks to the addresses the lab's
// environment file names, and binds its own sources in 127.0.0.0/8, so it
// must run inside the lab's namespace (lab/hardening does that).
package hardening

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec/internal/config"
)

// Env is what the suite knows of the service: lab/state/env's keys.
type Env struct {
	DNS  netip.AddrPort // the authoritative server
	SMTP netip.AddrPort // the personas' SMTP listener
	// PolicyHost is the MTA-STS policy host's HTTPS listener.
	PolicyHost netip.AddrPort
	Web        string // base URL of the web UI and API
	ZoneA      string // FQDN
	ZoneB      string // FQDN
	Resolver   netip.AddrPort
	// State is the lab's state directory (pids, logs).
	State string
	// Downgrade is the service's downgrade window (timing.downgrade_window).
	Downgrade time.Duration
	// Config is the service's effective configuration (MAILSEC_CONFIG,
	// read once): the limits the checks hold the service to.
	Config config.Config
	// Command runs the operator CLI: the binary and "-config FILE".
	Command []string
}

// ErrEnv: the environment file lacks a key the suite needs.
var ErrEnv = errors.New("hardening: environment file")

// LoadEnv reads lab/state/env (KEY=VALUE lines, values optionally
// double-quoted, as lab/up writes them).
func LoadEnv(path string) (Env, error) {
	f, err := os.Open(path)
	if err != nil {
		return Env{}, fmt.Errorf("%w: %v", ErrEnv, err)
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil {
			v = uq
		}
		kv[k] = v
	}
	if err := sc.Err(); err != nil {
		return Env{}, fmt.Errorf("%w: %v", ErrEnv, err)
	}
	var e Env
	need := func(k string) string {
		if kv[k] == "" && err == nil {
			err = fmt.Errorf("%w %s: no %s", ErrEnv, path, k)
		}
		return kv[k]
	}
	addr := func(k string) netip.AddrPort {
		s := need(k)
		if s == "" {
			return netip.AddrPort{}
		}
		ap, perr := netip.ParseAddrPort(s)
		if perr != nil && err == nil {
			err = fmt.Errorf("%w %s: %s=%q: %v", ErrEnv, path, k, s, perr)
		}
		return ap
	}
	e.DNS, e.SMTP, e.Resolver, e.PolicyHost = addr("MAILSEC_DNS"), addr("MAILSEC_SMTP"), addr("RESOLVER"), addr("MAILSEC_HTTPS")
	e.Web, e.ZoneA, e.ZoneB = need("MAILSEC_WEB"), need("ZONE_A"), need("ZONE_B")
	e.State = need("LAB_STATE")
	if d := need("DOWNGRADE_SECONDS"); d != "" {
		secs, perr := strconv.Atoi(d)
		if perr != nil && err == nil {
			err = fmt.Errorf("%w %s: DOWNGRADE_SECONDS=%q: %v", ErrEnv, path, d, perr)
		}
		e.Downgrade = time.Duration(secs) * time.Second
	}
	e.Command = strings.Fields(need("MAILSEC_CMD"))
	if p := need("MAILSEC_CONFIG"); p != "" && err == nil {
		if e.Config, err = config.Load(p); err != nil {
			err = fmt.Errorf("%w %s: MAILSEC_CONFIG: %v", ErrEnv, path, err)
		}
	}
	return e, err
}

// Sizes are the load of one run: reduced in CI, full by hand (--full).
type Sizes struct {
	Full bool
	// FloodSeconds: the DNS floods' length (R3, R6).
	FloodSeconds int
	// FloodRate: queries per second of a flood.
	FloodRate int
	// IdleTCP: idle DNS TCP connections held open (R6).
	IdleTCP int
	// SlowStreams: concurrent 10 MiB DATA streams (R2), each lasting
	// SlowSeconds.
	SlowStreams, SlowSeconds int
	// CrashSessions test sessions to CrashTests tests, while the service
	// is killed CrashKills times (R4).
	CrashSessions, CrashTests, CrashKills int
	// JunkFetches policy fetches and JunkFixedTests fixed-address test
	// mails before a real test (R3).
	JunkFetches, JunkFixedTests int
	// EventStreams live-page event streams held open at once (R2).
	EventStreams int
}

// ReducedSizes are CI's; FullSizes the issue's.
var (
	ReducedSizes = Sizes{FloodSeconds: 5, FloodRate: 1000, IdleTCP: 1000, SlowStreams: 40, SlowSeconds: 10, CrashSessions: 60, CrashTests: 6, CrashKills: 3, JunkFetches: 2000, JunkFixedTests: 300, EventStreams: 300}
	FullSizes    = Sizes{Full: true, FloodSeconds: 60, FloodRate: 1000, IdleTCP: 5000, SlowStreams: 400, SlowSeconds: 30, CrashSessions: 200, CrashTests: 20, CrashKills: 10, JunkFetches: 20000, JunkFixedTests: 2000, EventStreams: 2000}
)

// Check is one named result with its figures.
type Check struct {
	Name    string
	OK      bool
	Detail  string
	Figures map[string]any
}

// MarshalJSON writes the check flat: name, ok, detail and the figures.
func (c Check) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	for k, v := range c.Figures {
		m[k] = v
	}
	m["name"], m["ok"] = c.Name, c.OK
	if c.Detail != "" {
		m["detail"] = c.Detail
	}
	return json.Marshal(m)
}

// Report is lab/state/hardening.json.
type Report struct {
	Started time.Time `json:"started"`
	Full    bool      `json:"full"`
	Checks  []Check   `json:"checks"`
}

// OK tells whether every check passed.
func (r Report) OK() bool {
	for _, c := range r.Checks {
		if !c.OK {
			return false
		}
	}
	return len(r.Checks) > 0
}

// Suite is one run against a service.
type Suite struct {
	Env   Env
	Sizes Sizes
	// Log receives progress lines.
	Log func(format string, args ...any)
}

// check is one named function of the suite.
type check struct {
	name string
	run  func(s *Suite, ctx context.Context) Check
	// beside names the group of neighbouring checks that run at the same
	// time: checks that mostly wait (for a test to become final, for a
	// server's timeout) from their own client addresses, touching no cap,
	// counter or figure another in the group reads. Empty: on its own.
	beside string
}

// checks lists the suite in order.
func checks() []check {
	return []check{
		{"R1 relay", (*Suite).relay, ""},
		// Three waits side by side (about 80 s instead of 160 s): two
		// tests waited to their final verdicts and two held connections,
		// each from addresses of its own (sources 82/83, 94/senderSource
		// 3, 91), none counting caps, goroutines or rows.
		{"R1 unauthenticated", (*Suite).unauthenticated, "waits"},
		{"R1 SSRF canaries", (*Suite).ssrf, "waits"},
		{"R2 idle and NOOP holders", (*Suite).holders, "waits"},
		{"R1 owner token", (*Suite).ownerKey, ""},
		{"R2 connection caps", (*Suite).connectionCaps, ""},
		{"R2 slow DATA", (*Suite).slowData, ""},
		{"R2 event streams", (*Suite).eventStreams, ""},
		{"R3 out-of-zone flood", (*Suite).outOfZoneFlood, ""},
		{"R3 in-zone flood", (*Suite).inZoneFlood, ""},
		{"R3 oversize TLS-RPT", (*Suite).oversizeTLSRPT, ""},
		{"R3 bad TLS-RPT reports", (*Suite).badTLSRPTReports, ""},
		{"R3 junk, then a real test", (*Suite).junkThenReal, ""},
		{"R3 retention empties the tables", (*Suite).retentionEmpties, ""},
		{"R6 refusals", (*Suite).dnsRefusals, ""},
		{"R6 answer sizes", (*Suite).dnsSizes, ""},
		{"R6 rate limiting", (*Suite).dnsRateLimit, ""},
		{"R6 idle TCP", (*Suite).idleTCP, ""},
		// Last: it kills and restarts the service.
		{"R4 crash", (*Suite).crash, ""},
		{"R4 missing keys", (*Suite).missingKeys, ""},
	}
}

// Names lists the checks' names.
func Names() []string {
	var out []string
	for _, c := range checks() {
		out = append(out, c.name)
	}
	return out
}

// Run runs the checks whose name starts with one of only (all if empty),
// in order; neighbours of one beside group run at the same time. The
// report lists them in order either way.
func (s *Suite) Run(ctx context.Context, only []string) Report {
	rep := Report{Started: time.Now().UTC(), Full: s.Sizes.Full}
	var chosen []check
	for _, c := range checks() {
		if len(only) == 0 || hasPrefix(c.name, only) {
			chosen = append(chosen, c)
		}
	}
	rep.Checks = s.runChecks(ctx, chosen)
	return rep
}

// runChecks runs chosen in order, the neighbours of one beside group at
// the same time, and gives their results in chosen's order.
func (s *Suite) runChecks(ctx context.Context, chosen []check) []Check {
	var out []Check
	for i := 0; i < len(chosen); {
		j := i + 1
		for chosen[i].beside != "" && j < len(chosen) && chosen[j].beside == chosen[i].beside {
			j++
		}
		group := make([]Check, j-i)
		var wg sync.WaitGroup
		for k := i; k < j; k++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				group[k-i] = s.runOne(ctx, chosen[k])
			}()
		}
		wg.Wait()
		out = append(out, group...)
		i = j
	}
	return out
}

// runOne runs one check and logs its outcome.
func (s *Suite) runOne(ctx context.Context, c check) Check {
	s.logf("%s ...", c.name)
	start := time.Now()
	res := c.run(s, ctx)
	res.Name = c.name
	if res.Figures == nil {
		res.Figures = map[string]any{}
	}
	res.Figures["seconds"] = round1(time.Since(start).Seconds())
	word := "PASS"
	if !res.OK {
		word = "FAIL"
	}
	s.logf("%s  %s: %s", word, c.name, res.Detail)
	return res
}

func hasPrefix(name string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func (s *Suite) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// storeStats runs `mailsec store stats -json`: what the store holds, as
// the service's own operator tool counts it.
func (s *Suite) storeStats(ctx context.Context) (tables map[string]int64, bytes int64, err error) {
	if len(s.Env.Command) == 0 {
		return nil, 0, fmt.Errorf("%w: no MAILSEC_CMD", ErrEnv)
	}
	args := append(append([]string(nil), s.Env.Command[1:]...), "store", "stats", "-json")
	out, err := exec.CommandContext(ctx, s.Env.Command[0], args...).Output()
	if err != nil {
		return nil, 0, fmt.Errorf("mailsec store stats: %w", err)
	}
	var st struct {
		Tables map[string]int64 `json:"tables"`
		Bytes  int64            `json:"bytes"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return nil, 0, fmt.Errorf("mailsec store stats: %w", err)
	}
	return st.Tables, st.Bytes, nil
}

// fanOut runs do(i) for i = 0 … n-1, at most width at a time, and returns
// when every call it started has returned. It starts no more calls once
// ctx ends, so every load loop of the suite is bounded in count and time.
func fanOut(ctx context.Context, n, width int, do func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, width)
	for i := 0; i < n && ctx.Err() == nil; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			do(i)
		}()
	}
	wg.Wait()
}
