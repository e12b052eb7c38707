package service

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/delivery"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/finalise"
	"github.com/mailsec/mailsec/internal/inbound"
	"github.com/mailsec/mailsec/internal/reportsource"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/retention"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/testslot"
	"github.com/mailsec/mailsec/internal/web"
)

// EvidenceRules are the rules of a test's evidence (internal/evidence)
// under the configuration: the SMTP personas' acknowledgement, the
// finaliser, the reports and `mailsec verdict` all use these.
func EvidenceRules(cfg *config.Config) evidence.Rules {
	hosts, addrs := BrokenMX(cfg)
	return evidence.Rules{
		PrefixV4: cfg.SMTP.ClientPrefixV4, PrefixV6: cfg.SMTP.ClientPrefixV6,
		Quiet: cfg.Timing.AckAfter.Duration, TestExpiry: cfg.Timing.TestExpiry.Duration,
		Slots:       Slots(cfg),
		BrokenHosts: hosts, BrokenAddrs: addrs,
		IPv6Host: IPv6MX(cfg),
	}
}

// IPv6MX returns the address of zone A's IPv6-only MX host
// (zones.host_addresses.mx-v6, docs/dns.md "IPv6-only host"), that of
// slot 0; slot n's is testslot.HostAddr of it. Invalid: not deployed.
func IPv6MX(cfg *config.Config) netip.Addr {
	if list := addrs(cfg.Zones.HostAddresses[testslot.IPv6HostLabel]); len(list) > 0 {
		return list[0]
	}
	return netip.Addr{}
}

// SMTPListen returns the SMTP listener's addresses: smtp.listen, and the
// IPv6-only host's address of every slot on the port of smtp.listen's
// first entry (a slot's address names its test, so each must be
// listened on; docs/smtp.md "IPv6-only host"), those not listed already
// and none under a wildcard entry on that port (it listens on them all,
// and a second socket there would not bind).
func SMTPListen(cfg *config.Config) []string {
	out := slices.Clone(cfg.SMTP.Listen)
	base := IPv6MX(cfg)
	if !base.IsValid() || len(out) == 0 {
		return out
	}
	_, port, err := net.SplitHostPort(out[0])
	if err != nil {
		return out // config.Validate has checked it
	}
	for _, l := range out {
		if host, p, err := net.SplitHostPort(l); err == nil && p == port && (host == "" || host == "::" || host == "0.0.0.0") {
			return out
		}
	}
	for _, a := range Slots(cfg).HostAddrs(base) {
		if l := net.JoinHostPort(a.String(), port); !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}

// BrokenMX returns the broken hosts of zone A that are MX hosts (those of
// dnssec.broken_hosts with addresses of their own in
// zones.host_addresses, docs/dns.md "Broken host") and their addresses.
func BrokenMX(cfg *config.Config) (hosts []string, list []netip.Addr) {
	for _, b := range cfg.DNSSEC.BrokenHosts {
		if own := addrs(cfg.Zones.HostAddresses[b]); len(own) > 0 {
			hosts, list = append(hosts, b), append(list, own...)
		}
	}
	return hosts, list
}

// Purger is the service's retention purge (internal/retention): tests after
// web.retention, policy fetches once no stored test can count them
// (web.retention plus the evidence's fetch window), TLS-RPT mails after
// smtp.tlsrpt_retention.
func Purger(cfg *config.Config, st *store.Store, log *slog.Logger) *retention.Purger {
	return retention.New(retention.Options{
		Store: st, Tests: cfg.Web.Retention.Duration,
		FetchWindow: EvidenceRules(cfg).WithDefaults().FetchWindow,
		TLSRPT:      cfg.SMTP.TLSRPTRetention.Duration, DNSQueries: cfg.DNS.QueryLogRetention.Duration, Logger: log,
	})
}

// ResultSource is how reports are read from the store, with the service's
// timings and evidence rules (the web UI, the API and the result mails
// share it).
func ResultSource(cfg *config.Config, st *store.Store, baseURL string) reportsource.Source {
	return reportsource.Source{
		Store: st, Evidence: evidence.Gatherer{Store: st, Rules: EvidenceRules(cfg)},
		ZoneA: strings.TrimSuffix(cfg.Zones.A, "."), ZoneB: strings.TrimSuffix(cfg.Zones.B, "."),
		DowngradeWindow: cfg.Timing.DowngradeWindow.Duration, BaseURL: baseURL,
		Inbound: storedInbound(cfg, st),
	}
}

// storedInbound reads the inbound check that internal/inbound's runner
// stored with a test (inbound.check_senders): pending until it is there.
func storedInbound(cfg *config.Config, st *store.Store) reportsource.InboundFunc {
	return func(ctx context.Context, testID, domain string) ([]byte, error) {
		c, err := st.InboundCheckOfTest(ctx, testID)
		switch {
		case errors.Is(err, store.ErrNotFound) && testID == "":
			return nil, reportsource.ErrNoInbound
		case errors.Is(err, store.ErrNotFound):
			// A provider's row, or a test from before the runner: the
			// latest check of the domain, if any.
			if lc, lerr := st.LatestInboundCheck(ctx, domain, time.Time{}); lerr == nil {
				return lc.Report, nil
			}
			if cfg.Inbound.CheckSenders {
				return nil, nil // pending
			}
			return nil, reportsource.ErrNoInbound
		case err != nil:
			return nil, err
		}
		return c.Report, nil
	}
}

// inboundCheck runs the inbound check for the web form and the API.
func inboundCheck(cfg *config.Config) (web.CheckFunc, error) {
	opts, err := InboundOptions(cfg)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, domain string) ([]byte, error) {
		rep, err := inbound.Check(ctx, domain, opts)
		if rep == nil {
			return nil, err
		}
		// A report that ran into a fatal error still says what it saw
		// (its errors list it); the page shows it.
		return json.Marshal(rep)
	}, nil
}

