package service

import (
	"strings"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/inbound"
)

// InboundOptions maps the configuration onto the inbound check's options
// ([inbound], resolver.address, the EHLO name of smtp.hostname or zone A).
func InboundOptions(cfg *config.Config) (inbound.Options, error) {
	o := inbound.Options{
		Resolver:     cfg.Resolver.Address,
		AllowPrivate: cfg.Inbound.AllowPrivate,
		Timeout:      cfg.Inbound.Timeout.Duration,
		Concurrency:  cfg.Inbound.Concurrency,
		HELO:         cfg.SMTP.Hostname,
	}
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
