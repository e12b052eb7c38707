// Command loadgen is the load client of bench/smtp (figure P2).
//
// Load mode (default) runs complete STARTTLS sessions against one SMTP
// server at a fixed concurrency for a fixed time:
//
//	connect, 220 banner, EHLO, STARTTLS, TLS handshake (with SNI), EHLO,
//	MAIL FROM, RCPT TO, DATA (a message of -size bytes), QUIT
//
// Each of -c workers runs one session after another. A session that fails
// at any step is counted under its error kind ("rcpt: 451", "handshake:
// timeout", ...) and the worker goes on with a new session: nothing is
// retried. Every session has a deadline (-timeout); sessions still running
// when the run ends are cut at the end and counted apart ("unfinished"),
// neither as completed nor as errors. Sessions completed during the first
// -warmup are not counted. The result (completed sessions, sessions/s,
// errors by kind, latency percentiles of completed sessions, what TLS
// negotiated) is printed as text or, with -json, as one JSON object.
//
// Idle mode (-idle N) opens N TCP connections, spread over the source
// addresses of -src, reads each one's 220 banner and then holds them all
// without sending anything. When all N are greeted it prints one JSON
// line {"ready":true,...} (or {"ready":false,...} when some failed or
// -idle-timeout passed) and keeps holding until -hold has passed or it
// gets SIGTERM/SIGINT.
//
// The client only talks to 127.0.0.0/8 addresses; it refuses others.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type options struct {
	addr     string
	c        int
	duration time.Duration
	warmup   time.Duration
	timeout  time.Duration
	sni      string
	ehlo     string
	from     string
	rcpt     string
	size     int
	caFile   string
	curves   string
	jsonOut  bool
	src      string

	idle        int
	idleTimeout time.Duration
	hold        time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.addr, "addr", "127.0.0.1:2525", "server `ip:port` (must be in 127.0.0.0/8)")
	flag.IntVar(&o.c, "c", 8, "concurrent sessions")
	flag.DurationVar(&o.duration, "duration", 20*time.Second, "measured time (after -warmup)")
	flag.DurationVar(&o.warmup, "warmup", 0, "time at the start whose completed sessions are not counted")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Second, "deadline of one whole session")
	flag.StringVar(&o.sni, "sni", "", "TLS server name to send (SNI); empty sends none")
	flag.StringVar(&o.ehlo, "ehlo", "loadgen.bench.invalid", "EHLO name")
	flag.StringVar(&o.from, "from", "bench@loadgen.bench.invalid", "MAIL FROM address")
	flag.StringVar(&o.rcpt, "rcpt", "", "RCPT TO address (required in load mode)")
	flag.IntVar(&o.size, "size", 10240, "message size in bytes (headers and body, CRLF line ends)")
	flag.StringVar(&o.caFile, "ca", "", "PEM file of roots to verify the server against; empty: no verification")
	flag.StringVar(&o.curves, "curves", "", "comma-separated TLS key exchange groups (X25519, P256, X25519MLKEM768, ...); empty: Go's default")
	flag.BoolVar(&o.jsonOut, "json", false, "print the result as JSON")
	flag.StringVar(&o.src, "src", "", "source addresses: a list or range such as 127.0.0.2-127.0.0.20; empty: the kernel's choice")
	flag.IntVar(&o.idle, "idle", 0, "idle mode: open this many connections, read the banners and hold them")
	flag.DurationVar(&o.idleTimeout, "idle-timeout", 60*time.Second, "idle mode: give up waiting for all connections to be greeted after this long")
	flag.DurationVar(&o.hold, "hold", 5*time.Minute, "idle mode: hold the connections at most this long")
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected arguments: %q", flag.Args())
	}
	if err := checkLoopback(o.addr); err != nil {
		fatalf("-addr: %v", err)
	}
	srcs, err := parseSources(o.src)
	if err != nil {
		fatalf("-src: %v", err)
	}
	if o.idle > 0 {
		if o.idle > 1_000_000 {
			fatalf("-idle: at most 1000000")
		}
		os.Exit(runIdle(o, srcs))
	}
	if o.rcpt == "" {
		fatalf("-rcpt is required")
	}
	if o.c < 1 || o.c > 10000 {
		fatalf("-c must be 1..10000")
	}
	if o.duration <= 0 || o.duration > time.Hour || o.warmup < 0 || o.warmup > 10*time.Minute {
		fatalf("-duration must be in (0, 1h], -warmup in [0, 10m]")
	}
	if o.timeout <= 0 || o.timeout > 10*time.Minute {
		fatalf("-timeout must be in (0, 10m]")
	}
	if o.size < 512 || o.size > 50<<20 {
		fatalf("-size must be 512..52428800")
	}
	tcfg, err := tlsConfig(o)
	if err != nil {
		fatalf("%v", err)
	}
	res := runLoad(o, srcs, tcfg)
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
	} else {
		printText(res)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}

