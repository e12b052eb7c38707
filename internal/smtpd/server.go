package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailsec/mailsec/internal/clientnet"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/listen"
	"github.com/mailsec/mailsec/internal/mailauth"
	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/ratelimit"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/testslot"
	"github.com/mailsec/mailsec/internal/tlsrptintake"
)

// Certificates gives the certificate (chain and key) a persona serves. The
// certificate package implements it; Persona is called for every TLS
// handshake, so it should return a cached value, and it must be safe for
// concurrent use.
type Certificates interface {
	Persona(n int) (*tls.Certificate, error)
}

// Options configures a Server. Zero values take the defaults noted.
type Options struct {
	// ZoneA and ZoneB are the test zones (DESIGN.md §2), with or without
	// the trailing dot. Required.
	ZoneA, ZoneB string
	// Slots is the number of test slots (zones.slots; docs/smtp.md "Test
	// slots"): the personas also serve their hosts in every slot (SNI
	// mx4.s001.A …) and accept mail for the slots' domains (s001.A,
	// s001.B); a t-<token> address in a slot's domain is the test's only
	// if the test holds that slot.
	Slots int
	// Hostname is the name in the greeting and the EHLO reply; "" means
	// ZoneA.
	Hostname string
	// Personas is the server table; nil means persona.Table().
	Personas []persona.Persona
	// Certificates serves the personas' certificates. Required.
	Certificates Certificates
	// LocalPersonas maps a local address to the persona of the MX host that
	// owns it, for deployments where hosts have addresses of their own: a
	// STARTTLS session to that address without SNI (or with an SNI we do
	// not serve) gets that persona. Only personas with a certificate
	// (2..7) are allowed.
	LocalPersonas map[netip.Addr]int
	// BrokenHostAddrs are the addresses of zone A's broken MX host
	// (dnssec.broken_hosts with zones.host_addresses): a connection there
	// is recorded, proving that the sender's resolver handed out an
	// address that fails DNSSEC validation, and answered 421 in place of
	// the greeting so that the sender goes on to the next MX host (RFC
	// 5321 §3.1, §5.1). It starts no downgrade window and counts against
	// no connection cap.
	BrokenHostAddrs []netip.Addr
	// IPv6HostAddrs are the addresses of zone A's IPv6-only MX host, one
	// per test slot (zones.host_addresses.mx-v6, docs/dns.md "IPv6-only
	// host"): a connection there is recorded, proving that the sender
	// delivers over IPv6 (the address names the slot, and so the test),
	// and answered 421 in place of the greeting like the broken host's,
	// with the same consequences.
	IPv6HostAddrs []netip.Addr
	// Store records the connection history and holds the tests. Required.
	Store *store.Store

	// DowngradeWindow: STARTTLS is not offered to a client for this long
	// after the first connection of each of its test episodes
	// (timing.downgrade_window). 0 disables the window.
	DowngradeWindow time.Duration
	// EpisodeQuiet: a client whose window is over, that has no open test
	// and has made no connection for this long starts a new episode at its
	// next connection, even with connections that belong to no test
	// (timing.episode_quiet; docs/smtp.md); 0 means 10m.
	EpisodeQuiet time.Duration
	// AckAfter is timing.ack_after, passed to verdict.Acknowledge.
	AckAfter time.Duration
	// Evidence are the rules of a test's evidence, shared with the
	// finaliser and the reports (service.EvidenceRules): which policy
	// fetches the acknowledgement sees, and timing.test_expiry for the tie
	// rule. Zero fields take evidence's defaults; zero prefixes take
	// ClientPrefixV4 and ClientPrefixV6.
	Evidence evidence.Rules
	// CommandTimeout bounds the wait for each command line and each reply
	// write (timing.smtp_command_timeout; RFC 5321 §4.5.3.2 suggests 5
	// minutes); 0 means 5m.
	CommandTimeout time.Duration
	// DataTimeout bounds the whole message transfer after DATA
	// (timing.smtp_data_timeout; RFC 5321 §4.5.3.2.6: 10 minutes); 0
	// means 10m.
	DataTimeout time.Duration
	// SessionMax bounds a connection's whole life (smtp.session_max):
	// CommandTimeout alone lets a client that sends NOOP now and then hold
	// a connection slot for ever. Past it the next read fails, the client
	// gets 421 and the connection is closed, mid-transaction too. 0 means
	// 10m.
	SessionMax time.Duration
	// ShutdownGrace is how long Serve waits, after its context ends, for
	// connections in the middle of a mail transaction; idle ones are
	// closed at once. 0 means 5s.
	ShutdownGrace time.Duration
	// StoreTimeout bounds each store operation; 0 means 10s.
	StoreTimeout time.Duration

	// MaxMessageBytes is the SIZE limit (RFC 1870); 0 means 10 MiB.
	MaxMessageBytes int64
	// MaxRecipients per mail (RFC 5321 §4.5.3.1.8 requires at least 100
	// to be accepted by relays; a test needs two); 0 means 20.
	MaxRecipients int
	// MaxLineLength of command and text lines (RFC 5321 §4.5.3.1.6: 1000
	// octets with CRLF; go-smtp doubles it); 0 means 2000.
	MaxLineLength int
	// MaxConnectionsPerClient caps the concurrent connections of one
	// client (ClientPrefixV4/V6); more are answered 421 and closed. 0
	// means no cap.
	MaxConnectionsPerClient int
	// MaxConnections caps all concurrent connections; 0 means no cap.
	MaxConnections int
	// DataMemoryBudget bounds the bytes all DATA phases hold in memory
	// together; a message that does not fit is answered 452 4.3.1. 0
	// means no budget.
	DataMemoryBudget int64
	// ClientPrefixV4 and ClientPrefixV6 define "one client" for the
	// downgrade window and the connection cap; 0 means 24 and 48.
	ClientPrefixV4, ClientPrefixV6 int

	// FixedLocalParts are local parts accepted in A and B besides
	// t-<token>; such tests are keyed by the envelope sender. nil means
	// ["test"]; an empty non-nil slice means none.
	FixedLocalParts []string
	// FixedTests caps the open tests of the fixed addresses per client
	// network and overall (docs/smtp.md); past a cap a new sender's RCPT
	// is answered 452. Zero fields mean 20 and 10,000.
	FixedTests store.FixedTestLimits
	// TLSRPTAddress receives TLS-RPT reports (RFC 8460); "" means
	// tlsrpt@ZoneA.
	TLSRPTAddress string
	// TLSRPTMaxBytes is the size limit of a mail to TLSRPTAddress; larger
	// ones are refused with 552 5.3.4 while DATA is read (or at RCPT when
	// MAIL announced the size, RFC 1870). RFC 8460 §5.3 reports are a
	// JSON document, optionally gzip-compressed, as an attachment: a few
	// KiB. 0 means 1 MiB.
	TLSRPTMaxBytes int64
	// TLSRPTPerClient is how many TLS-RPT mails one client
	// (ClientPrefixV4/V6) may send per hour; more are answered 450 4.7.1
	// at RCPT. A reporter sends one report a day per policy domain
	// (RFC 8460 §4.1). 0 means 10.
	TLSRPTPerClient int
	// TLSRPTQuota bounds the TLS-RPT mails stored; past it new ones are
	// answered 452 4.3.1 (the retention purge makes room). Zero fields
	// take 10,000 reports and 256 MiB.
	TLSRPTQuota store.TLSRPTQuota
	// AcceptAll answers 250 to every mail for A and B with no test logic
	// and no downgrade window (bench mode). History is still recorded.
	AcceptAll bool

	// DNS is the service's own resolver: DKIM keys (RFC 6376 §3.6.2),
	// SPF and DMARC of every test mail (internal/mailauth). nil: no
	// resolver configured; signatures and SPF then give temperror.
	DNS mailauth.DNS
	// TestSender, if set, is told the envelope sender of every accepted
	// test recipient: the service checks the sender's domain (inbound,
	// docs/inbound.md) and de-duplicates per test. It must not block.
	TestSender func(testID, sender string)
	// DKIMTimeout bounds the verification of one message's signatures,
	// key lookups included, and again the SPF and DMARC evaluation of a
	// test mail; 0 means 10s.
	DKIMTimeout time.Duration

	Logger *slog.Logger // nil: discard
	// Node is written on every connection record (store.SMTPConnection.Node):
	// at its start a node ends only its own records left open
	// (docs/cluster.md).
	Node string
	Now  func() time.Time // nil: time.Now
}

