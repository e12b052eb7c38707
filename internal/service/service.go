// Package service wires mailsec's parts together from a configuration: it
// is the one place that knows every package, so that the packages themselves
// depend only downwards.
package service

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailsec/mailsec/internal/certs"
	"github.com/mailsec/mailsec/internal/cluster"
	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/dnssec"
	"github.com/mailsec/mailsec/internal/dnsserver"
	"github.com/mailsec/mailsec/internal/dnszone"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/listen"
	"github.com/mailsec/mailsec/internal/metrics"
	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/policyhost"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/smtpd"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/testslot"
	"github.com/mailsec/mailsec/internal/tlsrptintake"
	"github.com/mailsec/mailsec/internal/web"
)

// DNSKEYTTL is the TTL of the DNSKEY RRsets.
const DNSKEYTTL = 3600

// Zones holds the test zones with their keys.
type Zones struct {
	Authority *dnszone.Authority
	KeyA      *dnssec.Key
	KeyB      *dnssec.Key // nil if zone B is unsigned
	Policy    mtasts.Policy
	// SlotPolicies are the MTA-STS policies of the test slots: slot n's
	// is SlotPolicies[n-1] (SlotPolicy).
	SlotPolicies []mtasts.Policy
	Keys         *persona.Keys // the personas' keys, from which TLSA is made
	// DKIMKey signs the result mails (nil when they are off); its record
	// is published at <result_mail.selector>._domainkey.A.
	DKIMKey crypto.Signer
}

// ZoneKeys says whether BuildZones may make DNSSEC keys that are missing.
type ZoneKeys int

const (
	// CreateZoneKeys: a first start (an empty store); missing keys are
	// made.
	CreateZoneKeys ZoneKeys = iota
	// RequireZoneKeys: the store holds history, so the zones' DS records
	// are out there; a missing key file is an error, never a new key
	// (which would make both zones bogus for validating resolvers).
	RequireZoneKeys
)

// ZoneKeysOf is the ZoneKeys of a store: RequireZoneKeys once it holds
// history (a zone key recorded, a test).
func ZoneKeysOf(ctx context.Context, st *store.Store) (ZoneKeys, error) {
	history, err := st.HoldsHistory(ctx)
	if err != nil {
		return RequireZoneKeys, err
	}
	if history {
		return RequireZoneKeys, nil
	}
	return CreateZoneKeys, nil
}

// ZoneKeysFor is ZoneKeysOf the configured store, for commands that build
// the zones without running the service (`mailsec dns ds`): no store file
// yet means a first start.
func ZoneKeysFor(ctx context.Context, cfg *config.Config) (ZoneKeys, error) {
	if cfg.Store.Driver != store.DriverPostgres {
		if _, err := os.Stat(cfg.StorePath()); errors.Is(err, os.ErrNotExist) {
			return CreateZoneKeys, nil
		}
	}
	st, err := store.OpenDriver(ctx, cfg.Store.Driver, cfg.StorePath())
	if err != nil {
		return RequireZoneKeys, err
	}
	defer st.Close()
	return ZoneKeysOf(ctx, st)
}

// recordZoneKeys notes the zones' keys in the store, so that a later start
// missing their files refuses (ZoneKeysOf).
func recordZoneKeys(ctx context.Context, st *store.Store, z *Zones, now time.Time) error {
	for _, k := range []*dnssec.Key{z.KeyA, z.KeyB} {
		if k == nil {
			continue
		}
		if err := st.RecordZoneKey(ctx, k.DNSKEY.Hdr.Name, k.KeyTag(), now); err != nil {
			return err
		}
	}
	return nil
}

