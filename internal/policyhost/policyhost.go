// Package policyhost serves zone A's MTA-STS policy over HTTPS (RFC 8461
// §3.3) and records every request as evidence.
//
// A sender that does MTA-STS, having found the "_mta-sts" TXT record of
// zone A (§3.1), fetches https://mta-sts.A/.well-known/mta-sts.txt and
// then accepts only MX hosts the policy lists, with PKIX-valid
// certificates. The fetch itself tells the outbound test that the sender
// does MTA-STS at all (DESIGN.md §4), so each such fetch is written to the
// store — time, client address, User-Agent, SNI, path and status — before
// the answer is sent.
//
// Only fetches of the policy are evidence: GET or HEAD of exactly the
// policy path on our host, answered 200. Every other request (scanners,
// other paths, other hosts, other methods) is counted (Strays) and logged
// in a summary at most once a minute, never stored: a row per request
// would let anyone fill the disk. Fetches of the policy are stored at most
// MaxFetchesPerClient an hour per client network; the evidence reader
// needs one fetch of a network in its window, not thousands.
//
// The server follows what §3.3 asks of a policy host and what senders
// check: TLS only, with the CA-signed certificate of mta-sts.A (§3.3: "the
// certificate must be valid for the mta-sts host"); the policy at exactly
// that path, status 200, media type text/plain; no redirects (§3.3:
// senders must not follow them); 404 for any other path, 421 Misdirected
// Request (RFC 9110 §15.5.20) for another Host. HTTP/1.1 only: policy
// fetchers use it, and it keeps the server small. Timeouts bound slow
// clients; a plain-HTTP request on the TLS port gets Go's "400 client sent
// an HTTP request to an HTTPS server" and is closed.
//
// If the store fails, the policy is still served and the error logged: an
// outage of the evidence log must not change what the tested sender sees.
//
// The host also takes TLS-RPT reports (RFC 8460 §5.4) POSTed to
// ReportPath on its own name (the "rua=https:" URI of zone A's and every
// slot's _smtp._tls record), when Options.Reports is set: bounded in size
// (MaxReportBytes, 413) and per client network and hour
// (ReportsPerClient, 429); a media type other than
// application/tlsrpt+json or +gzip gets 415, a report that does not parse
// (or a gzip bomb) 400 with the reason, a full store 503; a stored or
// already received report 200 (docs/tlsrpt.md).
package policyhost

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsec/mailsec/internal/clientnet"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/listen"
	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/ratelimit"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/tlsrpt"
	"github.com/mailsec/mailsec/internal/tlsrptintake"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// WellKnownPath is where the policy is served (RFC 8461 §3.3).
const WellKnownPath = "/.well-known/mta-sts.txt"

// ReportPath is where TLS-RPT reports are POSTed (RFC 8460 §5.4 leaves the
// path to the record; ours is https://mta-sts.<zone A>/.well-known/tlsrpt).
const ReportPath = "/.well-known/tlsrpt"

// Default timeouts: generous for a slow sender, short enough that idle or
// trickling connections cannot pile up.
const (
	defaultReadHeaderTimeout = 10 * time.Second
	defaultReadTimeout       = 30 * time.Second
	defaultWriteTimeout      = 30 * time.Second
	defaultIdleTimeout       = 60 * time.Second
	defaultRecordTimeout     = 5 * time.Second
	defaultShutdownTimeout   = 5 * time.Second
	maxHeaderBytes           = 16 << 10

	defaultMaxFetchesPerClient = 100
	defaultMaxReportBytes      = 1 << 20
	defaultReportsPerClient    = 10
	// straySummaryEvery rate-limits the log line about stray requests.
	straySummaryEvery = time.Minute
)

// ErrNoCertificate is wrapped when the policy host has no certificate yet;
// the TLS handshake then fails.
var ErrNoCertificate = errors.New("policyhost: no certificate")

// Recorder stores policy fetches; *store.Store implements it.
type Recorder interface {
	AddPolicyFetch(ctx context.Context, f store.PolicyFetch) error
}

// Reports takes in TLS-RPT reports; *tlsrptintake.Intake implements it.
type Reports interface {
	Accept(ctx context.Context, s tlsrptintake.Submission) (tlsrptintake.Result, error)
}