// Defaults.
const (
	defaultCommandTimeout = 5 * time.Minute
	defaultSessionMax     = 10 * time.Minute
	defaultDataTimeout    = 10 * time.Minute
	defaultShutdownGrace  = 5 * time.Second
	defaultStoreTimeout   = 10 * time.Second
	defaultMaxMessage     = 10 << 20
	defaultMaxRecipients  = 20
	defaultMaxLineLength  = 2000
	defaultDKIMTimeout    = 10 * time.Second
	defaultEpisodeQuiet   = 10 * time.Minute
	defaultTLSRPTMaxBytes = 1 << 20
	defaultTLSRPTPerHour  = 10
	defaultTLSRPTReports  = 10000
	defaultTLSRPTStored   = 256 << 20

	// maxDKIMVerifications bounds the signatures verified per message
	// (each costs a key lookup and a body hash).
	maxDKIMVerifications = 8
	// maxRecordedSignatures bounds the signatures recorded per message.
	maxRecordedSignatures = 32
	// maxSignatureText bounds the d= and s= recorded of a signature: a
	// domain name is at most 253 octets in text (RFC 1035 §2.3.4).
	maxSignatureText = 253
	// maxMailsPerConnection and the rejected-recipient limit (twice
	// MaxRecipients, at least 10) bound the store work one connection can
	// cause; past them the connection is answered 421 and closed.
	maxMailsPerConnection = 50
	minRejectedRecipients = 10
	// windowStartCacheSize bounds the cache of downgrade-window start times.
	windowStartCacheSize = 100000
)

