// Package certs keeps the TLS certificates of the SMTP personas and of the
// MTA-STS policy host (DESIGN.md §2): it creates, stores, loads and renews
// them, and hands the current one to the TLS servers.
//
// Which certificate a persona serves is part of the test:
//
//   - personas 2, 3 and 4 serve self-signed certificates: persona 2 a
//     generic one (it answers clients that send no SNI), 3 one for mx3.A
//     (its TLSA record matches nothing), 4 one for mx4.A whose key is the
//     one zone A's DANE-EE "3 1 1" TLSA record names (RFC 7671 §5.1);
//   - personas 5 (mx5.A), 6 (mx6.A), 7 (mx7.B) and the policy host
//     (mta-sts.A, RFC 8461 §3.3) serve certificates of a public CA, so
//     that PKIX validation (a "verify" or MTA-STS sender) succeeds.
//
// The CA-signed certificates come from one of three issuers (tls.issuer):
// "acme" (RFC 8555, e.g. Let's Encrypt; pebble in the lab) with the dns-01
// challenge (RFC 8555 §8.4) answered by the service's own authoritative
// zones through a ChallengePublisher; "local", a private CA kept in the
// data directory, a stand-in for the ACME CA in demos and tests whose root
// a lab sender is told to trust (RootsPath); and "static", certificate and
// key files managed by the operator.
//
// Every certificate is made for the persona's persistent key: renewal never
// changes the key, so a TLSA record derived from it stays valid (RFC 7671
// §8.1, "keep the key" — the simplest rollover). With static files the
// key of the file is the persona's key; the zones must then derive their
// TLSA records from it (see StaticPersonaKeys and persona.LoadKeysWith).
//
// Certificates are stored as PEM chains under DATA_DIR/certs, one
// directory per issuer (an ACME directory URL has its own), and loaded at
// start. Run renews a certificate when less than the renew-before time
// remains (at most a third of its lifetime, so short-lived certificates
// are not renewed continuously), and obtains missing ones; failures are
// logged and retried with exponential backoff while the old certificate
// stays in service. The self-signed and local-CA certificates are made in
// New already, so those personas are ready before Run starts.
package certs

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/testslot"
)

// Issuers of the CA-signed certificates (config tls.issuer).
const (
	IssuerACME   = "acme"
	IssuerLocal  = "local"
	IssuerStatic = "static"
)

// ACME challenge types (config acme.challenge).
const (
	ChallengeDNS01  = "dns-01"
	ChallengeHTTP01 = "http-01"
)

// PolicyHostLabel is the first label of the MTA-STS policy host (RFC 8461
// §3.3: https://mta-sts.<domain>/.well-known/mta-sts.txt).
const PolicyHostLabel = testslot.PolicyHostLabel

// Sentinel errors.
var (
	// ErrNoCertificate: the persona serves no certificate (persona 1, or
	// a number outside the table).
	ErrNoCertificate = errors.New("certs: no certificate for this persona")
	// ErrNotReady: the certificate has not been obtained yet (ACME before
	// the first success, or ACME without a directory configured).
	ErrNotReady = errors.New("certs: certificate not obtained yet")
	// ErrHTTP01NotImplemented: acme.challenge = "http-01" is accepted by
	// the configuration but not implemented.
	ErrHTTP01NotImplemented = errors.New(`certs: acme challenge http-01 not implemented yet; use acme.challenge = "dns-01"`)
	// ErrKeyMismatch: a static certificate's key is not the persona's key
	// from which the zone derives its TLSA record.
	ErrKeyMismatch = errors.New("certs: certificate key is not the persona's key")
	// ErrExpiring: a certificate in service is past half of
	// tls.renew_before and has not been replaced (Manager.Check).
	ErrExpiring = errors.New("certs: certificate expires soon and was not renewed")
	// ErrBadCertificate: a certificate does not fit its host (name, key,
	// chain or validity).
	ErrBadCertificate = errors.New("certs: certificate does not fit its host")
	// ErrOptions: the options are incomplete or inconsistent.
	ErrOptions = errors.New("certs: bad options")
)

// ChallengePublisher publishes ACME dns-01 challenge TXT records in the
// service's own zones; *dnszone.Authority implements it. fqdn is
// "_acme-challenge.<host>." and the records must be served when
// SetChallenge returns.
type ChallengePublisher interface {
	SetChallenge(fqdn string, values []string) error
	ClearChallenge(fqdn string) error
}

