package cli

import (
	"flag"
	"fmt"
	"net/netip"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/inbound"
	"github.com/mailsec/mailsec/internal/service"
)

// inboundFlags are the flags `check` and `scan` share: they override the
// [inbound] and [resolver] configuration of one run.
type inboundFlags struct {
	resolver     *string
	allowPrivate *bool
	roots        *string
	timeout      *time.Duration
}

// addInboundFlags registers the shared flags on fs; timeoutUsage says what
// the deadline covers for the command.
func addInboundFlags(fs *flag.FlagSet, timeoutUsage string) inboundFlags {
	return inboundFlags{
		resolver:     fs.String("resolver", "", "validating resolver `IP:PORT` or IP (default: resolver.address, then /etc/resolv.conf); DNSSEC states need one on loopback"),
		allowPrivate: fs.Bool("allow-private", false, "contact private, loopback and reserved addresses (labs; default: inbound.allow_private)"),
		roots:        fs.String("roots", "", "PEM `FILE` of extra CA roots for MX certificates and MTA-STS hosts (default: inbound.extra_roots)"),
		timeout:      fs.Duration("timeout", 0, timeoutUsage),
	}
}

// options is the configuration's inbound.Options with the flags applied;
// bad flag values are usage errors.
func (f inboundFlags) options(cfg *config.Config) (inbound.Options, error) {
	opts, err := service.InboundOptions(cfg)
	if err != nil {
		return opts, err
	}
	if r := *f.resolver; r != "" {
		opts.Resolver = r
		if a, err := netip.ParseAddr(r); err == nil {
			opts.Resolver = netip.AddrPortFrom(a, 53).String() // a bare address: port 53
		} else if _, err := netip.ParseAddrPort(r); err != nil {
			return opts, fmt.Errorf("%w: --resolver %q is not IP:PORT", errUsage, r)
		}
	}
	if *f.allowPrivate {
		opts.AllowPrivate = true
	}
	if *f.roots != "" {
		if opts.ExtraRoots, err = inbound.LoadRoots(*f.roots); err != nil {
			return opts, fmt.Errorf("%w: --roots: %v", errUsage, err)
		}
	}
	if t := *f.timeout; t != 0 {
		if t < 0 || t > time.Hour {
			return opts, fmt.Errorf("%w: --timeout %s is outside 0..1h", errUsage, t)
		}
		opts.Timeout = t
	}
	return opts, nil
}
