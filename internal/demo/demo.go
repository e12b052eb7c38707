// Package demo runs `mailsec demo`: the whole service in-process on
// loopback, and one reference sender per policy sending a test mail to it,
// each judged by the verdict, on a fresh machine without root and without
// other software.
//
// Nothing is faked: the senders are internal/sender, the policy-aware SMTP
// client; the receiving side is the service's own DNS zones, SMTP personas,
// MTA-STS policy host and certificates (a local CA stands in for the ACME
// CA). Only configuration differs from production: unprivileged ports,
// timings of seconds, and one source address per sender on 127.0.0.0/8.
//
// DNSSEC is validated by the senders' resolver itself
// (resolver.WithTrustAnchors): it asks mailsec's authoritative server and
// checks every answer's signatures, and NSEC proofs, against zones A's and
// B's keys given as trust anchors. No answer is trusted unsigned.
package demo

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/sender"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// Reference is one reference sender.
type Reference struct {
	Name     string // also the expected verdict
	Level    sender.Level
	MTASTS   bool
	Expected verdict.Policy
}

// References are the reference senders, one per policy of DESIGN.md §2.
func References() []Reference {
	return []Reference{
		{"none", sender.LevelNone, false, verdict.PolicyNone},
		{"may", sender.LevelMay, false, verdict.PolicyMay},
		{"encrypt", sender.LevelEncrypt, false, verdict.PolicyEncrypt},
		{"verify", sender.LevelVerify, false, verdict.PolicyVerify},
		{"dane", sender.LevelDANE, false, verdict.PolicyDANE},
		{"dane-only", sender.LevelDANEOnly, false, verdict.PolicyDANEOnly},
		{"mta-sts", sender.LevelMay, true, verdict.PolicyMTASTS},
		{"dane+mta-sts", sender.LevelDANE, true, verdict.PolicyDANEMTASTS},
	}
}

// Options configures a demo run.
type Options struct {
	// Logger receives the service's and the senders' logs (nil: discard).
	Logger *slog.Logger
	// Deadline bounds the whole run (default 110 s).
	Deadline time.Duration
	// Progress, if set, is called as senders finish.
	Progress func(Result)
	// Started, if set, is called with the web UI's URL once the service
	// runs (each test's live page is URL/t/<owner key>).
	Started func(webURL string)
	// Hold keeps the service (and its web UI) running this long after
	// the senders are done, to look at the reports.
	Hold time.Duration
}

// Result is one reference sender's outcome. The JSON keys sender,
// expected, verdict, attempts and seconds are a contract.
type Result struct {
	Sender     string  `json:"sender"`
	Expected   string  `json:"expected"`
	Verdict    string  `json:"verdict"`
	Attempts   int     `json:"attempts"`   // the sender's delivery attempts for A
	Seconds    float64 `json:"seconds"`    // from the first attempt to the final verdict
	AttemptsB  int     `json:"attempts_b"` // the same for B
	DeliveredA bool    `json:"delivered_a"`
	DeliveredB bool    `json:"delivered_b"`
	Complete   bool    `json:"complete"`
	Why        string  `json:"why"`
	Test       string  `json:"test"`
	// OwnerKey opens the test's live page (web UI /t/{owner_key}) while
	// the demo runs; the test ID does not (docs/web.md "Owner keys").
	OwnerKey string            `json:"owner_key"`
	Facts    []verdict.Fact    `json:"facts"`
	ZoneB    string            `json:"zone_b"`
	Seen     map[string]string `json:"seen"`
	OK       bool              `json:"ok"`
}

// Report is the whole run.
type Report struct {
	Results []Result `json:"results"`
	Seconds float64  `json:"seconds"`
	DNSSEC  string   `json:"dnssec"`
	OK      bool     `json:"ok"`
	WebURL  string   `json:"web_url"` // the web UI while the demo ran
}

// Timings of the demo: seconds instead of minutes (DESIGN.md §3 makes every
// timing configuration).
const (
	downgradeWindow = 3 * time.Second
	mxRotation      = 4 * time.Second
	ackAfter        = 8 * time.Second
	maxAttempts     = 8 // per domain; a real queue would go on for days
)

// retryDelay is the reference senders' queue: short backoff, as the lab's
// Postfix instances are configured (minimal_backoff_time 2s).
func retryDelay(attempt int) time.Duration {
	return min(time.Duration(attempt)*time.Second, 3*time.Second)
}

