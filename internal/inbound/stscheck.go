package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// checkMTASTS looks up the _mta-sts record (RFC 8461 §3.1) and, when there
// is one, fetches the policy as a sender would (§3.3: HTTPS with a
// PKIX-valid certificate for mta-sts.<domain>, no redirects, text/plain,
// at most 64 KiB) through internal/mtasts. The policy host's addresses
// are resolved through the check's resolver and refused like MX
// addresses when private.
func (c *checker) checkMTASTS(ctx context.Context) checkreport.MTASTSInfo {
	info := checkreport.MTASTSInfo{UnmatchedMX: []string{}, Policy: checkreport.MTASTSPolicy{MX: []string{}}}
	rec, err := mtasts.LookupRecord(ctx, c.dns.lookupTXT, c.domain)
	switch {
	case err == nil:
		info.Record = checkreport.MTASTSRecord{Present: true, Valid: true, ID: rec.ID}
	case errors.Is(err, mtasts.ErrNoRecord):
		return info
	case errors.Is(err, mtasts.ErrRecordLookup):
		info.Record.Error = "look-up failed: " + untrusted.Printable(err.Error(), 300)
		c.errorf("MTA-STS record: %v", err)
		return info
	default: // several records, or a malformed one
		info.Record = checkreport.MTASTSRecord{Present: true, Error: untrusted.Printable(err.Error(), 300)}
	}

	info.Policy.URL, _ = mtasts.PolicyURL(c.domain)
	d := &policyDialer{c: c, host: "mta-sts." + c.domain}
	client := &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         d.dial,
		TLSClientConfig:     &tls.Config{RootCAs: c.roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: c.opts.StepTimeout,
		DisableKeepAlives:   true,
		ForceAttemptHTTP2:   true,
	}}
	fctx, cancel := context.WithTimeout(ctx, 2*c.opts.StepTimeout)
	defer cancel()
	p, err := mtasts.Fetch(fctx, client, c.domain)
	info.Policy.RefusedAddresses = d.refusedAddrs()
	switch {
	case err == nil:
		info.Policy.Fetched, info.Policy.Valid = true, true
	case errors.Is(err, mtasts.ErrPolicySyntax), errors.Is(err, mtasts.ErrPolicyTooLarge) && !errors.Is(err, mtasts.ErrPolicyFetch):
		info.Policy.Fetched = true
		info.Policy.Error = untrusted.Printable(err.Error(), 300)
		return info
	case errors.Is(err, mtasts.ErrNoPolicy):
		info.Policy.Error = "no policy at " + info.Policy.URL + " (HTTP 404)"
		return info
	default:
		info.Policy.Error = untrusted.Printable(err.Error(), 300)
		return info
	}
	info.Policy.Mode = string(p.Mode)
	info.Policy.MX = append(info.Policy.MX, p.MX...)
	info.Policy.MaxAge = int64(p.MaxAge / time.Second)
	return info
}

// matchMTASTS compares the policy's mx patterns with the real MX hosts
// (RFC 8461 §4.1): a sender in enforce mode delivers only to matching
// hosts.
func matchMTASTS(r *checkreport.Report) {
	m := &r.MTASTS
	m.UnmatchedMX = []string{}
	if !m.Policy.Valid || m.Policy.Mode == string(mtasts.ModeNone) {
		m.MXMatch = false
		return
	}
	p := mtasts.Policy{MX: m.Policy.MX}
	for _, h := range r.MX.Hosts {
		if !p.Matches(h.Name) {
			m.UnmatchedMX = append(m.UnmatchedMX, h.Name)
		}
	}
	m.MXMatch = len(r.MX.Hosts) > 0 && len(m.UnmatchedMX) == 0
}

// policyDialer connects the HTTPS client to the policy host through the
// check's resolver, refusing private addresses unless allowed.
type policyDialer struct {
	c    *checker
	host string

	mu      sync.Mutex
	refused []string
}

func (d *policyDialer) refusedAddrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string{}, d.refused...)
}

func (d *policyDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(strings.TrimSuffix(host, "."), d.host) {
		return nil, fmt.Errorf("inbound: unexpected policy host %q", host)
	}
	al := d.c.dns.addresses(ctx, d.host)
	if len(al.addrs) == 0 {
		switch {
		case al.err != nil:
			return nil, fmt.Errorf("addresses of %s: %w", d.host, al.err)
		case al.nx:
			return nil, fmt.Errorf("%s does not exist (NXDOMAIN)", d.host)
		}
		return nil, fmt.Errorf("%s has no A or AAAA records", d.host)
	}
	var errs []error
	for _, ip := range al.addrs {
		if !d.c.opts.permitted(ip) {
			d.mu.Lock()
			d.refused = append(d.refused, ip.String())
			d.mu.Unlock()
			errs = append(errs, fmt.Errorf("%w: %s", ErrRefused, ip))
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, d.c.opts.StepTimeout)
		conn, err := d.c.opts.DialHTTPS(dctx, network, net.JoinHostPort(ip.String(), port))
		cancel()
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}