// Server runs the SMTP personas. Create it with New and run it with Serve.
type Server struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	zoneA  string // lower-case, no trailing dot
	zoneB  string
	slots  testslot.Pool
	tlsrpt string // lower-case address
	fixed  map[string]bool
	sni    map[string]int // lower-case SNI → persona
	locals map[netip.Addr]int
	// refusedAt maps the addresses of the hosts that are no persona (the
	// broken host, the IPv6-only host) to the reply that answers every
	// connection there in place of the greeting.
	refusedAt map[netip.Addr]string
	// The personas assigned by rule: plain text in A, STARTTLS without a
	// name in A, and zone B's.
	plainA, defaultTLS, zoneBPersona int
	// tlsConfig is the configuration of the STARTTLS server; the persona's
	// own configuration comes from GetConfigForClient.
	tlsConfig *tls.Config
	// evidence reads a test's evidence for the acknowledgement and ties
	// connections to tests.
	evidence evidence.Gatherer
	intake   *tlsrptintake.Intake // parses, ties and stores TLS-RPT reports
	// recorder writes the connection rows (prepared statements); set by
	// Serve.
	recorder *store.ConnectionRecorder

	clients      clientTable
	windowStarts windowStartCache
	episodeLocks keyLocks
	tlsrptRate   *ratelimit.Window      // TLS-RPT mails per client per hour
	dataBudget   dataBudget             // memory of the DATA phases
	refused      atomic.Int64           // connections answered 421 at the caps
	accepted     [2]atomic.Int64        // test mails answered 250, zone A and B (Stats)
	deferred     [2]atomic.Int64        // test mails answered 451 by verdict.Acknowledge
	fixedMu      sync.Mutex             // serializes find-or-create of fixed-address tests
	panics       atomic.Int64           // recovered panics in this package's code
	lastPanic    atomic.Pointer[string] // the last of them, with its stack
	libPanics    atomic.Int64           // recovered panics inside go-smtp
	serving      atomic.Bool
	activeMu     sync.Mutex
	active       map[*trackedConn]struct{}
	activeWG     sync.WaitGroup
	shutdownCh   chan struct{} // closed when Serve starts shutting down
}

// The caps of the open fixed-address tests (smtp.fixed_tests_per_client
// and smtp.fixed_tests_open_max).
const (
	defaultFixedTestsPerClient = 20
	defaultFixedTestsOpen      = 10000
)