// Run runs the demo.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Deadline == 0 {
		opts.Deadline = 110 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Deadline)
	defer cancel()
	begin := time.Now()

	dir, err := os.MkdirTemp("", "mailsec-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	cfg, err := demoConfig(dir)
	if err != nil {
		return nil, err
	}
	svcCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	run, err := service.Start(svcCtx, cfg, log.With("side", "service"))
	if err != nil {
		stop()
		return nil, fmt.Errorf("starting the service: %w", err)
	}
	defer func() {
		stop()
		_ = run.Wait()
	}()
	if opts.Started != nil {
		opts.Started(run.WebURL)
	}

	res, err := resolver.New(run.DNSAddrs[0].String())
	if err != nil {
		return nil, err
	}
	validating := res.WithTrustAnchors(run.Zones.KeyA.DS(), run.Zones.KeyB.DS())
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(run.Certs.RootsPEM()) {
		return nil, errors.New("demo: no local CA root")
	}

	refs := References()
	results := make([]Result, len(refs))
	var wg sync.WaitGroup
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := netip.AddrFrom4([4]byte{127, 0, 0, byte(20 + i)})
			results[i] = runReference(ctx, run, cfg, ref, src, validating, roots, log.With("sender", ref.Name))
			if opts.Progress != nil {
				opts.Progress(results[i])
			}
		}()
	}
	wg.Wait()
	rep := &Report{Results: results, Seconds: time.Since(begin).Seconds(), OK: true,
		DNSSEC: "validated by the senders' resolver against zones A's and B's keys (trust anchors); answers asked of mailsec's own authoritative server"}
	for _, r := range results {
		rep.OK = rep.OK && r.OK
	}
	rep.WebURL = run.WebURL
	err = ctx.Err()
	if opts.Hold > 0 {
		select {
		case <-time.After(opts.Hold):
		case <-svcCtx.Done():
		}
	}
	return rep, err
}

// demoConfig is the service's configuration for the demo: loopback, port 0
// everywhere (the bound ports are read back), a local CA, short timings,
// one client per address: each reference sender has its own address on
// 127.0.0.0/8, and smtp.client_prefix_v4 = 32 keeps their downgrade
// windows and their policy fetches (evidence) apart.
func demoConfig(dir string) (*config.Config, error) {
	cfg := config.Default()
	cfg.DataDir = dir
	cfg.Log.Level = "warn"
	cfg.Zones.NSAddresses = []string{"127.0.0.1"}
	cfg.Zones.MXAddresses = []string{"127.0.0.1"}
	cfg.Zones.MXTTL = config.Duration{Duration: time.Second}
	cfg.Zones.NegativeTTL = config.Duration{Duration: time.Second}
	// The DNS port is chosen first so that the service's own resolver
	// (DKIM look-ups) is mailsec's server too: nothing leaves loopback.
	dnsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cfg.DNS.Listen = []string{dnsAddr}
	cfg.Resolver.Address = dnsAddr
	cfg.SMTP.Listen = []string{"127.0.0.1:0"}
	cfg.PolicyHost.Listen = []string{"127.0.0.1:0"}
	cfg.Web.Listen = []string{"127.0.0.1:0"}
	cfg.SMTP.ClientPrefixV4 = 32
	cfg.TLS.Issuer = "local"
	cfg.Timing.DowngradeWindow = config.Duration{Duration: downgradeWindow}
	cfg.Timing.MXRotation = config.Duration{Duration: mxRotation}
	cfg.Timing.AckAfter = config.Duration{Duration: ackAfter}
	return &cfg, cfg.Validate()
}

func freeAddr() (string, error) {
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return "", err
		}
		addr := pc.LocalAddr().String()
		l, err := net.Listen("tcp", addr)
		pc.Close()
		if err == nil {
			l.Close()
			return addr, nil
		}
	}
	return "", errors.New("demo: no free port on 127.0.0.1")
}