// loadZoneKey reads zone's key, making it first only with CreateZoneKeys.
func loadZoneKey(cfg *config.Config, zone string, keys ZoneKeys) (*dnssec.Key, error) {
	if keys == CreateZoneKeys {
		return dnssec.LoadOrCreateKey(cfg.KeyDir(), zone, DNSKEYTTL)
	}
	k, err := dnssec.LoadKey(cfg.KeyDir(), zone)
	if errors.Is(err, dnssec.ErrKeyMissing) {
		return nil, fmt.Errorf("%w; the store %s holds earlier data, so the parent's DS names the lost key and a new one would make the zone bogus: "+
			"restore the key files into %s (or, to start over, remove the store and publish the new DS)", err, cfg.StoreName(), cfg.KeyDir())
	}
	return k, err
}

// BuildZones loads (or, with CreateZoneKeys, creates) the keys and builds
// the authority for the configured zones.
func BuildZones(cfg *config.Config, now time.Time, keys ZoneKeys) (*Zones, error) {
	keyDir := cfg.KeyDir()
	// With static certificates, the keys in the files are the personas'
	// keys: the zones' TLSA records must match what is served.
	var overrides map[int]crypto.Signer
	if cfg.TLSIssuer() == certs.IssuerStatic {
		var err error
		if overrides, err = certs.StaticPersonaKeys(staticFiles(cfg)); err != nil {
			return nil, err
		}
	}
	pkeys, err := persona.LoadKeysWith(keyDir, overrides)
	if err != nil {
		return nil, err
	}
	keyA, err := loadZoneKey(cfg, cfg.Zones.A, keys)
	if err != nil {
		return nil, err
	}
	var keyB *dnssec.Key
	if cfg.Zones.SignB {
		if keyB, err = loadZoneKey(cfg, cfg.Zones.B, keys); err != nil {
			return nil, err
		}
	}
	z := &Zones{KeyA: keyA, KeyB: keyB, Policy: Policy(cfg), Keys: pkeys}
	for _, n := range Slots(cfg).Slots() {
		z.SlotPolicies = append(z.SlotPolicies, SlotPolicy(cfg, n))
	}

	hostAddrs := map[string][]netip.Addr{}
	for h, list := range cfg.Zones.HostAddresses {
		hostAddrs[h] = addrs(list)
	}
	policyAddrs := addrs(cfg.Zones.PolicyHostAddresses)
	if len(policyAddrs) == 0 {
		policyAddrs = addrs(cfg.Zones.MXAddresses)
	}
	base := dnszone.TestZoneSpec{
		NSAddrs:     addrs(cfg.Zones.NSAddresses),
		NSNames:     cfg.Zones.NSNames,
		MXAddrs:     addrs(cfg.Zones.MXAddresses),
		HostAddrs:   hostAddrs,
		PolicyAddrs: policyAddrs,
		TTL:         seconds(cfg.Zones.TTL.Duration),
		MXTTL:       seconds(cfg.Zones.MXTTL.Duration),
		NegativeTTL: seconds(cfg.Zones.NegativeTTL.Duration),
		SPF:         SPF(cfg),
		Keys:        pkeys,
		Rotation:    cfg.Timing.MXRotation.Duration,
		Slots:       cfg.Zones.Slots,
	}
	specA := base
	specA.Zone, specA.Origin, specA.DNSKEY = persona.ZoneA, cfg.Zones.A, keyA.DNSKEY
	specA.Policy, specA.TLSRPT, specA.BrokenHosts = z.Policy, cfg.Zones.TLSRPTAddress, cfg.DNSSEC.BrokenHosts
	specA.SlotPolicies = z.SlotPolicies
	specA.TLSRPTHTTPS = TLSRPTURI(cfg)
	if cfg.ResultMail.Enabled {
		if z.DKIMKey, err = resultmail.LoadOrCreateKey(resultmail.KeyPath(keyDir, cfg.ResultMail.Selector)); err != nil {
			return nil, err
		}
		rec, err := resultmail.DNSRecord(z.DKIMKey)
		if err != nil {
			return nil, err
		}
		specA.DKIM = map[string]string{cfg.ResultMail.Selector: rec}
	}
	specB := base
	specB.Zone, specB.Origin = persona.ZoneB, cfg.Zones.B
	signer := func(k *dnssec.Key) *dnssec.Signer {
		if k == nil {
			return nil
		}
		return dnssec.NewSigner(k, cfg.DNSSEC.SignatureValidity.Duration, cfg.DNSSEC.RefreshBefore.Duration, cfg.DNSSEC.InceptionOffset.Duration)
	}
	if keyB != nil {
		specB.DNSKEY = keyB.DNSKEY
	}
	z.Authority, err = dnszone.NewAuthority(
		[]dnszone.TestZoneSpec{specA, specB},
		[]*dnssec.Signer{signer(keyA), signer(keyB)},
		cfg.Timing.MXRotation.Duration, now)
	if err != nil {
		return nil, err
	}
	return z, nil
}