// checkLoopback refuses any target outside 127.0.0.0/8.
func checkLoopback(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not an ip:port", addr)
	}
	if !ap.Addr().Unmap().Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(ap.Addr().Unmap()) {
		return fmt.Errorf("%s is outside 127.0.0.0/8", ap.Addr())
	}
	return nil
}

// parseSources reads "a,b,c" where each item is an address or a range
// "127.0.0.2-127.0.0.20" (last octet varies).
func parseSources(s string) ([]netip.Addr, error) {
	var out []netip.Addr
	if s == "" {
		return nil, nil
	}
	lo := netip.MustParsePrefix("127.0.0.0/8")
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		first, last, isRange := strings.Cut(item, "-")
		a, err := netip.ParseAddr(first)
		if err != nil || !lo.Contains(a) {
			return nil, fmt.Errorf("%q is not an address in 127.0.0.0/8", first)
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(last); err != nil || !lo.Contains(b) || b.Less(a) {
				return nil, fmt.Errorf("bad range %q", item)
			}
		}
		for x := a; ; x = x.Next() {
			out = append(out, x)
			if x == b || len(out) > 65536 {
				break
			}
		}
		if len(out) > 65536 {
			return nil, errors.New("too many source addresses")
		}
	}
	return out, nil
}

func tlsConfig(o options) (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName: o.sni,
		// No ClientSessionCache: every session is a full handshake, as a
		// test sender's first contact is.
	}
	if o.caFile == "" {
		cfg.InsecureSkipVerify = true
	} else {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", o.caFile)
		}
		cfg.RootCAs = pool
		if o.sni == "" {
			return nil, errors.New("-ca needs -sni (the name to verify)")
		}
	}
	if o.curves != "" {
		names := map[string]tls.CurveID{
			"x25519": tls.X25519, "p256": tls.CurveP256, "p384": tls.CurveP384, "p521": tls.CurveP521,
			"x25519mlkem768": tls.X25519MLKEM768,
		}
		for n := range strings.SplitSeq(o.curves, ",") {
			id, ok := names[strings.ToLower(strings.TrimSpace(n))]
			if !ok {
				return nil, fmt.Errorf("-curves: unknown group %q", n)
			}
			cfg.CurvePreferences = append(cfg.CurvePreferences, id)
		}
	}
	return cfg, nil
}

// ---------------------------------------------------------------- load mode

type result struct {
	Addr            string             `json:"addr"`
	SNI             string             `json:"sni"`
	Concurrency     int                `json:"concurrency"`
	DurationSeconds float64            `json:"duration_s"` // measured window, as elapsed
	WarmupSeconds   float64            `json:"warmup_s"`
	MessageBytes    int                `json:"message_bytes"`
	Completed       int64              `json:"completed"`
	SessionsPerSec  float64            `json:"sessions_per_s"`
	Errors          int64              `json:"errors"`
	ErrorKinds      map[string]int64   `json:"error_kinds"`
	Unfinished      int64              `json:"unfinished"` // cut at the end of the run
	Started         int64              `json:"started"`
	LatencyMs       map[string]float64 `json:"latency_ms"` // of completed, counted sessions
	TLS             map[string]int64   `json:"tls"`        // "TLS 1.3 TLS_AES_128_GCM_SHA256 X25519" → count
	FirstErrors     []string           `json:"first_errors,omitempty"`
	// CPUSeconds is the client's own CPU time (user + system), whole run.
	CPUSeconds float64 `json:"client_cpu_s"`
}

type worker struct {
	lat        []time.Duration
	completed  int64
	errs       map[string]int64
	tls        map[string]int64
	unfinished int64
	started    int64
	firstErrs  []string
}

const maxSamplesPerWorker = 1 << 20

