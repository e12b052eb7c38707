package inbound

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dane"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// checker is one run of Check.
type checker struct {
	opts   Options
	domain string
	dns    *dnsClient
	roots  *x509.CertPool
	suites []uint16
	now    time.Time
	sem    chan struct{} // bounds the SMTP probes

	mu   sync.Mutex
	errs []string
	// deadlineHit: some step was cut by the check's deadline.
	deadlineHit atomic.Bool
}

func (c *checker) errorf(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.errs) < 100 {
		c.errs = append(c.errs, fmt.Sprintf(format, args...))
	}
}

// Check analyses how well domain is protected when others send mail to
// it (DESIGN.md §1.2): MX, DNSSEC, STARTTLS, certificates, DANE, MTA-STS,
// TLS-RPT, SPF and DMARC, all in parallel under one deadline
// (Options.Timeout), and grades it (checkreport.Evaluate).
//
// The error is non-nil only when there is nothing to report: the input is
// not a domain name (dnsname.ErrBadDomain) or the resolver does not answer at all
// (ErrResolver; the report is returned too, with the reason in Errors).
// Everything about the domain itself, however broken, is in the report.
func Check(ctx context.Context, domain string, opts Options) (*checkreport.Report, error) {
	opts.defaults()
	start := time.Now()
	r := &checkreport.Report{
		Schema: checkreport.Schema, Input: domain, CheckedAt: opts.Now().UTC(),
		Findings: []checkreport.Finding{}, Sentences: []string{}, Errors: []string{},
		MX: checkreport.MXInfo{Hosts: []checkreport.Host{}, DNSSEC: checkreport.Indeterminate},
	}
	d, err := dnsname.NormalizeDomain(domain)
	if err != nil {
		return nil, err
	}
	r.Domain = d
	res := opts.SharedResolver
	if res == nil {
		if res, err = resolver.New(opts.Resolver); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrResolver, err)
		}
		defer res.Close()
	}
	addr := res.Addr()
	c := &checker{
		opts: opts, domain: d, now: opts.Now(),
		dns:    &dnsClient{res: res, addr: addr, trustsAD: res.TrustsAD()},
		suites: allSuites(),
		sem:    make(chan struct{}, opts.Concurrency),
	}
	r.Resolver = checkreport.ResolverInfo{Address: addr.String(), TrustsAD: c.dns.trustsAD}
	if !c.dns.trustsAD {
		opts.Logger.Warn("inbound: the resolver is not on loopback; its AD bit is not trusted and no DNSSEC state can be given", "resolver", addr)
	}
	c.roots, err = x509.SystemCertPool()
	if err != nil || c.roots == nil {
		c.roots = x509.NewCertPool()
	}
	for _, cert := range opts.ExtraRoots {
		c.roots.AddCert(cert)
	}

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	var (
		wg           sync.WaitGroup
		mx           checkreport.MXInfo
		resolverDown bool
		sts          checkreport.MTASTSInfo
		tlsrpt       checkreport.TLSRPTInfo
		spfInfo      checkreport.SPFInfo
		dmarcInfo    checkreport.DMARCInfo
		zoneSigned   bool
		tMX, tHosts  time.Duration
		tSTS, tRec   time.Duration
	)
	wg.Go(func() { mx, resolverDown, tMX, tHosts = c.checkMX(ctx) })
	wg.Go(func() {
		t := time.Now()
		sts = c.checkMTASTS(ctx)
		tSTS = time.Since(t)
	})
	wg.Go(func() {
		t := time.Now()
		var rw sync.WaitGroup
		rw.Go(func() { tlsrpt = c.checkTLSRPT(ctx) })
		rw.Go(func() { spfInfo = c.checkSPF(ctx) })
		rw.Go(func() { dmarcInfo = c.checkDMARC(ctx) })
		rw.Wait()
		tRec = time.Since(t)
	})
	wg.Go(func() {
		// A signed zone with unvalidated answers betrays a resolver that
		// does not validate (or a missing DS).
		l := c.dns.query(ctx, d, dns.TypeDNSKEY)
		if len(l.rrs) == 0 && l.zone != "" && l.zone != d && dns.IsSubDomain(l.zone, d) {
			// Below the apex: the SOA of the negative answer names the zone.
			l = c.dns.query(ctx, l.zone, dns.TypeDNSKEY)
		}
		zoneSigned = l.err == nil && len(l.rrs) > 0
	})
	wg.Wait()

	r.MX, r.MTASTS, r.TLSRPT, r.SPF, r.DMARC = mx, sts, tlsrpt, spfInfo, dmarcInfo
	r.Resolver.ZoneSigned = zoneSigned
	matchMTASTS(r)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || c.deadlineHit.Load() {
		r.Incomplete = true
		c.errorf("the check's deadline of %s ended before every step finished", opts.Timeout)
	}
	r.Errors = append(r.Errors, c.errs...)
	total := time.Since(start)
	r.Timings = checkreport.Timings{MX: ms(tMX), Hosts: ms(tHosts), MTASTS: ms(tSTS), Records: ms(tRec), Total: ms(total)}
	r.Seconds = total.Seconds()
	checkreport.Evaluate(r)
	if resolverDown {
		return r, fmt.Errorf("%w: %s does not answer: %s", ErrResolver, addr, r.MX.Error)
	}
	return r, nil
}