// Policy returns zone A's MTA-STS policy: enforce, listing the personas
// that are in the policy (mx4, mx5, mx6 — DESIGN.md §2).
func Policy(cfg *config.Config) mtasts.Policy { return SlotPolicy(cfg, 0) }

// Slots returns the pool of test slots (zones.slots; docs/dns.md "Test
// slots").
func Slots(cfg *config.Config) testslot.Pool {
	return testslot.Pool{ZoneA: cfg.Zones.A, ZoneB: cfg.Zones.B, Count: cfg.Zones.Slots}
}

// SlotRules returns how new tests get test slots (zones.slots,
// zones.slot_rest).
func SlotRules(cfg *config.Config) store.SlotRules {
	return store.SlotRules{Count: cfg.Zones.Slots, Rest: cfg.Zones.SlotRest.Duration}
}

// SlotPolicy returns the MTA-STS policy of test slot n: zone A's, with the
// mx lines naming the slot's hosts (mx4.s001.A …), so a sender that
// applies it must connect to the slot's names; slot 0 is zone A's own.
func SlotPolicy(cfg *config.Config, n int) mtasts.Policy {
	p := mtasts.Policy{Mode: mtasts.ModeEnforce, MaxAge: cfg.Zones.MTASTSMaxAge.Duration}
	for _, per := range persona.MXHosts(persona.ZoneA) {
		if per.InMTASTS {
			p.MX = append(p.MX, Slots(cfg).Host(per.Host, n, persona.ZoneA))
		}
	}
	// The broken MX host too: a sender that applies the policy skips the
	// MX hosts it does not list (RFC 8461 §4.1) without looking them up,
	// and would then show nothing about its resolver (docs/dns.md "Broken
	// host").
	hosts, _ := BrokenMX(cfg)
	if IPv6MX(cfg).IsValid() {
		// And the IPv6-only host, for the same reason: an MTA-STS
		// sender must not skip it unseen (docs/dns.md "IPv6-only host").
		hosts = append(hosts, testslot.IPv6HostLabel)
	}
	for _, b := range hosts {
		p.MX = append(p.MX, Slots(cfg).Host(b, n, persona.ZoneA))
	}
	return p
}

// TLSRPTURI returns the https: rua of zone A's TLS-RPT records
// (zones.tlsrpt_https, docs/tlsrpt.md): the policy host's report path,
// on port 443 as RFC 8461 §3.3 has senders reach the host; "" when not
// asked for or when the policy host does not listen.
func TLSRPTURI(cfg *config.Config) string {
	if !cfg.Zones.TLSRPTHTTPS || len(cfg.PolicyHost.Listen) == 0 {
		return ""
	}
	return "https://mta-sts." + dnsname.Canonical(cfg.Zones.A) + policyhost.ReportPath
}

// reports is the intake of the TLS-RPT reports POSTed to the policy host,
// nil when they are not asked for (TLSRPTURI).
func reports(cfg *config.Config, st *store.Store, log *slog.Logger) policyhost.Reports {
	if TLSRPTURI(cfg) == "" {
		return nil
	}
	return tlsrptintake.New(tlsrptintake.Options{Evidence: evidence.Gatherer{Store: st, Rules: EvidenceRules(cfg)},
		Quota:  store.TLSRPTQuota{MaxReports: cfg.SMTP.TLSRPTMaxReports, MaxBytes: cfg.SMTP.TLSRPTMaxStoredBytes},
		Logger: log.With("part", "tlsrpt")})
}