// New checks opts and returns a server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("smtpd: no store")
	}
	if opts.Certificates == nil {
		return nil, errors.New("smtpd: no certificates")
	}
	s := &Server{
		opts:       opts,
		log:        opts.Logger,
		now:        opts.Now,
		zoneA:      dnsname.Canonical(opts.ZoneA),
		zoneB:      dnsname.Canonical(opts.ZoneB),
		slots:      testslot.Pool{ZoneA: opts.ZoneA, ZoneB: opts.ZoneB, Count: opts.Slots},
		fixed:      map[string]bool{},
		sni:        map[string]int{},
		locals:     map[netip.Addr]int{},
		refusedAt:  map[netip.Addr]string{},
		active:     map[*trackedConn]struct{}{},
		shutdownCh: make(chan struct{}),
		dataBudget: dataBudget{limit: opts.DataMemoryBudget},
	}
	if s.zoneA == "" || s.zoneB == "" || s.zoneA == s.zoneB {
		return nil, fmt.Errorf("smtpd: zones %q and %q must be two different domains", opts.ZoneA, opts.ZoneB)
	}
	s.log, s.now = option.Logger(s.log), option.Clock(s.now)
	o := &s.opts
	// A negative prefix is a mistake, not "unset": refused before the
	// defaults fill the unset ones.
	if o.ClientPrefixV4 < 0 || o.ClientPrefixV4 > 32 || o.ClientPrefixV6 < 0 || o.ClientPrefixV6 > 128 {
		return nil, fmt.Errorf("smtpd: client prefixes /%d, /%d out of range", o.ClientPrefixV4, o.ClientPrefixV6)
	}
	option.Positive(&o.CommandTimeout, defaultCommandTimeout)
	option.Positive(&o.DataTimeout, defaultDataTimeout)
	option.Positive(&o.SessionMax, defaultSessionMax)
	option.Positive(&o.ShutdownGrace, defaultShutdownGrace)
	option.Positive(&o.StoreTimeout, defaultStoreTimeout)
	option.Positive(&o.DKIMTimeout, defaultDKIMTimeout)
	option.Positive(&o.EpisodeQuiet, defaultEpisodeQuiet)
	option.Positive(&o.MaxMessageBytes, defaultMaxMessage)
	option.Positive(&o.MaxRecipients, defaultMaxRecipients)
	option.Positive(&o.MaxLineLength, defaultMaxLineLength)
	option.Positive(&o.TLSRPTMaxBytes, defaultTLSRPTMaxBytes)
	option.Positive(&o.TLSRPTPerClient, defaultTLSRPTPerHour)
	option.Positive(&o.FixedTests.PerClient, defaultFixedTestsPerClient)
	option.Positive(&o.FixedTests.Open, defaultFixedTestsOpen)
	option.Positive(&o.TLSRPTQuota.MaxReports, defaultTLSRPTReports)
	option.Positive(&o.TLSRPTQuota.MaxBytes, defaultTLSRPTStored)
	option.Positive(&o.ClientPrefixV4, clientnet.DefaultBitsV4)
	option.Positive(&o.ClientPrefixV6, clientnet.DefaultBitsV6)
	option.Positive(&o.Evidence.PrefixV4, o.ClientPrefixV4)
	option.Positive(&o.Evidence.PrefixV6, o.ClientPrefixV6)
	s.evidence = evidence.Gatherer{Store: o.Store, Rules: o.Evidence}
	s.intake = tlsrptintake.New(tlsrptintake.Options{Evidence: s.evidence, Quota: o.TLSRPTQuota, Logger: o.Logger, Now: o.Now})
	if o.Hostname == "" {
		o.Hostname = s.zoneA
	}
	if o.Personas == nil {
		o.Personas = persona.Table()
	}
	if o.FixedLocalParts == nil {
		o.FixedLocalParts = []string{"test"}
	}
	for _, lp := range o.FixedLocalParts {
		lp = strings.ToLower(lp)
		if lp == "" || strings.HasPrefix(lp, "t-") || strings.ContainsAny(lp, "@ \t<>\"") {
			return nil, fmt.Errorf("smtpd: fixed local part %q is not a plain local part (t-* is reserved for test tokens)", lp)
		}
		s.fixed[lp] = true
	}
	s.tlsrpt = strings.ToLower(o.TLSRPTAddress)
	if s.tlsrpt == "" {
		s.tlsrpt = "tlsrpt@" + s.zoneA
	}
	var err error
	if s.plainA, s.defaultTLS, s.zoneBPersona, err = personaRoles(o.Personas); err != nil {
		return nil, err
	}
	withCert := map[int]bool{}
	for _, p := range o.Personas {
		if !p.HasKey() {
			continue
		}
		withCert[p.Number] = true
		if p.SNI && p.Host != "" {
			// The host's shared name and its name in every slot.
			for n := 0; n <= s.slots.Count; n++ {
				s.sni[s.slots.Host(p.Host, n, p.Zone)] = p.Number
			}
		}
	}
	for a, n := range o.LocalPersonas {
		if !withCert[n] {
			return nil, fmt.Errorf("smtpd: local address %s: persona %d serves no certificate", a, n)
		}
		s.locals[a.Unmap()] = n
	}
	for _, h := range []struct {
		name, reply string
		addrs       []netip.Addr
	}{
		{"the broken host's", brokenHostReply, o.BrokenHostAddrs},
		{"the IPv6-only host's", ipv6HostReply, o.IPv6HostAddrs},
	} {
		for _, a := range h.addrs {
			if _, ok := s.locals[a.Unmap()]; ok {
				return nil, fmt.Errorf("smtpd: local address %s: both a persona's and %s", a, h.name)
			}
			if _, ok := s.refusedAt[a.Unmap()]; ok {
				return nil, fmt.Errorf("smtpd: local address %s: both the broken host's and the IPv6-only host's", a)
			}
			s.refusedAt[a.Unmap()] = h.reply
		}
	}
	s.clients = clientTable{n: map[string]int{}}
	s.windowStarts = windowStartCache{m: map[string]time.Time{}}
	s.tlsrptRate = ratelimit.New(o.TLSRPTPerClient, time.Hour, s.now)
	s.tlsConfig = &tls.Config{
		GetConfigForClient: s.configForClient,
		// Observe old senders too: what they negotiate is evidence.
		MinVersion: tls.VersionTLS10,
	}
	return s, nil
}

