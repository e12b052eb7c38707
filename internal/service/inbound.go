package service

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/inbound"
	"github.com/mailsec/mailsec/internal/store"
)

// InboundOptions maps the configuration onto the inbound check's options
// ([inbound], resolver.address, network.allow_destinations, the EHLO name
// of smtp.hostname or zone A).
func InboundOptions(cfg *config.Config) (inbound.Options, error) {
	o := inbound.Options{
		Resolver:     cfg.Resolver.Address,
		AllowPrivate: cfg.Inbound.AllowPrivate,
		Timeout:      cfg.Inbound.Timeout.Duration,
		Concurrency:  cfg.Inbound.Concurrency,
		HELO:         cfg.SMTP.Hostname,
		MaxHosts:     cfg.Inbound.MaxHosts,
		MaxAddresses: cfg.Inbound.MaxAddresses,
		// Each address's TLS versions and weak suites, unless switched off.
		SkipTLSVersions: !cfg.Inbound.TLSVersions,
	}
	allow, err := cfg.AllowedDestinations() // validated
	if err != nil {
		return o, err
	}
	o.AllowDestinations = allow
	if o.HELO == "" {
		o.HELO = strings.TrimSuffix(cfg.Zones.A, ".")
	}
	if cfg.Inbound.ExtraRoots != "" {
		roots, err := inbound.LoadRoots(cfg.Inbound.ExtraRoots)
		if err != nil {
			return o, err
		}
		o.ExtraRoots = roots
	}
	return o, nil
}

// SenderChecks returns the runner that checks the sender domain of every
// test (inbound.check_senders) and stores the report with the test; nil
// when switched off.
func SenderChecks(cfg *config.Config, st *store.Store, log *slog.Logger) (*inbound.Runner, error) {
	if !cfg.Inbound.CheckSenders {
		return nil, nil
	}
	opts, err := InboundOptions(cfg)
	if err != nil {
		return nil, err
	}
	opts.Logger = log
	return inbound.NewRunner(inbound.RunnerOptions{
		Check:    opts,
		Parallel: cfg.Inbound.ParallelChecks,
		CacheTTL: cfg.Inbound.CacheTTL.Duration,
		Logger:   log,
		Recent: func(ctx context.Context, domain string, since time.Time) (inbound.Stored, bool, error) {
			c, err := st.LatestInboundCheck(ctx, domain, since)
			if errors.Is(err, store.ErrNotFound) {
				return inbound.Stored{}, false, nil
			}
			if err != nil {
				return inbound.Stored{}, false, err
			}
			return inbound.Stored{Domain: c.Domain, Colour: colour.Colour(c.Colour), Checked: c.Checked, JSON: c.Report}, true, nil
		},
		Save: func(ctx context.Context, testID string, rep inbound.Stored) error {
			err := st.AddInboundCheck(ctx, store.InboundCheck{TestID: testID, Domain: rep.Domain, Checked: rep.Checked,
				Stored: time.Now(), Colour: string(rep.Colour), Report: rep.JSON})
			if errors.Is(err, store.ErrExists) {
				return nil // the test has its check
			}
			return err
		},
	}), nil
}