// StaticFiles names a PEM certificate chain (leaf first) and its key.
type StaticFiles struct {
	Cert string
	Key  string
}

// ACMEOptions configures the ACME client (config [acme]).
type ACMEOptions struct {
	// Directory is the CA's directory URL (https://); "" leaves the
	// CA-signed personas without certificates (Persona returns
	// ErrNotReady) and Run only warns.
	Directory string
	// Email is the account contact; optional.
	Email string
	// CAFile holds PEM roots trusted for the directory's HTTPS in
	// addition to the system pool (pebble's listener certificate).
	CAFile string
	// Challenge is ChallengeDNS01 (default) or ChallengeHTTP01.
	Challenge string
}

// Options configures a Manager. Durations left zero take the defaults
// named in their comments.
type Options struct {
	// DataDir holds keys (DataDir/keys) and certificates (DataDir/certs).
	DataDir string
	// ZoneA and ZoneB are the test zones (trailing dot optional).
	ZoneA, ZoneB string
	// Issuer is IssuerACME, IssuerLocal or IssuerStatic.
	Issuer string
	// Static gives the files per host label (mx5, mx6, mx7, mta-sts) for
	// IssuerStatic.
	Static map[string]StaticFiles
	// RenewBefore renews a certificate when less than this remains
	// (default 30 days; capped at a third of the certificate's lifetime).
	RenewBefore time.Duration
	ACME        ACMEOptions
	// Slots is the number of test slots (zones.slots): the certificates
	// of the MX hosts and the policy host also name the host in every slot
	// (mx5.s001.A …, mta-sts.s001.A …), one certificate per host for the
	// whole pool (docs/certificates.md "Test slots").
	Slots int
	// Keys are the persona keys (the ones the zones' TLSA records use).
	Keys *persona.Keys
	// Challenges publishes dns-01 records (required for ACME dns-01).
	Challenges ChallengePublisher
	Logger     *slog.Logger     // nil: discard
	Now        func() time.Time // nil: time.Now

	// SelfSignedValidity is the lifetime of self-signed certificates
	// (default 365 days).
	SelfSignedValidity time.Duration
	// LocalValidity is the lifetime of local-CA certificates (default 90
	// days, like Let's Encrypt's).
	LocalValidity time.Duration
	// CheckInterval is the longest Run sleeps between passes; static files
	// are re-read this often (default 1 hour).
	CheckInterval time.Duration
	// RetryMin and RetryMax bound the backoff after a failed attempt
	// (defaults 30 seconds and 1 hour; doubled per failure).
	RetryMin, RetryMax time.Duration
	// IssueTimeout bounds one attempt to obtain a certificate (default 5
	// minutes).
	IssueTimeout time.Duration
	// HTTPClient is used for ACME; nil builds one trusting the system
	// roots plus ACME.CAFile.
	HTTPClient *http.Client
}

// withDefaults fills in zero durations.
func (o Options) withDefaults() Options {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.RenewBefore, 30*24*time.Hour)
	def(&o.SelfSignedValidity, 365*24*time.Hour)
	def(&o.LocalValidity, 90*24*time.Hour)
	def(&o.CheckInterval, time.Hour)
	def(&o.RetryMin, 30*time.Second)
	def(&o.RetryMax, time.Hour)
	def(&o.IssueTimeout, 5*time.Minute)
	if o.ACME.Challenge == "" {
		o.ACME.Challenge = ChallengeDNS01
	}
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	return o
}

// slot is one certificate the manager keeps: a persona's or the policy
// host's.
type slot struct {
	name       string   // file name and log key: "persona-6", "mta-sts"
	persona    int      // 2..7; 0 for the policy host
	label      string   // host label in [tls.static]: "mx6", "mta-sts"; "" for persona 2
	host       string   // the certificate's DNS name, no trailing dot
	slotNames  []string // the host's names in the test slots, also in the certificate
	selfSigned bool
	key        crypto.Signer

	cur atomic.Pointer[tls.Certificate]

	// Renewal state, guarded by Manager.renewMu.
	failures int
	retryAt  time.Time
	static   fileStamp // the static files as last loaded
}

// Manager keeps the certificates. Persona and PolicyHost are safe for
// concurrent use and cheap (one atomic load); Run renews in the
// background.
type Manager struct {
	opt   Options
	log   *slog.Logger
	now   func() time.Time
	slots []*slot
	byNum map[int]*slot
	host  *slot // the policy host

	certDir string // where this issuer's certificates are stored
	local   *localCA
	acme    *acmeIssuer

	renewMu sync.Mutex // one renewal pass at a time
}

