package service

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/sender"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/web"
)

// ResultSource is how reports are read from the store, with the service's
// timings (the web UI, the API, the result mails and the CLI share it).
func ResultSource(cfg *config.Config, st *store.Store, baseURL string) resultmail.Source {
	return resultmail.Source{
		Store: st, ZoneA: strings.TrimSuffix(cfg.Zones.A, "."), ZoneB: strings.TrimSuffix(cfg.Zones.B, "."),
		DowngradeWindow: cfg.Timing.DowngradeWindow.Duration, Quiet: cfg.Timing.AckAfter.Duration,
		PrefixV4: cfg.SMTP.ClientPrefixV4, PrefixV6: cfg.SMTP.ClientPrefixV6, BaseURL: baseURL,
		// The inbound check (internal/inbound) plugs in here once it
		// stores a report per test; until then reports say "not available".
		Inbound: nil,
	}
}

// results builds the loop that finalises tests and sends result mails, and
// the web server.
func results(cfg *config.Config, zones *Zones, st *store.Store, res *resolver.Resolver, baseURL string, log *slog.Logger) (*resultmail.Mailer, *web.Server, error) {
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
	case res == nil:
		log.Warn("result mails are off: no resolver for SPF and the recipients' MX")
	default:
		var roots *x509.CertPool
		if rm.Roots != "" {
			pem, err := os.ReadFile(rm.Roots)
			if err != nil {
				return nil, nil, fmt.Errorf("result_mail.roots: %w", err)
			}
			if roots, err = x509.SystemCertPool(); err != nil || roots == nil {
				roots = x509.NewCertPool()
			}
			if !roots.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("result_mail.roots: no certificate in %s", rm.Roots)
			}
		}
		hostname := cfg.SMTP.Hostname
		if hostname == "" {
			hostname = strings.TrimSuffix(cfg.Zones.A, ".")
		}
		src, _ := netip.ParseAddr(rm.SourceAddress) // validated; zero if unset
		// DANE where the recipient publishes usable TLSA, MTA-STS where it
		// publishes a policy, else opportunistic TLS (RFC 7672 §2.2, RFC
		// 8461 §5): the policy-aware client enforces what is offered.
		snd, err := sender.New(sender.Options{Hostname: hostname, Level: sender.LevelDANE, MTASTS: true,
			Resolver: res, Roots: roots, LocalAddr: src, SMTPPort: rm.Port, Logger: log.With("part", "resultmail-sender")})
		if err != nil {
			return nil, nil, err
		}
		o.Send, o.DNS = snd.Attempt, res
		o.Identity = resultmail.Identity{From: cfg.ResultMailFrom(), Name: rm.Name,
			Domain: strings.TrimSuffix(cfg.Zones.A, "."), Selector: rm.Selector, Key: zones.DKIMKey}
	}
	mailer, err := resultmail.New(o)
	if err != nil {
		return nil, nil, err
	}
	w := web.New(web.Options{Source: src, ZoneA: src.ZoneA, ZoneB: src.ZoneB, Providers: cfg.Web.Providers,
		Retention: cfg.Web.Retention.Duration, StartLimit: cfg.Web.StartLimit, CheckLimit: cfg.Web.CheckLimit,
		Logger: log.With("part", "web")})
	return mailer, w, nil
}