func runLoad(o options, srcs []netip.Addr, tcfg *tls.Config) result {
	msg := message(o)
	begin := time.Now()
	countFrom := begin.Add(o.warmup)
	end := countFrom.Add(o.duration)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	workers := make([]*worker, o.c)
	var wg sync.WaitGroup
	var seq atomic.Uint64
	for i := range workers {
		w := &worker{errs: map[string]int64{}, tls: map[string]int64{}}
		workers[i] = w
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(end) {
				var src netip.Addr
				if len(srcs) > 0 {
					src = srcs[seq.Add(1)%uint64(len(srcs))]
				}
				w.started++
				t0 := time.Now()
				deadline := t0.Add(o.timeout)
				if deadline.After(end) {
					deadline = end
				}
				tlsDesc, err := session(o, src, tcfg, msg, deadline)
				t1 := time.Now()
				switch {
				case err == nil:
					if !t1.Before(countFrom) && !t1.After(end) {
						w.completed++
						w.tls[tlsDesc]++
						if len(w.lat) < maxSamplesPerWorker {
							w.lat = append(w.lat, t1.Sub(t0))
						}
					}
				case !t1.Before(end) && isTimeout(err) && deadline.Equal(end):
					w.unfinished++ // cut by the end of the run, not by its own deadline
				case t1.Before(countFrom):
					// a failure during warm-up: not counted
				default:
					w.errs[errKind(err)]++
					if len(w.firstErrs) < 3 {
						w.firstErrs = append(w.firstErrs, err.Error())
					}
				}
			}
		})
	}
	wg.Wait()
	measuredEnd := time.Now()
	if measuredEnd.After(end) {
		measuredEnd = end
	}
	elapsed := measuredEnd.Sub(countFrom).Seconds()

	res := result{
		Addr: o.addr, SNI: o.sni, Concurrency: o.c, WarmupSeconds: o.warmup.Seconds(),
		MessageBytes: len(msg), ErrorKinds: map[string]int64{}, TLS: map[string]int64{},
		LatencyMs: map[string]float64{},
	}
	var lat []time.Duration
	for _, w := range workers {
		res.Completed += w.completed
		res.Unfinished += w.unfinished
		res.Started += w.started
		for k, v := range w.errs {
			res.ErrorKinds[k] += v
			res.Errors += v
		}
		for k, v := range w.tls {
			res.TLS[k] += v
		}
		lat = append(lat, w.lat...)
		for _, e := range w.firstErrs {
			if len(res.FirstErrors) < 5 {
				res.FirstErrors = append(res.FirstErrors, e)
			}
		}
	}
	res.DurationSeconds = round(elapsed, 3)
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		res.CPUSeconds = round(float64(ru.Utime.Nano()+ru.Stime.Nano())/1e9, 3)
	}
	if elapsed > 0 {
		res.SessionsPerSec = round(float64(res.Completed)/elapsed, 1)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(math.Ceil(p/100*float64(len(lat)))) - 1
		i = max(0, min(i, len(lat)-1))
		return round(float64(lat[i])/1e6, 3)
	}
	for _, p := range []float64{50, 90, 99, 99.9} {
		res.LatencyMs["p"+strconv.FormatFloat(p, 'f', -1, 64)] = pct(p)
	}
	res.LatencyMs["max"] = pct(100)
	if len(lat) > 0 {
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		res.LatencyMs["mean"] = round(float64(sum)/float64(len(lat))/1e6, 3)
	}
	return res
}

func round(x float64, digits int) float64 {
	p := math.Pow10(digits)
	return math.Round(x*p) / p
}