// runReference sends one test mail from one reference sender, to both of
// its test's addresses, through its queue, and judges the test.
func runReference(ctx context.Context, run *service.Running, cfg *config.Config, ref Reference, src netip.Addr,
	dns sender.DNS, roots *x509.CertPool, log *slog.Logger) Result {
	out := Result{Sender: ref.Name, Expected: string(ref.Expected)}
	id, err := store.NewTestID()
	if err != nil {
		out.Why = err.Error()
		return out
	}
	key, err := store.NewOwnerKey()
	if err != nil {
		out.Why = err.Error()
		return out
	}
	created := time.Now().UTC()
	if err := run.Store.CreateTest(ctx, store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen,
		OwnerKey: key}); err != nil {
		out.Why = err.Error()
		return out
	}
	out.Test, out.OwnerKey = id, key
	// As the lab's Postfix instances: SNI at every level
	// (smtp_tls_servername = hostname).
	snd, err := referenceSender(run, ref, src, true, dns, roots, log)
	if err != nil {
		out.Why = err.Error()
		return out
	}
	start := time.Now()
	deliver(ctx, cfg, snd, ref, id, &out, log)

	// The queue is empty: judge, from the evidence the service's own
	// verdicts use. Connections that never reached RCPT TO (refused
	// certificates) are tied to the test first (evidence.Tie, the rule
	// smtpd applies at the next RCPT: docs/smtp.md).
	jctx, jcancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer jcancel()
	now := time.Now()
	t, err := run.Store.Test(jctx, id)
	if err != nil {
		out.Why = err.Error()
		return out
	}
	if _, err := run.Evidence.Tie(jctx, t, src, now); err != nil {
		out.Why = err.Error()
		return out
	}
	v, _, err := run.Evidence.Judge(jctx, t, now, evidence.SenderDone(), evidence.SentToB())
	if err != nil {
		out.Why = err.Error()
		return out
	}
	out.Verdict, out.Why, out.Complete = string(v.Policy), v.Why, v.Complete
	out.Facts, out.ZoneB, out.Seen = v.Facts, v.ZoneB, v.Seen
	out.Seconds = time.Since(start).Seconds()
	out.OK = v.Policy == ref.Expected
	return out
}

// referenceSender is the SMTP client of reference sender ref from src: its
// policy, the demo's validating resolver and CA roots; every MX host and
// the policy host share the service's one address (ports 25 and 443 are
// mapped to the service's). sendSNI: whether it names the server in its
// TLS handshakes.
func referenceSender(run *service.Running, ref Reference, src netip.Addr, sendSNI bool, dns sender.DNS, roots *x509.CertPool,
	log *slog.Logger) (*sender.Sender, error) {
	smtpAddr, policyAddr := run.SMTPAddrs[0].String(), run.PolicyAddrs[0].String()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	return sender.New(sender.Options{
		Hostname: ref.Name + ".senders.demo.invalid",
		Level:    ref.Level, MTASTS: ref.MTASTS,
		Resolver: dns, Roots: roots,
		SendSNI:   sendSNI,
		LocalAddr: src,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", smtpAddr)
		},
		DialHTTPS: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "tcp", policyAddr)
		},
		ConnectTimeout: 5 * time.Second, CommandTimeout: 10 * time.Second, DataTimeout: 10 * time.Second,
		Logger: log,
	})
}

// deliver sends one test mail of test id through snd to both of its
// addresses: the sender's queue, one entry per recipient domain, retried
// with backoff until delivered, bounced, or the demo's bound. The attempts
// and deliveries are recorded in out.
func deliver(ctx context.Context, cfg *config.Config, snd *sender.Sender, ref Reference, id string, out *Result, log *slog.Logger) {
	zoneA, zoneB := strings.TrimSuffix(cfg.Zones.A, "."), strings.TrimSuffix(cfg.Zones.B, ".")
	from := "demo-" + strings.ReplaceAll(ref.Name, "+", "-") + "@senders.demo.invalid"
	rcptA, rcptB := "t-"+id+"@"+zoneA, "t-"+id+"@"+zoneB
	data := []byte(fmt.Sprintf("From: <%s>\r\nTo: <%s>, <%s>\r\nSubject: mailsec demo (%s)\r\nDate: %s\r\nMessage-ID: <%s.%s@senders.demo.invalid>\r\n\r\nA test mail from the %s reference sender.\r\n",
		from, rcptA, rcptB, ref.Name, time.Now().UTC().Format(time.RFC1123Z), id, ref.Name, ref.Name))
	var wg sync.WaitGroup
	queue := func(rcpt string, attempts *int, delivered *bool) {
		defer wg.Done()
		for *attempts < maxAttempts && ctx.Err() == nil {
			*attempts++
			r := snd.Attempt(ctx, sender.Message{From: from, To: []string{rcpt}, Data: data})
			log.Debug("attempt", "rcpt", rcpt, "n", *attempts, "status", r.Status.String(), "reason", r.Reason)
			if r.Status == sender.Delivered {
				*delivered = true
				return
			}
			if r.Status == sender.Bounced {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(retryDelay(*attempts)):
			}
		}
	}
	wg.Add(2)
	go queue(rcptA, &out.Attempts, &out.DeliveredA)
	go queue(rcptB, &out.AttemptsB, &out.DeliveredB)
	wg.Wait()
}