// New loads the stored certificates, makes the missing self-signed and
// local-CA ones, and loads static files. It does no network I/O: ACME
// certificates are obtained by Run.
func New(opt Options) (*Manager, error) {
	opt = opt.withDefaults()
	if opt.DataDir == "" || opt.Keys == nil || opt.ZoneA == "" || opt.ZoneB == "" {
		return nil, fmt.Errorf("%w: DataDir, Keys, ZoneA and ZoneB are required", ErrOptions)
	}
	m := &Manager{opt: opt, log: opt.Logger, now: opt.Now, byNum: map[int]*slot{}}
	if opt.Slots < 0 || opt.Slots > testslot.MaxCount {
		return nil, fmt.Errorf("%w: %d test slots (0 to %d)", ErrOptions, opt.Slots, testslot.MaxCount)
	}
	pool := testslot.Pool{ZoneA: opt.ZoneA, ZoneB: opt.ZoneB, Count: opt.Slots}
	zoneName := func(z persona.Zone) string {
		if z == persona.ZoneB {
			return dnsname.Canonical(opt.ZoneB)
		}
		return dnsname.Canonical(opt.ZoneA)
	}
	for _, p := range persona.Table() {
		if !p.HasKey() {
			continue
		}
		key := opt.Keys.Signer(p.Number)
		if key == nil {
			return nil, fmt.Errorf("%w: persona %d has no key", ErrOptions, p.Number)
		}
		s := &slot{name: fmt.Sprintf("persona-%d", p.Number), persona: p.Number, label: p.Host,
			selfSigned: p.Cert == persona.CertSelfSigned, key: key}
		if p.Host != "" {
			s.host = p.Host + "." + zoneName(p.Zone)
			s.slotNames = pool.Hosts(p.Host, p.Zone)
		} else {
			// Persona 2 answers clients without SNI: no MX host of its
			// own; its certificate names the zone.
			s.host = zoneName(p.Zone)
		}
		m.slots = append(m.slots, s)
		m.byNum[p.Number] = s
	}
	m.host = &slot{name: PolicyHostLabel, label: PolicyHostLabel, host: PolicyHostLabel + "." + dnsname.Canonical(opt.ZoneA),
		slotNames: pool.Hosts(PolicyHostLabel, persona.ZoneA)}
	m.slots = append(m.slots, m.host)

	keyDir := filepath.Join(opt.DataDir, "keys")
	certRoot := filepath.Join(opt.DataDir, "certs")
	switch opt.Issuer {
	case IssuerLocal:
		m.certDir = filepath.Join(certRoot, "local")
		ca, err := loadOrCreateLocalCA(filepath.Join(keyDir, "local-ca.key"), filepath.Join(certRoot, "local-ca.pem"), dnsname.Canonical(opt.ZoneA), opt.Now())
		if err != nil {
			return nil, err
		}
		m.local = ca
	case IssuerACME:
		m.certDir = filepath.Join(certRoot, "acme-"+directoryID(opt.ACME.Directory))
		if opt.ACME.Directory != "" {
			switch opt.ACME.Challenge {
			case ChallengeDNS01:
				if opt.Challenges == nil {
					return nil, fmt.Errorf("%w: ACME dns-01 needs a ChallengePublisher", ErrOptions)
				}
			case ChallengeHTTP01:
				return nil, ErrHTTP01NotImplemented
			default:
				return nil, fmt.Errorf("%w: unknown ACME challenge %q", ErrOptions, opt.ACME.Challenge)
			}
			a, err := newACMEIssuer(opt, filepath.Join(keyDir, "acme-account.key"))
			if err != nil {
				return nil, err
			}
			m.acme = a
		} else {
			m.log.Warn("tls.issuer is acme but acme.directory is empty: personas 5, 6, 7 and the policy host get no certificate")
		}
	case IssuerStatic:
	default:
		return nil, fmt.Errorf("%w: unknown issuer %q", ErrOptions, opt.Issuer)
	}

	// The policy host's key: its own persistent key, or the static file's.
	if opt.Issuer != IssuerStatic {
		key, err := loadOrCreateKey(filepath.Join(keyDir, "policy-host.key"))
		if err != nil {
			return nil, fmt.Errorf("policy host key: %w", err)
		}
		m.host.key = key
	}

	now := opt.Now()
	for _, s := range m.slots {
		if !s.selfSigned && opt.Issuer == IssuerStatic {
			if err := m.loadStatic(s); err != nil {
				return nil, err
			}
			continue
		}
		m.loadStored(s)
		if s.selfSigned || m.local != nil {
			// Offline issuers: make what is missing or due right away.
			if c := s.cur.Load(); c == nil || !now.Before(renewAt(c.Leaf, opt.RenewBefore)) {
				if err := m.issue(context.Background(), s); err != nil {
					return nil, err
				}
			}
		}
	}
	return m, nil
}