// Listen opens TCP listeners on addrs (host:port). On error it closes the
// ones already opened.
func Listen(ctx context.Context, addrs []string) ([]net.Listener, error) {
	return listen.TCP(ctx, "smtpd", addrs)
}

// Serve accepts connections on ls until ctx ends, then stops accepting,
// waits up to ShutdownGrace for connections in a mail transaction, closes
// the rest and returns when every connection's record is final. It closes
// the listeners. A Server serves once.
func (s *Server) Serve(ctx context.Context, ls []net.Listener) error {
	if !s.serving.CompareAndSwap(false, true) {
		return errors.New("smtpd: Serve called twice")
	}
	if len(ls) == 0 {
		return errors.New("smtpd: no listeners")
	}
	rec, err := s.opts.Store.NewConnectionRecorder(ctx)
	if err != nil {
		for _, l := range ls {
			l.Close()
		}
		return fmt.Errorf("smtpd: %w", err)
	}
	s.recorder = rec // before any goroutine that writes records starts
	defer rec.Close()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	// Two go-smtp servers, one offering STARTTLS and one not, each fed
	// through an in-memory listener by the accept loops below.
	plainL := newChanListener(ls[0].Addr())
	tlsL := newChanListener(ls[0].Addr())
	var smtpWG sync.WaitGroup
	for _, p := range []struct {
		l   *chanListener
		cfg *tls.Config
	}{{plainL, nil}, {tlsL, s.tlsConfig}} {
		srv := s.newSMTPServer(p.cfg)
		smtpWG.Go(func() { _ = srv.Serve(p.l) }) // returns when p.l is closed
	}

	var acceptWG sync.WaitGroup
	for _, l := range ls {
		acceptWG.Go(func() {
			if err := s.acceptLoop(ctx, l, plainL, tlsL); err != nil {
				cancel(err)
			}
		})
	}

	<-ctx.Done()
	close(s.shutdownCh)
	for _, l := range ls {
		l.Close()
	}
	acceptWG.Wait()
	plainL.Close()
	tlsL.Close()
	s.drain()
	smtpWG.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// drain ends the open connections: idle ones at once, those in a mail
// transaction after at most ShutdownGrace. RFC 5321 §3.8 allows closing on
// shutdown; go-smtp owns the reply stream, so no 421 is sent.
func (s *Server) drain() {
	closeAll := func(onlyIdle bool) {
		s.activeMu.Lock()
		defer s.activeMu.Unlock()
		for c := range s.active {
			if !onlyIdle || !c.rec.busy() {
				c.abort("server shutdown")
			}
		}
	}
	closeAll(true)
	done := make(chan struct{})
	go func() {
		s.activeWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		return
	case <-time.After(s.opts.ShutdownGrace):
	}
	closeAll(false)
	<-done
}

// newSMTPServer configures one go-smtp server; cfg nil means no STARTTLS.
func (s *Server) newSMTPServer(cfg *tls.Config) *smtp.Server {
	srv := smtp.NewServer(backend{s})
	srv.Domain = s.opts.Hostname
	srv.TLSConfig = cfg
	srv.ReadTimeout = s.opts.CommandTimeout
	srv.WriteTimeout = s.opts.CommandTimeout
	srv.MaxMessageBytes = s.opts.MaxMessageBytes
	srv.MaxRecipients = s.opts.MaxRecipients
	srv.MaxLineLength = s.opts.MaxLineLength
	srv.ErrorLog = errorLog{s}
	return srv
}

// acceptLoop accepts on l until ctx ends. Accept errors other than a closed
// listener (such as running out of file descriptors) are retried with a
// back-off, as net/http does.
func (s *Server) acceptLoop(ctx context.Context, l net.Listener, plainL, tlsL *chanListener) error {
	var delay time.Duration
	for {
		raw, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("smtpd: listener %s closed: %w", l.Addr(), err)
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("smtp accept failed", "listener", l.Addr().String(), "err", err, "retry", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				return nil
			}
			continue
		}
		delay = 0
		s.activeWG.Add(1)
		go s.handle(ctx, raw, plainL, tlsL)
	}
}

