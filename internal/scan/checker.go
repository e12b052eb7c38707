package scan

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/mailsec/mailsec/internal/resolver"
	"net"
	"net/netip"

	"github.com/mailsec/mailsec/internal/inbound"
)

// InboundChecker returns a Checker that runs inbound.Check with opts,
// every connection (SMTP and the MTA-STS policy fetch) through dests, so
// the cap per destination address holds across all domains of the scan,
// and every SMTP probe of an MX host at an address through hosts, so a
// host shared by many domains is probed once per TTL. dests and hosts may
// be nil.
func InboundChecker(opts inbound.Options, dests *Destinations, hosts *HostCache[inbound.Address]) Checker {
	if dests != nil {
		d := &net.Dialer{Timeout: opts.StepTimeout}
		smtp, https := DialFunc(opts.Dial), DialFunc(opts.DialHTTPS)
		if smtp == nil {
			smtp = d.DialContext
		}
		if https == nil {
			https = d.DialContext
		}
		opts.Dial = inbound.DialFunc(dests.Dial(smtp))
		opts.DialHTTPS = inbound.DialFunc(dests.Dial(https))
	}
	setProbeCache(&opts, hosts)
	if opts.SharedResolver == nil {
		// One resolver for the whole scan: its UDP sockets to the
		// resolver are pooled and reused across domains. If it cannot be
		// made, each check reports the resolver error itself.
		if res, err := resolver.New(opts.Resolver); err == nil {
			opts.SharedResolver = res
		}
	}
	return func(ctx context.Context, domain string) (json.RawMessage, error) {
		r, err := inbound.Check(ctx, domain, opts)
		if r == nil {
			return nil, err
		}
		b, merr := json.Marshal(r)
		if merr != nil {
			return nil, errors.Join(err, merr)
		}
		return b, err
	}
}

// setProbeCache shares the probe of an MX host at an address among the
// domains of the scan through hosts. The key names the host (the SNI sent
// and the name the certificate is checked against), the CNAME target also
// accepted, and the address.
func setProbeCache(o *inbound.Options, hosts *HostCache[inbound.Address]) {
	if hosts == nil || hosts.ttl <= 0 {
		return
	}
	o.ProbeCache = func(ctx context.Context, host, altName string, ip netip.Addr, probe func(context.Context) inbound.Address) inbound.Address {
		return hosts.Do(ctx, host+"|"+altName+"|"+ip.String(), probe)
	}
}

// TransientCheckError reports the failures of inbound.Check worth a retry
// later in the scan: the resolver did not answer (an overloaded resolver
// drops queries; the domain is not to blame).
func TransientCheckError(err error) bool { return errors.Is(err, inbound.ErrResolver) }