// SPF returns the SPF record of both zones: the configured one, or one that
// authorises the MX addresses (the service sends result mails from them).
func SPF(cfg *config.Config) string {
	if cfg.Zones.SPF != "" {
		return cfg.Zones.SPF
	}
	var b strings.Builder
	b.WriteString("v=spf1")
	list := addrs(cfg.Zones.MXAddresses)
	// The result mails leave from result_mail.source_address (RFC 7208
	// §2.4: SPF checks the client address against MAIL FROM's domain).
	if src, err := netip.ParseAddr(cfg.ResultMail.SourceAddress); err == nil && !slices.Contains(list, src.Unmap()) {
		list = append(list, src.Unmap())
	}
	for _, a := range list {
		if a.Is4() {
			b.WriteString(" ip4:" + a.String())
		} else {
			b.WriteString(" ip6:" + a.String())
		}
	}
	b.WriteString(" -all")
	return b.String()
}

// Serve runs the service until ctx is cancelled: the DNS zones, the
// certificate manager, the SMTP personas, the MTA-STS policy host.
func Serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	r, err := Start(ctx, cfg, log)
	if err != nil {
		return err
	}
	return r.Wait()
}

// Running is a started service.
type Running struct {
	Zones       *Zones
	Store       *store.Store
	Certs       *certs.Manager
	DNSAddrs    []netip.AddrPort // bound DNS addresses (UDP and TCP)
	SMTPAddrs   []netip.AddrPort
	PolicyAddrs []netip.AddrPort
	WebAddrs    []netip.AddrPort // bound web UI addresses (none if web.listen is empty)
	WebURL      string           // web.base_url, or http:// the first bound address
	// Evidence reads tests' evidence under the service's rules, as the
	// SMTP personas, the finaliser and the reports do.
	Evidence evidence.Gatherer
	// Node is this node's name (node.name or the host name).
	Node       string
	member     *cluster.Member
	done       chan error
	closeStore func() error
}

// Leading tells whether this node holds the leader lock: it finalises
// tests, sends the result mails and purges (docs/cluster.md).
func (r *Running) Leading() bool { return r.member.Leading() }

// Wait blocks until the service has stopped (its context was cancelled or
// a part failed) and returns why; nil after a cancellation.
func (r *Running) Wait() error {
	err := <-r.done
	r.done <- err // later calls see the same
	return err
}