// Persona returns the certificate persona n serves now: ErrNoCertificate
// for persona 1 and unknown numbers, ErrNotReady while a CA-signed one has
// not been obtained. The result is shared: callers must not modify it.
// It is meant to be called in tls.Config.GetConfigForClient.
func (m *Manager) Persona(n int) (*tls.Certificate, error) {
	s, ok := m.byNum[n]
	if !ok {
		return nil, fmt.Errorf("%w: persona %d", ErrNoCertificate, n)
	}
	return s.current()
}

// PolicyHost returns the certificate of mta-sts.A, or ErrNotReady.
func (m *Manager) PolicyHost() (*tls.Certificate, error) { return m.host.current() }

// PolicyHostName returns the policy host's name, mta-sts.<zone A>,
// without trailing dot.
func (m *Manager) PolicyHostName() string { return m.host.host }

// names are the DNS names the certificate of s must carry: its host's,
// then the host's in every test slot. A certificate without one of them is
// replaced (a grown pool gets new certificates at the next start).
func (s *slot) names() []string { return append([]string{s.host}, s.slotNames...) }

func (s *slot) current() (*tls.Certificate, error) {
	if c := s.cur.Load(); c != nil {
		return c, nil
	}
	return nil, fmt.Errorf("%w: %s (%s)", ErrNotReady, s.name, s.host)
}

// Check says whether every certificate is in service with time to spare:
// an error naming each one that is missing (ErrNotReady) or that expires
// within half of tls.renew_before (ErrExpiring): renewal begins at
// renew_before, so by then it has been failing for that long, and an
// operator must look before the certificate lapses. nil when all are fine.
func (m *Manager) Check() error {
	now := m.now()
	var errs []error
	for _, s := range m.slots {
		c, err := s.current()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if left := c.Leaf.NotAfter.Sub(now); left < m.opt.RenewBefore/2 {
			errs = append(errs, fmt.Errorf("%w: %s (%s) expires %s, in %s", ErrExpiring, s.name, s.host,
				c.Leaf.NotAfter.UTC().Format(time.RFC3339), left.Round(time.Minute)))
		}
	}
	return errors.Join(errs...)
}

// RootsPEM returns the PEM root certificate of the local CA, which a lab
// sender must trust for the CA-signed personas; nil for other issuers.
func (m *Manager) RootsPEM() []byte {
	if m.local == nil {
		return nil
	}
	return m.local.rootPEM
}

// RootsPath returns the file holding RootsPEM, "" for other issuers.
func (m *Manager) RootsPath() string {
	if m.local == nil {
		return ""
	}
	return m.local.rootPath
}

