package service

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/inbound"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/web"
)

// EvidenceRules are the rules of a test's evidence (internal/evidence)
// under the configuration: the SMTP personas' acknowledgement, the
// finaliser, the reports and `mailsec verdict` all use these.
func EvidenceRules(cfg *config.Config) evidence.Rules {
	return evidence.Rules{
		PrefixV4: cfg.SMTP.ClientPrefixV4, PrefixV6: cfg.SMTP.ClientPrefixV6,
		Quiet: cfg.Timing.AckAfter.Duration, TestExpiry: cfg.Timing.TestExpiry.Duration,
	}
}

// ResultSource is how reports are read from the store, with the service's
// timings (the web UI, the API, the result mails and the CLI share it).
func ResultSource(cfg *config.Config, st *store.Store, baseURL string) resultmail.Source {
	return resultmail.Source{
		Store: st, ZoneA: strings.TrimSuffix(cfg.Zones.A, "."), ZoneB: strings.TrimSuffix(cfg.Zones.B, "."),
		DowngradeWindow: cfg.Timing.DowngradeWindow.Duration, Quiet: cfg.Timing.AckAfter.Duration,
		PrefixV4: cfg.SMTP.ClientPrefixV4, PrefixV6: cfg.SMTP.ClientPrefixV6, BaseURL: baseURL,
		Inbound: storedInbound(cfg, st),
	}
}

// storedInbound reads the inbound check that internal/inbound's runner
// stored with a test (inbound.check_senders): pending until it is there.
func storedInbound(cfg *config.Config, st *store.Store) resultmail.InboundFunc {
	return func(ctx context.Context, testID, domain string) ([]byte, error) {
		c, err := st.InboundCheckOfTest(ctx, testID)
		switch {
		case errors.Is(err, store.ErrNotFound) && testID == "":
			return nil, resultmail.ErrNoInbound
		case errors.Is(err, store.ErrNotFound):
			// A provider's row, or a test from before the runner: the
			// latest check of the domain, if any.
			if lc, lerr := st.LatestInboundCheck(ctx, domain, time.Time{}); lerr == nil {
				return lc.Report, nil
			}
			if cfg.Inbound.CheckSenders {
				return nil, nil // pending
			}
			return nil, resultmail.ErrNoInbound
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

// results builds the loop that finalises tests and sends result mails, and
// the web server.
func results(cfg *config.Config, zones *Zones, st *store.Store, res *resolver.Resolver, send resultmail.SendFunc, baseURL string, log *slog.Logger) (*resultmail.Mailer, *web.Server, error) {
	src := ResultSource(cfg, st, baseURL)
	rm := cfg.ResultMail
	o := resultmail.Options{
		Source: src, Expiry: cfg.Timing.TestExpiry.Duration,
		RateLimit: rm.RateLimit, RateWindow: rm.RateWindow.Duration,
		RetryBase: rm.RetryBase.Duration, RetryMax: rm.RetryMax.Duration, MaxAttempts: rm.MaxAttempts,
		Interval: rm.Interval.Duration, Logger: log.With("part", "results"),
	}
	switch {
	case !rm.Enabled || zones.DKIMKey == nil:
		log.Info("result mails are off (result_mail.enabled)")
	case send == nil:
		log.Warn("result mails are off: no sender given to service.Start (resultsend.FromConfig)")
	case res == nil:
		log.Warn("result mails are off: no resolver for SPF")
	default:
		o.Send, o.DNS = send, res
		o.Identity = resultmail.Identity{From: cfg.ResultMailFrom(), Name: rm.Name,
			Domain: strings.TrimSuffix(cfg.Zones.A, "."), Selector: rm.Selector, Key: zones.DKIMKey}
	}
	mailer, err := resultmail.New(o)
	if err != nil {
		return nil, nil, err
	}
	check, err := inboundCheck(cfg)
	if err != nil {
		return nil, nil, err
	}
	w := web.New(web.Options{Source: src, ZoneA: src.ZoneA, ZoneB: src.ZoneB, Providers: cfg.Web.Providers,
		Retention: cfg.Web.Retention.Duration, StartLimit: cfg.Web.StartLimit, CheckLimit: cfg.Web.CheckLimit,
		Check: check, Logger: log.With("part", "web")})
	return mailer, w, nil
}

// StartOption adds to what Start builds from the configuration.
type StartOption func(*startOptions)

type startOptions struct {
	send resultmail.SendFunc
}

// WithResultSender gives the service the way out for result mails
// (resultsend.FromConfig); without it result mails are off.
func WithResultSender(send resultmail.SendFunc) StartOption {
	return func(o *startOptions) { o.send = send }
}