func printText(r result) {
	fmt.Printf("addr %s  sni %q  c=%d  measured %.1fs (warm-up %.1fs)  message %d B\n",
		r.Addr, r.SNI, r.Concurrency, r.DurationSeconds, r.WarmupSeconds, r.MessageBytes)
	fmt.Printf("completed %d  sessions/s %.1f  errors %d  unfinished %d\n",
		r.Completed, r.SessionsPerSec, r.Errors, r.Unfinished)
	fmt.Printf("latency ms: p50 %.2f  p90 %.2f  p99 %.2f  p99.9 %.2f  max %.2f  mean %.2f\n",
		r.LatencyMs["p50"], r.LatencyMs["p90"], r.LatencyMs["p99"], r.LatencyMs["p99.9"], r.LatencyMs["max"], r.LatencyMs["mean"])
	for _, k := range slices.Sorted(mapKeys(r.ErrorKinds)) {
		fmt.Printf("  error %-28s %d\n", k, r.ErrorKinds[k])
	}
	for _, k := range slices.Sorted(mapKeys(r.TLS)) {
		fmt.Printf("  tls %s: %d\n", k, r.TLS[k])
	}
	for _, e := range r.FirstErrors {
		fmt.Printf("  e.g. %s\n", e)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// message builds the mail: headers and a body of 76-character lines, CRLF
// line ends, exactly size bytes, no line starting with a dot (so no dot
// stuffing is needed), followed by the end-of-data line.
func message(o options) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: bench/smtp load test\r\n", o.from, o.rcpt)
	fmt.Fprintf(&b, "Date: %s\r\nMessage-ID: <loadgen.%d@loadgen.bench.invalid>\r\n", time.Now().UTC().Format(time.RFC1123Z), time.Now().UnixNano())
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	const line = "The quick brown fox jumps over the lazy dog; bench/smtp message body text. "
	for b.Len() < o.size {
		n := min(len(line), o.size-b.Len()-2)
		if n <= 0 {
			// one byte short of a CRLF: pad the previous line instead
			s := b.String()
			b.Reset()
			b.WriteString(s[:len(s)-2] + strings.Repeat("x", o.size-len(s)) + "\r\n")
			break
		}
		b.WriteString(line[:n])
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return []byte(b.String())
}

// ---------------------------------------------------------------- one session

// stepErr is a failed step: its kind is "step: detail".
type stepErr struct {
	step string
	kind string // timeout, closed, reset, reply NNN, io, ...
	err  error
}

func (e *stepErr) Error() string { return e.step + ": " + e.err.Error() }
func (e *stepErr) Unwrap() error { return e.err }

func errKind(err error) string {
	var se *stepErr
	if errors.As(err, &se) {
		return se.step + ": " + se.kind
	}
	return "other"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

func classify(err error) string {
	var re *replyErr
	switch {
	case errors.As(err, &re):
		return strconv.Itoa(re.code)
	case isTimeout(err):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.EADDRINUSE):
		return "no local port"
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "no file descriptor"
	}
	var ae tls.AlertError
	if errors.As(err, &ae) {
		return "tls alert"
	}
	var ce *tls.CertificateVerificationError
	if errors.As(err, &ce) {
		return "certificate"
	}
	return "other"
}

type replyErr struct {
	code int
	text string
}

func (e *replyErr) Error() string { return fmt.Sprintf("reply %d %s", e.code, e.text) }

// conn is an SMTP client connection: a line reader over the raw or TLS
// connection.
type conn struct {
	c  net.Conn
	rd *bufio.Reader
}

// reply reads one (possibly multi-line) reply and returns its code and
// the text of all lines.
func (c *conn) reply() (int, string, error) {
	var text strings.Builder
	for n := 0; n < 100; n++ {
		line, err := c.rd.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return 0, "", errors.New("reply line too long")
			}
			return 0, "", err
		}
		s := strings.TrimRight(string(line), "\r\n")
		if len(s) < 3 {
			return 0, "", fmt.Errorf("malformed reply %q", s)
		}
		code, err := strconv.Atoi(s[:3])
		if err != nil || code < 200 || code > 599 {
			return 0, "", fmt.Errorf("malformed reply %q", s)
		}
		if len(s) > 4 {
			text.WriteString(s[4:])
			text.WriteByte('\n')
		}
		if len(s) == 3 || s[3] == ' ' {
			return code, text.String(), nil
		}
		if s[3] != '-' {
			return 0, "", fmt.Errorf("malformed reply %q", s)
		}
	}
	return 0, "", errors.New("reply has too many lines")
}

// cmd sends line (unless empty) and expects a reply with code want.
func (c *conn) cmd(step, line string, want int) (string, error) {
	if line != "" {
		if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
			return "", &stepErr{step, classify(err), err}
		}
	}
	code, text, err := c.reply()
	if err != nil {
		return "", &stepErr{step, classify(err), err}
	}
	if code != want {
		re := &replyErr{code, strings.TrimSpace(text)}
		return "", &stepErr{step, strconv.Itoa(code), re}
	}
	return text, nil
}

func dial(o options, src netip.Addr, deadline time.Time) (net.Conn, error) {
	d := net.Dialer{Deadline: deadline}
	if src.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: src.AsSlice()}
	}
	return d.Dial("tcp4", o.addr)
}