// Start binds every listener — so a busy port fails the start at once —
// and runs the service until ctx is cancelled. Ports may be 0; the bound
// addresses are in the returned Running.
func Start(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Running, error) {
	st, err := store.OpenDriver(ctx, cfg.Store.Driver, cfg.StorePath())
	if err != nil {
		return nil, err
	}
	fail := func(err error, closers ...func()) (*Running, error) {
		for _, c := range closers {
			c()
		}
		st.Close()
		return nil, err
	}
	keys, err := ZoneKeysOf(ctx, st)
	if err != nil {
		return fail(err)
	}
	zones, err := BuildZones(cfg, time.Now(), keys)
	if err != nil {
		return fail(err)
	}
	if err := recordZoneKeys(ctx, st, zones, time.Now()); err != nil {
		return fail(err)
	}
	dnsListeners, err := dnsserver.Listen(ctx, cfg.DNS.Listen)
	if err != nil {
		return fail(err)
	}
	closeD := func() { closeDNS(dnsListeners) }
	policyListeners, err := policyhost.Listen(ctx, cfg.PolicyHost.Listen)
	if err != nil {
		return fail(err, closeD)
	}
	closeP := func() { closeAll(policyListeners) }
	smtpListeners, err := smtpd.Listen(ctx, SMTPListen(cfg))
	if err != nil {
		return fail(err, closeD, closeP)
	}
	closeS := func() { closeAll(smtpListeners) }
	webListeners, err := web.Listen(ctx, cfg.Web.Listen)
	if err != nil {
		return fail(err, closeD, closeP, closeS)
	}
	closeW := func() { closeAll(webListeners) }
	metricsListeners, err := listen.TCP(ctx, "metrics", cfg.Metrics.Listen)
	if err != nil {
		return fail(err, closeD, closeP, closeS, closeW)
	}
	closeW = func() { closeAll(webListeners); closeAll(metricsListeners) }
	// Several nodes may serve from one store (docs/cluster.md): this one
	// joins them if it publishes the same keys.
	node := cfg.NodeName()
	member, err := cluster.New(cluster.Options{Store: st, Node: node, Keys: PublishedKeys(zones),
		Heartbeat: cfg.Node.Heartbeat.Duration, DeadAfter: cfg.Node.DeadAfter.Duration, Logger: log.With("part", "cluster")})
	if err != nil {
		return fail(err, closeD, closeP, closeS, closeW)
	}
	if err := member.Join(ctx); err != nil {
		return fail(err, closeD, closeP, closeS, closeW)
	}
	// The listeners are ours, so no other process of this node is
	// serving: a connection record of this node still open is one a crash
	// left behind. Other nodes' open records are their live sessions.
	if n, err := st.EndInterruptedConnections(ctx, node); err != nil {
		return fail(err, closeD, closeP, closeS, closeW)
	} else if n > 0 {
		log.Warn("ended the connection records a stop without shutdown left open", "connections", n)
	}
	// ACME dns-01 challenge records: on PostgreSQL (several nodes) they go
	// through the store, so that every node's zones answer them whichever
	// node ordered the certificate (docs/cluster.md "ACME across nodes");
	// with SQLite (one process) or without ACME into this node's zones,
	// and no node polls the store for them.
	var challengePublisher certs.ChallengePublisher = zones.Authority
	var challenges *cluster.Challenges
	if cfg.TLSIssuer() == certs.IssuerACME && cfg.ACME.Directory != "" && st.Driver() == store.DriverPostgres {
		challenges, err = cluster.NewChallenges(cluster.ChallengeOptions{Store: st, Node: node, Zones: zones.Authority,
			Period: cfg.Node.Heartbeat.Duration, DeadAfter: cfg.Node.DeadAfter.Duration, Logger: log.With("part", "acme-challenges")})
		if err != nil {
			return fail(err, closeD, closeP, closeS, closeW)
		}
		challengePublisher = challenges
	}
	mgr, err := certs.New(certs.Options{
		DataDir: cfg.DataDir, ZoneA: cfg.Zones.A, ZoneB: cfg.Zones.B,
		Issuer: cfg.TLSIssuer(), Static: staticFiles(cfg), RenewBefore: cfg.TLS.RenewBefore.Duration,
		ACME: certs.ACMEOptions{Directory: cfg.ACME.Directory, Email: cfg.ACME.Email,
			CAFile: cfg.ACME.CAFile, Challenge: cfg.ACME.Challenge},
		Keys: zones.Keys, Slots: cfg.Zones.Slots, Challenges: challengePublisher, Logger: log.With("part", "certs"),
	})
	if err != nil {
		return fail(err, closeD, closeP, closeS, closeW)
	}
	if cfg.TLSIssuer() == certs.IssuerACME && cfg.ACME.Directory == "" {
		log.Warn("tls.issuer is acme but acme.directory is empty: personas 5, 6, 7 and the policy host have no certificate")
	}
	res, err := resolver.New(cfg.Resolver.Address)
	if err != nil {
		log.Warn("no resolver for DKIM key look-ups: signatures will be recorded unverified", "err", err)
	}
	smtpOpts := SMTPOptions(cfg, zones, mgr, st, res, log.With("part", "smtp"))
	smtpOpts.Node = node
	senderChecks, err := SenderChecks(cfg, st, log.With("part", "inbound"))
	if err != nil {
		return fail(err, closeD, closeP, closeS, closeW)
	}
	if senderChecks != nil {
		smtpOpts.TestSender = senderChecks.Submit
	}
	smtp, err := smtpd.New(smtpOpts)
	if err != nil {
		return fail(err, closeD, closeP, closeS, closeW)
	}
	qlog := store.NewDNSQueryLog(st, log.With("part", "querylog"), cfg.DNS.QueryLogBuffer, cfg.DNS.QueryLogRetention.Duration)
	qlog.SetLimits(store.DNSQueryLogLimits{RowsPerSecond: cfg.DNS.QueryLogRowsPerSecond,
		RowsPerClientPerSecond: cfg.DNS.QueryLogRowsPerClientPerSecond,
		PrefixV4:               cfg.SMTP.ClientPrefixV4, PrefixV6: cfg.SMTP.ClientPrefixV6})
	dns := dnsserver.New(zones.Authority, dnsserver.Options{UDPSize: cfg.DNS.UDPSize, Recorder: qlog, Logger: log.With("part", "dns"),
		RRL: dnsserver.RRL{ResponsesPerSecond: cfg.DNS.RRLResponsesPerSecond, Slip: cfg.DNS.RRLSlip,
			PrefixV4: cfg.DNS.RRLPrefixV4, PrefixV6: cfg.DNS.RRLPrefixV6},
		TCP: dnsserver.TCPLimits{MaxConnections: cfg.DNS.TCPMaxConnections, MaxPerClient: cfg.DNS.TCPMaxConnectionsPerClient,
			IdleTimeout: cfg.DNS.TCPIdleTimeout.Duration, PrefixV4: cfg.DNS.RRLPrefixV4, PrefixV6: cfg.DNS.RRLPrefixV6},
		MaxAmplification: cfg.DNS.MaxUDPAmplification,
	})
	slotPolicies := map[string]string{}
	for i, p := range zones.SlotPolicies {
		slotPolicies[Slots(cfg).PolicyHost(i+1)] = p.String()
	}
	policy := policyhost.New(policyhost.Options{Host: mgr.PolicyHostName(), Policy: zones.Policy.String(), SlotPolicies: slotPolicies,
		Certificate: mgr.PolicyHost, Recorder: st, Logger: log.With("part", "policyhost"),
		MaxFetchesPerClient: cfg.PolicyHost.MaxFetchesPerClientPerHour,
		ClientPrefixV4:      cfg.SMTP.ClientPrefixV4, ClientPrefixV6: cfg.SMTP.ClientPrefixV6,
		Reports: reports(cfg, st, log), MaxReportBytes: cfg.SMTP.TLSRPTMaxBytes, ReportsPerClient: cfg.SMTP.TLSRPTPerClientPerHour})

	r := &Running{Zones: zones, Store: st, Certs: mgr, Node: node, member: member, Evidence: evidence.Gatherer{Store: st, Rules: EvidenceRules(cfg)}, done: make(chan error, 1)}
	for _, l := range dnsListeners {
		r.DNSAddrs = append(r.DNSAddrs, l.Addr().(*net.UDPAddr).AddrPort())
		log.Info("dns listening", "addr", l.Addr().String(), "udp_sockets", len(l.UDP))
	}
	for _, l := range smtpListeners {
		r.SMTPAddrs = append(r.SMTPAddrs, l.Addr().(*net.TCPAddr).AddrPort())
		log.Info("smtp listening", "addr", l.Addr().String(), "downgrade_window", cfg.Timing.DowngradeWindow.Duration)
	}
	for _, l := range policyListeners {
		r.PolicyAddrs = append(r.PolicyAddrs, l.Addr().(*net.TCPAddr).AddrPort())
		log.Info("policy host listening", "addr", l.Addr().String(), "host", mgr.PolicyHostName())
	}
	for _, l := range webListeners {
		r.WebAddrs = append(r.WebAddrs, l.Addr().(*net.TCPAddr).AddrPort())
	}
	r.WebURL = cfg.Web.BaseURL
	if r.WebURL == "" && len(r.WebAddrs) > 0 {
		r.WebURL = "http://" + r.WebAddrs[0].String()
	}
	r.WebURL = strings.TrimSuffix(r.WebURL, "/")
	finaliser, deliverer, webSrv, err := results(cfg, zones, st, res, r.WebURL, log)
	if err != nil {
		return fail(err, closeD, closeP, closeS, closeW)
	}
	if len(webListeners) > 0 {
		log.Info("web listening", "addr", webListeners[0].Addr().String(), "url", r.WebURL)
	}
	log.Info("zones ready", "a", cfg.Zones.A, "ds_a", zones.KeyA.DS().String(), "b", cfg.Zones.B, "rotation", cfg.Timing.MXRotation.Duration)

	// The query log outlives the listeners: it is stopped only after the
	// DNS server has shut down, so the last answered queries are written.
	qctx, qcancel := context.WithCancel(context.WithoutCancel(ctx))
	qlogDone := make(chan error, 1)
	go func() { qlogDone <- qlog.Run(qctx) }()

	// One part failing stops the others: a service with a dead listener
	// would give tests wrong answers.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return dns.Serve(gctx, dnsListeners) })
	g.Go(func() error { return policy.Serve(gctx, policyListeners) })
	g.Go(func() error { return smtp.Serve(gctx, smtpListeners) })
	if challenges != nil {
		g.Go(func() error { return challenges.Run(gctx) })
	}
	g.Go(func() error { return mgr.Run(gctx) })
	// The leader's jobs run on one node at a time (docs/cluster.md).
	// Finalising and delivering are separate loops: a slow recipient
	// delays only its own mail, never a verdict. The retention purge runs
	// whether or not the web server does: the tables it prunes grow with
	// what the Internet sends.
	purger := Purger(cfg, st, log.With("part", "retention"))
	g.Go(func() error {
		return member.Run(gctx, func(lctx context.Context) error {
			lg, lctx := errgroup.WithContext(lctx)
			lg.Go(func() error { return finaliser.Run(lctx) })
			lg.Go(func() error { return deliverer.Run(lctx) })
			lg.Go(func() error { return purger.Run(lctx) })
			return lg.Wait()
		})
	})
	if senderChecks != nil {
		g.Go(func() error { return senderChecks.Run(gctx) })
	}
	if len(webListeners) > 0 {
		g.Go(func() error { return webSrv.Serve(gctx, webListeners) })
	}
	if len(metricsListeners) > 0 {
		mlog := log.With("part", "metrics")
		reg := metrics.NewRegistry(metrics.Sources{SMTP: smtp, DNS: dns, Store: st, Log: mlog})
		ready := Readiness(cfg, zones, st, mgr, res)
		g.Go(func() error { return metrics.Serve(gctx, reg, ready, metricsListeners, mlog) })
		log.Info("metrics listening", "addr", metricsListeners[0].Addr().String())
	}
	go func() {
		err := g.Wait()
		qcancel()
		if qerr := <-qlogDone; qerr != nil && err == nil {
			err = fmt.Errorf("query log: %w", qerr)
		}
		log.Info("query log closed", "written", qlog.Written(), "dropped", qlog.Dropped(), "limited", qlog.Limited())
		if cerr := st.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if errors.Is(err, context.Canceled) {
			err = nil
		}
		r.done <- err
	}()
	return r, nil
}