// Options configures a Server.
type Options struct {
	// Host is the policy host's name, mta-sts.<zone A> (trailing dot
	// optional). Requests for another Host get 421.
	Host string
	// Policy is the policy text (mtasts.Policy.String()).
	Policy string
	// SlotPolicies are the policy hosts of the test slots
	// (mta-sts.s001.<zone A> …, any case, trailing dot optional) with
	// their policy texts (docs/policy-host.md "Test slots"); the
	// certificate must name them too.
	SlotPolicies map[string]string
	// Certificate returns the policy host's current certificate
	// (certs.Manager.PolicyHost); called for every handshake.
	Certificate func() (*tls.Certificate, error)
	// Recorder receives the policy fetches; nil records nothing.
	Recorder Recorder
	// MaxFetchesPerClient bounds the fetches stored per client network
	// (ClientPrefixV4/V6) and hour; more are answered and counted, not
	// stored. 0 means 100.
	MaxFetchesPerClient int
	// Reports takes the TLS-RPT reports POSTed to ReportPath; nil: the
	// path is not served (404).
	Reports Reports
	// MaxReportBytes bounds a POSTed report's body
	// (smtp.tlsrpt_max_bytes); 0 means 1 MiB.
	MaxReportBytes int64
	// ReportsPerClient bounds the reports taken per client network and
	// hour (smtp.tlsrpt_per_client_per_hour); 0 means 10.
	ReportsPerClient int
	// ClientPrefixV4 and ClientPrefixV6 make a client address its
	// network (smtp.client_prefix_v4/v6); 0 means 24 and 48.
	ClientPrefixV4, ClientPrefixV6 int
	Logger                         *slog.Logger     // nil: discard
	Now                            func() time.Time // nil: time.Now

	// Timeouts; zero takes the defaults above.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// RecordTimeout bounds writing one fetch to the store (default 5s).
	RecordTimeout time.Duration
}

// Server is the HTTPS server of the policy host.
type Server struct {
	// policies are the policy texts by canonical host name: Host's and
	// the test slots'.
	policies map[string][]byte
	opt      Options
	log      *slog.Logger
	now      func() time.Time
	fetches  *ratelimit.Window // stored fetches per client network
	reports  *ratelimit.Window // TLS-RPT reports per client network

	strays      atomic.Uint64 // requests that were not policy fetches
	unstored    atomic.Uint64 // policy fetches over MaxFetchesPerClient
	summaryMu   sync.Mutex
	summaryAt   time.Time // last summary log line
	summarySent [2]uint64 // strays and unstored at that line
}

// New returns a server for opt.
func New(opt Options) *Server {
	option.Positive(&opt.ReadHeaderTimeout, defaultReadHeaderTimeout)
	option.Positive(&opt.ReadTimeout, defaultReadTimeout)
	option.Positive(&opt.WriteTimeout, defaultWriteTimeout)
	option.Positive(&opt.IdleTimeout, defaultIdleTimeout)
	option.Positive(&opt.RecordTimeout, defaultRecordTimeout)
	option.Positive(&opt.MaxFetchesPerClient, defaultMaxFetchesPerClient)
	option.Positive(&opt.MaxReportBytes, defaultMaxReportBytes)
	option.Positive(&opt.ReportsPerClient, defaultReportsPerClient)
	if opt.ClientPrefixV4 <= 0 || opt.ClientPrefixV4 > 32 {
		opt.ClientPrefixV4 = clientnet.DefaultBitsV4
	}
	if opt.ClientPrefixV6 <= 0 || opt.ClientPrefixV6 > 128 {
		opt.ClientPrefixV6 = clientnet.DefaultBitsV6
	}
	s := &Server{opt: opt, log: opt.Logger, now: opt.Now,
		policies: map[string][]byte{dnsname.Canonical(opt.Host): []byte(opt.Policy)}}
	for host, text := range opt.SlotPolicies {
		s.policies[dnsname.Canonical(host)] = []byte(text)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.fetches = ratelimit.New(opt.MaxFetchesPerClient, time.Hour, s.now)
	s.reports = ratelimit.New(opt.ReportsPerClient, time.Hour, s.now)
	return s
}

// Listen binds TCP on every address (host:port; port 0 picks one). Binding
// happens before serving, so a busy port is reported at once.
func Listen(ctx context.Context, addrs []string) ([]net.Listener, error) {
	return listen.TCP(ctx, "policy host", addrs)
}

// Serve answers HTTPS on the listeners until ctx ends, then shuts down
// gracefully (in-flight requests get a few seconds) and returns nil, or
// the first error of a listener.
func (s *Server) Serve(ctx context.Context, listeners []net.Listener) error {
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.opt.ReadHeaderTimeout,
		ReadTimeout:       s.opt.ReadTimeout,
		WriteTimeout:      s.opt.WriteTimeout,
		IdleTimeout:       s.opt.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		TLSConfig:         s.TLSConfig(),
		// A non-nil empty map turns HTTP/2 off: HTTP/1.1 only.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// Handshake failures (scanners, plain HTTP) are routine.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext: func(net.Listener) context.Context {
			return context.WithoutCancel(ctx)
		},
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(listeners))
	for _, l := range listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("policy host %s: %w", l.Addr(), err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultShutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
	}
	wg.Wait()
	return err
}