// checkMX looks up the MX RRset (RFC 5321 §5.1, RFC 7505) and checks every
// host in parallel.
func (c *checker) checkMX(ctx context.Context) (info checkreport.MXInfo, resolverDown bool, tMX, tHosts time.Duration) {
	t := time.Now()
	l := c.dns.query(ctx, c.domain, dns.TypeMX)
	tMX = time.Since(t)
	info = checkreport.MXInfo{Hosts: []checkreport.Host{}, DNSSEC: l.state}
	switch {
	case l.err != nil:
		info.Kind, info.Error = checkreport.MXKindNone, untrusted.Printable(l.err.Error(), 300)
		c.errorf("MX look-up: %v", l.err)
		return info, l.resolverDown, tMX, 0
	case l.nx:
		info.Kind, info.Error = checkreport.MXKindNone, c.domain+" does not exist (NXDOMAIN)"
		return info, false, tMX, 0
	}
	null := false
	seen := map[string]bool{}
	for _, rr := range l.rrs {
		m := rr.(*dns.MX)
		name := canon(m.Mx)
		if name == "" {
			null = true
			continue
		}
		if !seen[name] {
			seen[name] = true
			info.Hosts = append(info.Hosts, checkreport.Host{Name: name, Preference: m.Preference})
		}
	}
	switch {
	case null && len(info.Hosts) == 0:
		info.Kind = checkreport.MXKindNull
		return info, false, tMX, 0
	case null:
		// RFC 7505 §3: a null MX must be the only MX; senders use the
		// others.
		c.errorf("a null MX (\".\") beside real MX hosts breaks RFC 7505 §3; the other hosts are tested")
		info.Kind = checkreport.MXKindMX
	case len(info.Hosts) == 0:
		info.Kind = checkreport.MXKindImplicit
		info.Hosts = append(info.Hosts, checkreport.Host{Name: c.domain})
	default:
		info.Kind = checkreport.MXKindMX
	}
	slices.SortStableFunc(info.Hosts, func(a, b checkreport.Host) int {
		return cmp.Or(cmp.Compare(a.Preference, b.Preference), strings.Compare(a.Name, b.Name))
	})
	if len(info.Hosts) > c.opts.MaxHosts {
		info.Omitted = len(info.Hosts) - c.opts.MaxHosts
		info.Hosts = info.Hosts[:c.opts.MaxHosts]
		c.errorf("%d MX hosts beyond the first %d were not tested", info.Omitted, c.opts.MaxHosts)
	}
	t = time.Now()
	var wg sync.WaitGroup
	for i := range info.Hosts {
		wg.Go(func() { c.checkHost(ctx, info.DNSSEC, &info.Hosts[i]) })
	}
	wg.Wait()
	tHosts = time.Since(t)
	if info.Kind == checkreport.MXKindImplicit {
		h := info.Hosts[0]
		if len(h.Addresses) == 0 && (h.AddressError == "" || strings.Contains(h.AddressError, "no A or AAAA")) {
			// RFC 5321 §5.1: no MX and no address: no mail.
			info.Kind, info.Hosts = checkreport.MXKindNone, []checkreport.Host{}
		}
	}
	return info, false, tMX, tHosts
}