// handle records a new connection, applies the connection caps and the
// downgrade window, and hands the connection to the go-smtp server with or
// without STARTTLS. It runs in its own goroutine so that a slow store
// never stalls the accept loop.
func (s *Server) handle(ctx context.Context, raw net.Conn, plainL, tlsL *chanListener) {
	now := s.now()
	client := addrPortOf(raw.RemoteAddr())
	local := addrPortOf(raw.LocalAddr())
	key := s.clientKey(client.Addr())
	rec := &record{c: store.SMTPConnection{
		Started:   now,
		Client:    client,
		Local:     local,
		ClientKey: key,
		State:     store.StateNone,
		Node:      s.opts.Node,
	}, local: s.locals[local.Addr()]}
	tc := &trackedConn{Conn: raw, srv: s, rec: rec, sessionEnd: time.Now().Add(s.opts.SessionMax)}
	log := s.log.With("client", client.String())

	if reply, ok := s.refusedAt[local.Addr().Unmap()]; ok {
		// The broken host or the IPv6-only host: the connection is the
		// evidence (its resolver does not validate DNSSEC; it delivers
		// over IPv6); the 421 sends the sender on to the next MX host
		// within the same attempt. It belongs to no downgrade-window
		// client: it starts no window and is no activity of the
		// client's episode (else the retest that connects here first
		// would find the client busy and get no window of its own).
		rec.c.ClientKey = ""
		s.refuseRecorded(raw, rec, log, reply, "")
		return
	}
	over, why := "", ""
	switch {
	case s.opts.MaxConnections > 0 && !s.clients.acquireGlobal(s.opts.MaxConnections):
		over, why = "421 4.3.2 too busy, try again later", "too many connections (server)"
	case !s.clients.acquire(key, s.opts.MaxConnectionsPerClient):
		s.clients.releaseGlobal(s.opts.MaxConnections)
		over, why = "421 4.7.0 too many connections", "too many connections"
	}
	if over != "" {
		s.refused.Add(1)
		s.refuseRecorded(raw, rec, log, over, why)
		return
	}
	tc.acquired = true

	if !s.opts.AcceptAll && s.opts.DowngradeWindow > 0 {
		start, err := s.windowStart(key, now)
		if err != nil {
			log.Error("smtp: downgrade window", "err", err)
			s.refuseUnrecorded(tc, "421 4.3.0 temporary failure, try again later")
			return
		}
		rec.inWindow = now.Before(start.Add(s.opts.DowngradeWindow))
	}
	rec.c.STARTTLSOffered = !rec.inWindow
	if err := s.storeOp(func(ctx context.Context) error { return s.recorder.Insert(ctx, &rec.c) }); err != nil {
		log.Error("smtp: recording a connection", "err", err)
		s.refuseUnrecorded(tc, "421 4.3.0 temporary failure, try again later")
		return
	}
	rec.log = log.With("conn", rec.c.ID)

	s.activeMu.Lock()
	select {
	case <-s.shutdownCh:
		s.activeMu.Unlock()
		tc.abort("server shutdown")
		tc.Close()
		return
	default:
	}
	s.active[tc] = struct{}{}
	s.activeMu.Unlock()

	l := tlsL
	if rec.inWindow {
		l = plainL
	}
	if !l.deliver(tc) {
		tc.abort("server shutdown")
		tc.Close()
	}
}