// Run obtains missing certificates and renews due ones until ctx ends,
// then returns nil. Failures are logged and retried with backoff; the
// certificate in service stays until a new one is installed.
func (m *Manager) Run(ctx context.Context) error {
	for {
		next, _ := m.renewPass(ctx) // errors are logged per certificate
		wait := min(max(next.Sub(m.now()), time.Second), m.opt.CheckInterval)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// RenewDue runs one renewal pass now: every certificate that is missing or
// due (and not waiting out a backoff) is obtained, static files are
// re-read if they changed. It returns the failures, joined.
func (m *Manager) RenewDue(ctx context.Context) error {
	_, err := m.renewPass(ctx)
	return err
}

// renewPass is RenewDue that also returns when the next pass is needed.
func (m *Manager) renewPass(ctx context.Context) (next time.Time, err error) {
	m.renewMu.Lock()
	defer m.renewMu.Unlock()
	now := m.now()
	next = now.Add(m.opt.CheckInterval)
	var errs []error
	for _, s := range m.slots {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		if !s.selfSigned && m.opt.Issuer == IssuerStatic {
			m.reloadStatic(s)
			continue
		}
		if !s.selfSigned && m.opt.Issuer == IssuerACME && m.acme == nil {
			continue // no directory configured; New warned
		}
		if now.Before(s.retryAt) {
			next = minTime(next, s.retryAt)
			continue
		}
		if c := s.cur.Load(); c != nil {
			if due := renewAt(c.Leaf, m.opt.RenewBefore); now.Before(due) {
				next = minTime(next, due)
				continue
			}
		}
		if err := m.issue(ctx, s); err != nil {
			s.failures++
			delay := backoff(s.failures, m.opt.RetryMin, m.opt.RetryMax)
			s.retryAt = m.now().Add(delay)
			next = minTime(next, s.retryAt)
			attrs := []any{"cert", s.name, "host", s.host, "failures", s.failures, "retry_in", delay, "err", err}
			if c := s.cur.Load(); c != nil {
				attrs = append(attrs, "serving_until", c.Leaf.NotAfter)
			}
			m.log.Error("obtaining certificate failed; keeping the old one", attrs...)
			errs = append(errs, fmt.Errorf("%s (%s): %w", s.name, s.host, err))
			continue
		}
		s.failures, s.retryAt = 0, time.Time{}
		if c := s.cur.Load(); c != nil {
			next = minTime(next, renewAt(c.Leaf, m.opt.RenewBefore))
		}
	}
	return next, errors.Join(errs...)
}

// issue obtains a new certificate for s from its issuer and installs it.
func (m *Manager) issue(ctx context.Context, s *slot) error {
	ctx, cancel := context.WithTimeout(ctx, m.opt.IssueTimeout)
	defer cancel()
	now := m.now()
	var (
		chain [][]byte
		err   error
		how   string
	)
	switch {
	case s.selfSigned:
		how = "self-signed"
		chain, err = selfSign(s, now, m.opt.SelfSignedValidity)
	case m.local != nil:
		how = "local CA"
		chain, err = m.local.issue(s, now, m.opt.LocalValidity)
	case m.acme != nil:
		how = "ACME " + m.opt.ACME.Directory
		chain, err = m.acme.obtain(ctx, s, m.log)
	default:
		return fmt.Errorf("%w: %s has no issuer", ErrNotReady, s.name)
	}
	if err != nil {
		return err
	}
	cert, err := m.check(s, chain, now)
	if err != nil {
		return err
	}
	if err := writeChain(m.chainPath(s), chain); err != nil {
		// Serve it anyway: it is valid, only the restart would lose it.
		m.log.Error("storing certificate failed", "cert", s.name, "err", err)
	}
	s.cur.Store(cert)
	m.log.Info("certificate installed", "cert", s.name, "host", s.host, "issuer", how,
		"not_after", cert.Leaf.NotAfter, "renew_at", renewAt(cert.Leaf, m.opt.RenewBefore))
	return nil
}

// chainPath is where the certificate of s is stored.
func (m *Manager) chainPath(s *slot) string {
	if s.selfSigned {
		return filepath.Join(m.opt.DataDir, "certs", "self", s.name+".pem")
	}
	return filepath.Join(m.certDir, s.name+".pem")
}

// loadStored installs the stored certificate of s if it still fits (same
// key, same name, and for the local CA, the same root); otherwise it is
// left for issue to replace.
func (m *Manager) loadStored(s *slot) {
	path := m.chainPath(s)
	chain, err := readChain(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("stored certificate unreadable; obtaining a new one", "cert", s.name, "path", path, "err", err)
		}
		return
	}
	cert, err := m.check(s, chain, time.Time{})
	if err != nil {
		m.log.Warn("stored certificate discarded; obtaining a new one", "cert", s.name, "path", path, "err", err)
		return
	}
	s.cur.Store(cert)
	m.log.Debug("certificate loaded", "cert", s.name, "path", path, "not_after", cert.Leaf.NotAfter)
}

// renewAt is when a certificate is due for renewal: renewBefore ahead of
// its expiry, but no earlier than two thirds into its lifetime (the point
// Let's Encrypt recommends), so that a lifetime shorter than renewBefore
// does not make it due at once, forever.
func renewAt(leaf *x509.Certificate, renewBefore time.Duration) time.Time {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotAfter.Add(-min(renewBefore, life/3))
}

// backoff is the wait after the n-th consecutive failure: lo doubled per
// failure, at most hi.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