// checkHost resolves one MX host, looks up its TLSA records and probes
// each address, all at once; DANE is judged when both are in.
func (c *checker) checkHost(ctx context.Context, mxState checkreport.DNSSEC, h *checkreport.Host) {
	h.Addresses = []Address{}
	h.TLSA = checkreport.TLSAInfo{Records: []string{}, DNSSEC: checkreport.Indeterminate}
	var (
		tl       lookup
		tlsaName = "_25._tcp." + h.Name
		tlDone   = make(chan struct{})
	)
	// RFC 7672 §2.2.3: TLSA at _25._tcp.<host>, whatever port is probed.
	go func() {
		tl = c.dns.query(ctx, tlsaName, dns.TypeTLSA)
		close(tlDone)
	}()
	al := c.dns.addresses(ctx, h.Name)
	h.AddressDNSSEC = al.state
	h.CNAMETarget = al.cname
	switch {
	case al.err != nil:
		h.AddressError = untrusted.Printable(al.err.Error(), 300)
		c.errorf("addresses of %s: %v", h.Name, al.err)
	case al.nx:
		h.AddressError = h.Name + " does not exist (NXDOMAIN)"
	case len(al.addrs) == 0:
		h.AddressError = "no A or AAAA records"
	}
	altName := ""
	if al.cname != "" && al.state == checkreport.Secure {
		altName = al.final
	}
	addrs := al.addrs
	if len(addrs) > c.opts.MaxAddresses {
		h.OmittedAddresses = len(addrs) - c.opts.MaxAddresses
		addrs = addrs[:c.opts.MaxAddresses]
	}
	h.Addresses = make([]Address, len(addrs))
	var wg sync.WaitGroup
	for i, ip := range addrs {
		if !c.opts.permitted(ip) {
			h.Addresses[i] = Address{IP: ip.String(), Status: StatusRefused, EHLO: []string{}, DANE: DANEInfo{Matched: []string{}},
				Detail: "private or reserved address: not contacted"}
			continue
		}
		wg.Go(func() {
			select {
			case c.sem <- struct{}{}:
			case <-ctx.Done():
				h.Addresses[i] = Address{IP: ip.String(), Status: StatusNotTestable, EHLO: []string{}, DANE: DANEInfo{Matched: []string{}},
					Detail: "the check's deadline ended before this address was tried"}
				return
			}
			defer func() { <-c.sem }()
			h.Addresses[i] = c.probeVia(ctx, h.Name, altName, ip)
		})
	}
	<-tlDone
	// RFC 7672 §2.2.2: behind a secure CNAME the TLSA records of the
	// target come first, then those of the MX host name.
	if al.cname != "" && al.state == checkreport.Secure {
		tn := "_25._tcp." + al.final
		if t2 := c.dns.query(ctx, tn, dns.TypeTLSA); t2.err != nil || len(t2.rrs) > 0 {
			tl, tlsaName = t2, tn
		}
	}
	h.TLSA.Name = tlsaName
	h.TLSA.DNSSEC = tl.state
	if tl.err != nil {
		h.TLSA.Error = untrusted.Printable(tl.err.Error(), 300)
	}
	records, malformed := dane.FromRRs(tl.rrs)
	for _, rec := range records {
		h.TLSA.Records = append(h.TLSA.Records, rec.String())
	}
	if malformed > 0 {
		c.errorf("%d malformed TLSA records at %s", malformed, tlsaName)
	}
	h.TLSA.Usable = len(dane.Usable(records))
	wg.Wait()
	base := strings.TrimPrefix(tlsaName, "_25._tcp.")
	for i := range h.Addresses {
		h.Addresses[i].DANE = c.daneVerdict(mxState, h, records, base, &h.Addresses[i])
	}
}

// probeVia probes host at ip, through Options.ProbeCache when it is set.
func (c *checker) probeVia(ctx context.Context, host, altName string, ip netip.Addr) Address {
	if c.opts.ProbeCache == nil {
		return c.probe(ctx, host, altName, ip)
	}
	return c.opts.ProbeCache(ctx, host, altName, ip, func(pctx context.Context) Address {
		return c.probe(pctx, host, altName, ip)
	})
}