// session runs one complete session; it returns a description of what TLS
// negotiated.
func session(o options, src netip.Addr, tcfg *tls.Config, msg []byte, deadline time.Time) (string, error) {
	raw, err := dial(o, src, deadline)
	if err != nil {
		return "", &stepErr{"connect", classify(err), err}
	}
	defer raw.Close()
	if err := raw.SetDeadline(deadline); err != nil {
		return "", &stepErr{"connect", "other", err}
	}
	c := &conn{c: raw, rd: bufio.NewReaderSize(raw, 4096)}
	if _, err := c.cmd("banner", "", 220); err != nil {
		return "", err
	}
	ext, err := c.cmd("ehlo", "EHLO "+o.ehlo, 250)
	if err != nil {
		return "", err
	}
	if !hasExtension(ext, "STARTTLS") {
		return "", &stepErr{"ehlo", "no STARTTLS", errors.New("STARTTLS not offered")}
	}
	if _, err := c.cmd("starttls", "STARTTLS", 220); err != nil {
		return "", err
	}
	if c.rd.Buffered() > 0 {
		return "", &stepErr{"starttls", "data after 220", errors.New("server sent data after 220 to STARTTLS")}
	}
	tc := tls.Client(raw, tcfg)
	if err := tc.Handshake(); err != nil {
		return "", &stepErr{"handshake", classify(err), err}
	}
	st := tc.ConnectionState()
	desc := tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite) + " " + st.CurveID.String()
	c = &conn{c: tc, rd: bufio.NewReaderSize(tc, 4096)}
	if _, err := c.cmd("ehlo2", "EHLO "+o.ehlo, 250); err != nil {
		return "", err
	}
	if _, err := c.cmd("mail", "MAIL FROM:<"+o.from+">", 250); err != nil {
		return "", err
	}
	if _, err := c.cmd("rcpt", "RCPT TO:<"+o.rcpt+">", 250); err != nil {
		return "", err
	}
	if _, err := c.cmd("data", "DATA", 354); err != nil {
		return "", err
	}
	if _, err := tc.Write(msg); err != nil {
		return "", &stepErr{"message", classify(err), err}
	}
	if _, err := c.cmd("message", "", 250); err != nil {
		return "", err
	}
	if _, err := c.cmd("quit", "QUIT", 221); err != nil {
		return "", err
	}
	return desc, nil
}

func hasExtension(ehloText, ext string) bool {
	for l := range strings.SplitSeq(ehloText, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && strings.EqualFold(f[0], ext) {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------- idle mode

type idleReport struct {
	Ready      bool             `json:"ready"`
	Wanted     int              `json:"wanted"`
	Greeted    int64            `json:"greeted"`
	Failed     int64            `json:"failed"`
	ErrorKinds map[string]int64 `json:"error_kinds"`
	Seconds    float64          `json:"seconds"`
	FirstError string           `json:"first_error,omitempty"`
}

func runIdle(o options, srcs []netip.Addr) int {
	if o.idleTimeout <= 0 || o.idleTimeout > 30*time.Minute || o.hold <= 0 || o.hold > 2*time.Hour {
		fatalf("-idle-timeout must be in (0, 30m], -hold in (0, 2h]")
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	begin := time.Now()
	ready := begin.Add(o.idleTimeout)
	var (
		mu      sync.Mutex
		conns   []net.Conn
		greeted atomic.Int64
		failed  atomic.Int64
		kinds   = map[string]int64{}
		first   string
	)
	fail := func(err error) {
		failed.Add(1)
		mu.Lock()
		kinds[errKind(err)]++
		if first == "" {
			first = err.Error()
		}
		mu.Unlock()
	}
	// Dial with bounded parallelism so the listen backlog is not flooded.
	const parallel = 64
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i := 0; i < o.idle && ctx.Err() == nil && time.Now().Before(ready); i++ {
		var src netip.Addr
		if len(srcs) > 0 {
			src = srcs[i%len(srcs)]
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			raw, err := dial(o, src, ready)
			if err != nil {
				fail(&stepErr{"connect", classify(err), err})
				return
			}
			_ = raw.SetReadDeadline(ready)
			c := &conn{c: raw, rd: bufio.NewReaderSize(raw, 512)}
			if _, err := c.cmd("banner", "", 220); err != nil {
				raw.Close()
				fail(err)
				return
			}
			_ = raw.SetReadDeadline(time.Time{})
			greeted.Add(1)
			mu.Lock()
			conns = append(conns, raw)
			mu.Unlock()
		})
	}
	wg.Wait()
	rep := idleReport{
		Wanted: o.idle, Greeted: greeted.Load(), Failed: failed.Load(), ErrorKinds: kinds,
		Seconds: round(time.Since(begin).Seconds(), 3), FirstError: first,
	}
	rep.Ready = rep.Greeted == int64(o.idle)
	b, _ := json.Marshal(rep)
	fmt.Println(string(b))

	// Hold until -hold or a signal; watch for servers that
	// close held connections (reported on stderr at the end).
	closedByServer := atomic.Int64{}
	for _, c := range conns {
		go func() {
			var buf [512]byte
			for {
				if _, err := c.Read(buf[:]); err != nil {
					if !errors.Is(err, net.ErrClosed) {
						closedByServer.Add(1)
					}
					return
				}
			}
		}()
	}
	select {
	case <-ctx.Done():
	case <-time.After(o.hold):
	}
	n := closedByServer.Load()
	for _, c := range conns {
		c.Close()
	}
	if n > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: the server closed %d held connections\n", n)
	}
	if !rep.Ready {
		return 1
	}
	return 0
}