// refuseRecorded records a connection refused in place of the greeting
// (RFC 5321 §3.1: a 421 instead of the 220), final at once, with the reply
// and why (an Error, "" for a refusal that is no fault), then answers and
// closes it.
func (s *Server) refuseRecorded(raw net.Conn, rec *record, log *slog.Logger, reply, why string) {
	rec.c.Ended, rec.c.Reply, rec.c.Error = rec.c.Started, reply, why
	if err := s.storeOp(func(ctx context.Context) error { return s.recorder.Insert(ctx, &rec.c) }); err != nil {
		log.Error("smtp: recording a refused connection", "reply", reply, "err", err)
	}
	_ = raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = raw.Write([]byte(reply + "\r\n"))
	_ = closeGracefully(raw)
	s.activeWG.Done()
}

// brokenHostReply answers a connection to the broken host in place of the
// greeting: a 4xx greeting makes the client try the next MX host (RFC 5321
// §3.1, §5.1), and Postfix does not count the session against
// smtp_mx_session_limit (it did not complete EHLO).
const brokenHostReply = "421 4.4.3 this host's address fails DNSSEC validation: try the next MX host"

// ipv6HostReply answers a connection to the IPv6-only host in place of
// the greeting, for the same reason: the connection itself is all it
// tests (docs/smtp.md "IPv6-only host").
const ipv6HostReply = "421 4.4.3 this host only tests IPv6 reachability: try the next MX host"

// refuseUnrecorded answers and closes a connection that could not be
// recorded (the store failed): nothing may be acknowledged off the record.
func (s *Server) refuseUnrecorded(tc *trackedConn, reply string) {
	_ = tc.Conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = tc.Conn.Write([]byte(reply + "\r\n"))
	_ = closeGracefully(tc.Conn)
	s.clients.release(tc.rec.c.ClientKey)
	s.clients.releaseGlobal(s.opts.MaxConnections)
	s.activeWG.Done()
}

// storeOp runs one store operation with the store timeout. It does not use
// the Serve context: records must be completed during shutdown too.
func (s *Server) storeOp(f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.StoreTimeout)
	defer cancel()
	return f(ctx)
}

