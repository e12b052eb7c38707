// Package resultsend delivers result mails through internal/sender, the
// policy-aware SMTP client, at level dane with MTA-STS: DANE where the
// recipient's MX has usable DNSSEC-signed TLSA records (RFC 7672), the
// recipient's MTA-STS policy where it publishes one (RFC 8461), and
// opportunistic TLS otherwise.
//
// It is the adapter from internal/sender to resultmail.SendFunc, kept out
// of internal/service's imports: internal/sender's own tests build on the
// service, and Go refuses the import cycle in tests. cmd/mailsec's serve
// and demo hand it to service.Start.
package resultsend

import (
	"context"
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
)

// New returns a SendFunc over a sender made from opts; opts.Level and
// opts.MTASTS are set here (dane, MTA-STS on).
func New(opts sender.Options) (resultmail.SendFunc, error) {
	opts.Level, opts.MTASTS = sender.LevelDANE, true
	snd, err := sender.New(opts)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, from, to string, msg []byte) resultmail.Delivery {
		res := snd.Attempt(ctx, sender.Message{From: from, To: []string{to}, Data: msg})
		d := resultmail.Delivery{Reason: res.Reason, Summary: res.Summary()}
		switch res.Status {
		case sender.Delivered:
			d.Status = resultmail.DeliveryDelivered
			for _, h := range res.Hosts {
				if h.Outcome == sender.OutcomeDelivered {
					tls := "plain text"
					if h.TLS {
						tls = h.TLSVersion
					}
					d.DeliveredTo = fmt.Sprintf("%s [%s] (policy %s, %s)", h.MX, h.Addr.Addr(), h.Policy, tls)
				}
			}
		case sender.Bounced:
			d.Status = resultmail.DeliveryBounced
		default:
			d.Status = resultmail.DeliveryDeferred
		}
		return d
	}, nil
}

// FromConfig makes the SendFunc of the configuration ([result_mail],
// [resolver], smtp.hostname); nil without error when result mails are off.
func FromConfig(cfg *config.Config, log *slog.Logger) (resultmail.SendFunc, error) {
	rm := cfg.ResultMail
	if !rm.Enabled {
		return nil, nil
	}
	res, err := resolver.New(cfg.Resolver.Address)
	if err != nil {
		return nil, fmt.Errorf("result mails need a resolver: %w", err)
	}
	var roots *x509.CertPool
	if rm.Roots != "" {
		pem, err := os.ReadFile(rm.Roots)
		if err != nil {
			return nil, fmt.Errorf("result_mail.roots: %w", err)
		}
		if roots, err = x509.SystemCertPool(); err != nil || roots == nil {
			roots = x509.NewCertPool()
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("result_mail.roots: no certificate in %s", rm.Roots)
		}
	}
	hostname := cfg.SMTP.Hostname
	if hostname == "" {
		hostname = strings.TrimSuffix(cfg.Zones.A, ".")
	}
	src, _ := netip.ParseAddr(rm.SourceAddress) // validated; zero when unset
	return New(sender.Options{Hostname: hostname, Resolver: res, Roots: roots, LocalAddr: src, SMTPPort: rm.Port,
		Logger: log.With("part", "resultmail-sender")})
}