// TLSConfig is the server's TLS configuration: the policy host's
// certificate for every handshake, TLS 1.2 or later, HTTP/1.1 by ALPN.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if s.opt.Certificate == nil {
				return nil, ErrNoCertificate
			}
			c, err := s.opt.Certificate()
			if err != nil {
				return nil, fmt.Errorf("%w: %w", ErrNoCertificate, err)
			}
			return c, nil
		},
	}
}

// ServeHTTP answers one request; see the package documentation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.opt.Reports != nil && r.URL.Path == ReportPath && dnsname.Canonical(hostOnly(r.Host)) == dnsname.Canonical(s.opt.Host) {
		s.serveReport(w, r)
		return
	}
	status := s.status(r)
	s.record(r, status)
	h := w.Header()
	switch status {
	case http.StatusOK:
		h.Set("Content-Type", "text/plain")
		// §3.3: senders must not use HTTP caching; the policy's max_age
		// governs how long they keep it.
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(s.policies[dnsname.Canonical(hostOnly(r.Host))])
		}
	case http.StatusMethodNotAllowed:
		h.Set("Allow", "GET, HEAD")
		http.Error(w, http.StatusText(status), status)
	default:
		http.Error(w, http.StatusText(status), status)
	}
}

// status decides the answer to r.
func (s *Server) status(r *http.Request) int {
	switch {
	case s.policies[dnsname.Canonical(hostOnly(r.Host))] == nil:
		return http.StatusMisdirectedRequest
	case r.URL.Path != WellKnownPath:
		return http.StatusNotFound
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return http.StatusMethodNotAllowed
	}
	return http.StatusOK
}

// Strays returns how many requests were not policy fetches (and so were
// not stored).
func (s *Server) Strays() uint64 { return s.strays.Load() }

// Unstored returns how many policy fetches were answered but not stored,
// their client network being over MaxFetchesPerClient.
func (s *Server) Unstored() uint64 { return s.unstored.Load() }

// record writes a policy fetch to the store before the answer goes out;
// other requests are only counted.
func (s *Server) record(r *http.Request, status int) {
	client, _ := netip.ParseAddrPort(r.RemoteAddr)
	if status != http.StatusOK {
		s.strays.Add(1)
		s.log.Debug("policy host: stray request", "client", r.RemoteAddr, "host", untrusted.Printable(r.Host, 255),
			"path", untrusted.Printable(r.URL.Path, 255), "status", status)
		s.summarise()
		return
	}
	if !s.fetches.Allow(clientnet.Key(client.Addr(), s.opt.ClientPrefixV4, s.opt.ClientPrefixV6)) {
		s.unstored.Add(1)
		s.summarise()
		return
	}
	f := store.PolicyFetch{
		Time:      s.now(),
		Client:    client,
		UserAgent: r.UserAgent(),
		Path:      r.URL.Path,
		Status:    status,
	}
	if r.URL.RawQuery != "" {
		f.Path += "?" + r.URL.RawQuery
	}
	if r.TLS != nil {
		f.SNI = r.TLS.ServerName
	}
	s.log.Info("policy fetch", "client", r.RemoteAddr, "sni", untrusted.Printable(f.SNI, 255),
		"ua", untrusted.Printable(f.UserAgent, 255), "path", untrusted.Printable(f.Path, 255))
	if s.opt.Recorder == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opt.RecordTimeout)
	defer cancel()
	if err := s.opt.Recorder.AddPolicyFetch(ctx, f); err != nil {
		s.log.Error("recording policy fetch failed; answering anyway", "client", r.RemoteAddr, "err", err)
	}
}