// windowStart returns the start of the client's downgrade window, starting
// a new episode of the client at now if its last one is over
// (newEpisode). While a window runs its start cannot move (an episode
// ends only after its window), so a cached start inside its window is
// answered from memory; after the window every connection asks the store,
// where every node sees the same facts.
func (s *Server) windowStart(key string, now time.Time) (time.Time, error) {
	if w, ok := s.windowStarts.get(key); ok && now.Before(w.Add(s.opts.DowngradeWindow)) {
		return w, nil
	}
	// Connections of one client accepted at once decide one after the
	// other, so that all of them see the restart one of them makes.
	mu := s.episodeLocks.of(key)
	mu.Lock()
	defer mu.Unlock()
	var w time.Time
	err := s.storeOp(func(ctx context.Context) error {
		var err error
		if w, err = s.opts.Store.ClientWindowStart(ctx, key, now); err != nil {
			return err
		}
		if now.Before(w.Add(s.opts.DowngradeWindow)) {
			return nil
		}
		ep, err := s.opts.Store.ClientEpisodeSince(ctx, key, w)
		if err != nil {
			return err
		}
		if !newEpisode(ep, now, s.opts.EpisodeQuiet) {
			return nil
		}
		from := w
		if w, err = s.opts.Store.RestartClientWindow(ctx, key, from, now); err != nil {
			return err
		}
		s.log.Info("smtp: new test episode: downgrade window restarted", "client", key, "previous", from)
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	s.windowStarts.put(key, w)
	return w, nil
}

// newEpisode tells whether a client whose window is over starts a new test
// episode at now: its window restarts. The client must have been offered
// STARTTLS in this episode (else a sender that refuses plain text and
// retries slowly would see only windows), no test of its connections since
// the window started may be open, and either every such connection belongs
// to a test (all of them final: the client's tests are done) or the client
// has been quiet for at least quiet (what it left untied, such as aborted
// attempts of a pool's other MTAs, is over).
func newEpisode(ep store.ClientEpisode, now time.Time, quiet time.Duration) bool {
	switch {
	case !ep.Offered, ep.OpenTest:
		return false
	case !ep.Untied:
		return true
	}
	return now.Sub(ep.LastStart) >= quiet
}

// clientKey is the downgrade-window client of addr: its prefix of
// ClientPrefixV4/V6 bits, in text form ("192.0.2.0/24").
func (s *Server) clientKey(addr netip.Addr) string {
	return clientnet.Key(addr, s.opts.ClientPrefixV4, s.opts.ClientPrefixV6)
}

// addrPortOf returns the unmapped address and port of a TCP address.
func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	if ta, ok := a.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	} else if a != nil {
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// clientTable counts concurrent connections per client key and in total.
type clientTable struct {
	mu    sync.Mutex
	n     map[string]int
	total int
}

func (t *clientTable) acquire(key string, limit int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if limit > 0 && t.n[key] >= limit {
		return false
	}
	t.n[key]++
	return true
}

func (t *clientTable) release(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n[key] <= 1 {
		delete(t.n, key)
	} else {
		t.n[key]--
	}
}

func (t *clientTable) acquireGlobal(limit int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.total >= limit {
		return false
	}
	t.total++
	return true
}

func (t *clientTable) releaseGlobal(limit int) {
	if limit <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total--
}

// windowStartCache holds downgrade-window start times; it forgets everything
// when full (the store keeps the truth).
type windowStartCache struct {
	mu sync.Mutex
	m  map[string]time.Time
}

func (c *windowStartCache) get(key string) (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[key]
	return t, ok
}

func (c *windowStartCache) put(key string, t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= windowStartCacheSize {
		clear(c.m)
	}
	c.m[key] = t
}

// keyLocks is a fixed set of mutexes a key is hashed to: one key always
// gets the same mutex, different keys rarely wait for each other, and the
// memory does not grow with the number of clients.
type keyLocks [64]sync.Mutex

func (l *keyLocks) of(key string) *sync.Mutex {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return &l[h.Sum32()%uint32(len(l))]
}

// chanListener is a net.Listener fed through a channel: the accept loop
// hands it connections it has already accepted and recorded.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// deliver hands c to the listener's server; false if the listener closed.
func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.closed:
		return false
	}
}

// errorLog passes go-smtp's internal errors to slog and counts panics.
// go-smtp recovers panics in command handlers and in its BDAT goroutine and
// logs them with their stack. A panic with a frame of this module is ours
// (counted in panics; the fuzz target fails on it). One without is
// go-smtp's own: v0.25/v0.26 calls Conn.Session().Data in its BDAT
// goroutine after the connection may have closed and cleared the session
// ("BDAT 0" without LAST, then end of input); it is recovered, harmless,
// and counted in libPanics.
type errorLog struct{ s *Server }

func (e errorLog) Printf(format string, v ...any) { e.print(fmt.Sprintf(format, v...)) }
func (e errorLog) Println(v ...any)               { e.print(fmt.Sprintln(v...)) }

func (e errorLog) print(msg string) {
	msg = strings.TrimSpace(msg)
	switch {
	case !strings.HasPrefix(msg, "panic serving"):
		e.s.log.Debug("smtp: connection error", "msg", msg)
	case strings.Contains(msg, "github.com/mailsec/mailsec/"):
		e.s.panics.Add(1)
		e.s.lastPanic.Store(&msg)
		e.s.log.Error("smtp: panic in session", "msg", msg)
	default:
		e.s.libPanics.Add(1)
		e.s.log.Warn("smtp: panic recovered inside go-smtp", "msg", msg)
	}
}