func closeDNS(ls []dnsserver.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

func closeAll(ls []net.Listener) {
	for _, l := range ls {
		l.Close()
	}
}

// SMTPOptions maps the configuration onto the SMTP personas' options.
// res may be nil (no resolver): DKIM signatures are then not verified.
func SMTPOptions(cfg *config.Config, zones *Zones, certificates smtpd.Certificates, st *store.Store, res *resolver.Resolver, log *slog.Logger) smtpd.Options {
	// A host with an address of its own is identified by the address,
	// even without SNI (DESIGN.md §2, "SNI and addresses").
	local := map[netip.Addr]int{}
	for _, p := range persona.Table() {
		if p.Host == "" || !p.HasKey() {
			continue
		}
		for _, a := range addrs(cfg.Zones.HostAddresses[p.Host]) {
			local[a] = p.Number
		}
	}
	_, broken := BrokenMX(cfg)
	var v6 []netip.Addr
	if base := IPv6MX(cfg); base.IsValid() {
		v6 = Slots(cfg).HostAddrs(base)
	}
	o := smtpd.Options{
		ZoneA: cfg.Zones.A, ZoneB: cfg.Zones.B, Slots: cfg.Zones.Slots, Hostname: cfg.SMTP.Hostname,
		Certificates: certificates, LocalPersonas: local, BrokenHostAddrs: broken, IPv6HostAddrs: v6, Store: st,
		DowngradeWindow: cfg.Timing.DowngradeWindow.Duration, AckAfter: cfg.Timing.AckAfter.Duration,
		EpisodeQuiet: cfg.Timing.EpisodeQuiet.Duration, Evidence: EvidenceRules(cfg),
		CommandTimeout: cfg.Timing.SMTPCommandTimeout.Duration, DataTimeout: cfg.Timing.SMTPDataTimeout.Duration,
		SessionMax:      cfg.SMTP.SessionMax.Duration,
		MaxMessageBytes: cfg.SMTP.MaxMessageBytes,
		MaxRecipients:   cfg.SMTP.MaxRecipients, MaxConnectionsPerClient: cfg.SMTP.MaxConnectionsPerClient,
		MaxConnections: cfg.SMTP.MaxConnections, DataMemoryBudget: cfg.SMTP.DataMemoryBudget,
		ClientPrefixV4: cfg.SMTP.ClientPrefixV4, ClientPrefixV6: cfg.SMTP.ClientPrefixV6,
		FixedLocalParts: append([]string{}, cfg.SMTP.FixedLocalParts...), TLSRPTAddress: cfg.Zones.TLSRPTAddress,
		AcceptAll: cfg.SMTP.AcceptAll, Logger: log,
		TLSRPTMaxBytes: cfg.SMTP.TLSRPTMaxBytes, TLSRPTPerClient: cfg.SMTP.TLSRPTPerClientPerHour,
		TLSRPTQuota: store.TLSRPTQuota{MaxReports: cfg.SMTP.TLSRPTMaxReports, MaxBytes: cfg.SMTP.TLSRPTMaxStoredBytes},
		FixedTests:  store.FixedTestLimits{PerClient: cfg.SMTP.FixedTestsPerClient, Open: cfg.SMTP.FixedTestsOpenMax},
	}
	if res != nil {
		// Left nil (not a nil *Resolver) without one: mailauth then
		// says "no resolver configured".
		o.DNS = res
	}
	return o
}

// staticFiles converts [tls.static] into the certificate manager's form.
func staticFiles(cfg *config.Config) map[string]certs.StaticFiles {
	out := map[string]certs.StaticFiles{}
	for host, sc := range cfg.TLS.Static {
		out[host] = certs.StaticFiles{Cert: sc.Cert, Key: sc.Key}
	}
	return out
}

func addrs(list []string) []netip.Addr {
	out := make([]netip.Addr, 0, len(list))
	for _, s := range list {
		// config.Validate has checked every address.
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func seconds(d time.Duration) uint32 { return uint32(d / time.Second) }

// PublishedKeys is a digest of what the zones publish from the key files:
// the DS records of both zones, the result mails' DKIM record and the
// personas' TLSA data. Every node of one store must give the same
// (cluster.Member.Join): the zones' answers may come from any of them.
func PublishedKeys(z *Zones) string {
	h := sha256.New()
	for _, k := range []*dnssec.Key{z.KeyA, z.KeyB} {
		if k != nil {
			fmt.Fprintln(h, k.DS().String())
		}
	}
	if z.DKIMKey != nil {
		if rec, err := resultmail.DNSRecord(z.DKIMKey); err == nil {
			fmt.Fprintln(h, rec)
		}
	}
	for _, p := range persona.Table() {
		if d, err := z.Keys.SPKISHA256(p.Number); err == nil {
			fmt.Fprintf(h, "%d %x\n", p.Number, d)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