// results builds the two loops of the results — finalising tests, and
// delivering their result mails — and the web server.
func results(cfg *config.Config, zones *Zones, st *store.Store, res *resolver.Resolver, baseURL string, log *slog.Logger) (*finalise.Finaliser, *delivery.Deliverer, *web.Server, error) {
	src := ResultSource(cfg, st, baseURL)
	rm := cfg.ResultMail
	fo := finalise.Options{Store: st, Evidence: src.Evidence, Providers: cfg.Web.Providers, Interval: rm.Interval.Duration, Logger: log.With("part", "finalise")}
	do := delivery.Options{
		Node:  cfg.NodeName(),
		Store: st, Source: src,
		RateLimit: rm.RateLimit, RateWindow: rm.RateWindow.Duration,
		RetryBase: rm.RetryBase.Duration, RetryMax: rm.RetryMax.Duration, MaxAttempts: rm.MaxAttempts,
		AttemptTimeout: rm.AttemptTimeout.Duration, Interval: rm.Interval.Duration, Logger: log.With("part", "delivery"),
	}
	send, err := delivery.SenderFromConfig(cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	switch {
	case !rm.Enabled || zones.DKIMKey == nil:
		log.Info("result mails are off (result_mail.enabled)")
	case res == nil:
		log.Warn("result mails are off: no resolver to authenticate the test mails (SPF, DKIM)")
	default:
		fo.MailEnabled = true
		do.Send = send
		do.Identity = resultmail.Identity{From: cfg.ResultMailFrom(), Name: rm.Name,
			Domain: strings.TrimSuffix(cfg.Zones.A, "."), Selector: rm.Selector, Key: zones.DKIMKey}
	}
	fin, err := finalise.New(fo)
	if err != nil {
		return nil, nil, nil, err
	}
	deliv, err := delivery.New(do)
	if err != nil {
		return nil, nil, nil, err
	}
	check, err := inboundCheck(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	proxies, err := cfg.WebTrustedProxies() // validated
	if err != nil {
		return nil, nil, nil, err
	}
	notes, err := cfg.ProviderNotes()
	if err != nil {
		return nil, nil, nil, err
	}
	wo := web.Options{Source: src, ZoneA: src.ZoneA, ZoneB: src.ZoneB, Slots: SlotRules(cfg), Providers: cfg.Web.Providers, ProviderNotes: notes,
		Retention: cfg.Web.Retention.Duration, StartLimit: cfg.Web.StartLimit, CheckLimit: cfg.Web.CheckLimit,
		Check: check, Hostnames: cfg.WebHostnames(), MaxStreams: cfg.Web.MaxEventStreams, MaxStreamsPerClient: cfg.Web.MaxEventStreamsPerClient,
		EventMax: cfg.Web.EventStreamMax.Duration, CheckConcurrency: cfg.Web.CheckConcurrency, CheckCache: cfg.Web.CheckCache.Duration,
		TrustedProxies: proxies,
		Logger:         log.With("part", "web")}
	if res != nil {
		wo.Resolver = res // a sending server's host name (not a nil *Resolver in the interface)
	}
	w := web.New(wo)
	return fin, deliv, w, nil
}
