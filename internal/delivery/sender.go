package delivery

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/netguard"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/sender"
)

// Outcome is the outcome of one delivery attempt.
type Outcome struct {
	Status      string // Delivered, Deferred or Bounced
	Reason      string // one line: where it went, or why not
	Summary     string // every host tried, for the attempt's record
	DeliveredTo string // "mx.example.org [192.0.2.1] (policy dane, TLS 1.3)" when delivered
}

// Outcome statuses, as recorded for each attempt (result_mail_attempts).
const (
	Delivered = "delivered"
	Deferred  = "deferred"
	Bounced   = "bounced"
)

// SendFunc makes one delivery attempt of msg from the envelope sender from
// to the recipient to. It must return when ctx ends.
type SendFunc func(ctx context.Context, from, to string, msg []byte) Outcome

// NewSender returns a SendFunc over internal/sender, the policy-aware SMTP
// client, at level dane with MTA-STS: DANE where the recipient's MX has
// usable DNSSEC-signed TLSA records (RFC 7672), the recipient's MTA-STS
// policy where it publishes one (RFC 8461), opportunistic TLS otherwise.
// opts.Level and opts.MTASTS are set here.
func NewSender(opts sender.Options) (SendFunc, error) {
	opts.Level, opts.MTASTS = sender.LevelDANE, true
	snd, err := sender.New(opts)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, from, to string, msg []byte) Outcome {
		res := snd.Attempt(ctx, sender.Message{From: from, To: []string{to}, Data: msg})
		o := Outcome{Reason: res.Reason, Summary: res.Summary()}
		switch res.Status {
		case sender.Delivered:
			o.Status = Delivered
			for _, h := range res.Hosts {
				if h.Outcome == sender.OutcomeDelivered {
					tls := "plain text"
					if h.TLS {
						tls = h.TLSVersion
					}
					o.DeliveredTo = fmt.Sprintf("%s [%s] (policy %s, %s)", h.MX, h.Addr.Addr(), h.Policy, tls)
				}
			}
		case sender.Bounced:
			o.Status = Bounced
		default:
			o.Status = Deferred
		}
		return o
	}, nil
}

// SenderFromConfig makes the SendFunc of the configuration ([result_mail],
// [resolver], smtp.hostname, network.allow_destinations); nil without
// error when result mails are off.
func SenderFromConfig(cfg *config.Config, log *slog.Logger) (SendFunc, error) {
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
	allow, err := cfg.AllowedDestinations()
	if err != nil {
		return nil, fmt.Errorf("network.allow_destinations: %w", err)
	}
	// A tester's MX and mta-sts host may point anywhere: the guard keeps
	// result mails off the operator's own network (issue 16).
	return NewSender(sender.Options{Hostname: hostname, Resolver: res, Roots: roots, LocalAddr: src, SMTPPort: rm.Port,
		Guard: &netguard.Guard{Allow: allow}, Logger: log.With("part", "resultmail-sender")})
}