// summarise logs how many requests were not stored since the last summary,
// at most once every straySummaryEvery: a flood of them must not become a
// flood of log lines.
func (s *Server) summarise() {
	now := s.now()
	s.summaryMu.Lock()
	defer s.summaryMu.Unlock()
	if !s.summaryAt.IsZero() && now.Sub(s.summaryAt) < straySummaryEvery {
		return
	}
	strays, unstored := s.strays.Load(), s.unstored.Load()
	s.log.Info("policy host: requests not stored", "strays", strays-s.summarySent[0], "fetches_over_limit", unstored-s.summarySent[1],
		"strays_total", strays, "fetches_over_limit_total", unstored)
	s.summaryAt, s.summarySent = now, [2]uint64{strays, unstored}
}

// hostOnly strips a port from a Host header value.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// drainFactor and drainAtLeast bound how much of an oversize report
// serveReport reads and drops before its 413: this many times the limit,
// and at least this much.
const (
	drainFactor  = 4
	drainAtLeast = 1 << 20
)

// serveReport takes a TLS-RPT report POSTed to ReportPath (RFC 8460 §5.4).
func (s *Server) serveReport(w http.ResponseWriter, r *http.Request) {
	client, _ := netip.ParseAddrPort(r.RemoteAddr)
	answer := func(status int, text string) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = fmt.Fprintln(w, text)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		answer(http.StatusMethodNotAllowed, "TLS-RPT reports are POSTed here (RFC 8460 §5.4)")
		return
	}
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || (mt != tlsrpt.MediaTypeJSON && mt != tlsrpt.MediaTypeGzip) {
		answer(http.StatusUnsupportedMediaType, "Content-Type must be "+tlsrpt.MediaTypeJSON+" or "+tlsrpt.MediaTypeGzip)
		return
	}
	// The per-network quota first: an oversize report is drained below
	// (bounded), and that reading must count too.
	if !s.reports.Allow(clientnet.Key(client.Addr(), s.opt.ClientPrefixV4, s.opt.ClientPrefixV6)) {
		w.Header().Set("Retry-After", "3600")
		answer(http.StatusTooManyRequests, "too many TLS-RPT reports from your network, try again later")
		return
	}
	tooLargeAnswer := func() {
		// Read (and drop) what the client is still sending, up to
		// drainFactor times the limit (at least drainAtLeast), before
		// answering: a server that
		// answers and closes while the client still writes makes its
		// kernel reset the connection, and the client sees "connection
		// reset by peer" instead of this 413 (lab/hardening saw it). A
		// larger body is not read: the reset is then the answer.
		_, _ = io.CopyN(io.Discard, r.Body, max(drainFactor*s.opt.MaxReportBytes, drainAtLeast))
		answer(http.StatusRequestEntityTooLarge, fmt.Sprintf("TLS-RPT report larger than %d octets", s.opt.MaxReportBytes))
	}
	if r.ContentLength > s.opt.MaxReportBytes {
		tooLargeAnswer()
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.opt.MaxReportBytes+1))
	switch {
	case err == nil && int64(len(body)) > s.opt.MaxReportBytes:
		tooLargeAnswer()
		return
	case err != nil:
		answer(http.StatusBadRequest, "reading the report: "+untrusted.Printable(err.Error(), 200))
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), s.opt.RecordTimeout)
	defer cancel()
	res, err := s.opt.Reports.Accept(ctx, tlsrptintake.Submission{Source: store.TLSRPTByHTTPS, Client: client.Addr(), Raw: body, ContentType: ct})
	switch {
	case errors.Is(err, tlsrptintake.ErrBadReport):
		answer(http.StatusBadRequest, "TLS-RPT report refused: "+untrusted.Printable(err.Error(), 300))
	case errors.Is(err, store.ErrTLSRPTFull):
		w.Header().Set("Retry-After", "3600")
		answer(http.StatusServiceUnavailable, "TLS-RPT report storage full, try again later")
	case err != nil:
		s.log.Error("policy host: storing a TLS-RPT report", "client", r.RemoteAddr, "err", err)
		answer(http.StatusServiceUnavailable, "temporary failure, try again later")
	case res.Duplicate:
		answer(http.StatusOK, "TLS-RPT report received already")
	default:
		answer(http.StatusOK, "TLS-RPT report received")
	}
}
