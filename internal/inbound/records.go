package inbound

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/publicsuffix"

	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/spf"
	"github.com/mailsec/mailsec/internal/tlsrpt"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// checkTLSRPT reads the TLS-RPT record at _smtp._tls.<domain> (RFC 8460 §3).
func (c *checker) checkTLSRPT(ctx context.Context) checkreport.TLSRPTInfo {
	info := checkreport.TLSRPTInfo{RUA: []string{}}
	txts, err := c.dns.txt(ctx, "_smtp._tls."+c.domain)
	if err != nil {
		info.Error = "look-up failed: " + untrusted.Printable(err.Error(), 300)
		c.errorf("TLS-RPT record: %v", err)
		return info
	}
	for _, t := range txts {
		info.Present = info.Present || tlsrpt.IsTLSRPT(t)
	}
	rec, err := tlsrpt.Select(txts)
	switch {
	case errors.Is(err, tlsrpt.ErrNoRecord):
		info.Present = false
	case err != nil:
		info.Present = true
		info.Error = untrusted.Printable(err.Error(), 300)
	default:
		info.Present, info.Valid = true, true
		info.RUA = append(info.RUA, rec.RUA...)
	}
	return info
}

// checkSPF parses the domain's SPF record and counts the DNS look-ups its
// include/redirect tree costs a receiver (RFC 7208 §4.6.4: at most 10).
func (c *checker) checkSPF(ctx context.Context) checkreport.SPFInfo {
	var info checkreport.SPFInfo
	res, err := spf.Lookup(ctx, c.dns.lookupTXT, c.domain, spf.Options{
		NotFound: func(err error) bool { return errors.Is(err, resolver.ErrNXDomain) },
	})
	if res != nil {
		info.Record = untrusted.Printable(res.Text, 1000)
		info.Lookups = res.Lookups
	}
	switch {
	case err == nil:
		info.Present, info.Valid = true, true
	case errors.Is(err, spf.ErrNoRecord):
	case res != nil && res.Record != nil && onlyLimitErrors(err):
		// The record parses; only the look-up count is over the limit,
		// which checkreport.Evaluate reports as spf.too_many_lookups.
		info.Present, info.Valid = true, true
		info.Error = untrusted.Printable(err.Error(), 300)
	case errors.Is(err, spf.ErrDNS) && (res == nil || res.Record == nil):
		info.Error = "look-up failed: " + untrusted.Printable(err.Error(), 300)
		c.errorf("SPF record: %v", err)
	default:
		info.Present = true
		info.Error = untrusted.Printable(err.Error(), 300)
	}
	return info
}

// onlyLimitErrors: every joined error is ErrTooManyLookups.
func onlyLimitErrors(err error) bool {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, e := range errs {
		if !errors.Is(e, spf.ErrTooManyLookups) {
			return false
		}
	}
	return len(errs) > 0
}

// checkDMARC reads the DMARC record that applies to the domain (RFC 7489
// §6.6.3): its own at _dmarc.<domain>, or, when it has none, the
// organizational domain's (the public suffix plus one label, from the
// public suffix list of golang.org/x/net/publicsuffix), whose sp= (else
// p=) is the policy for its subdomains (§6.3).
func (c *checker) checkDMARC(ctx context.Context) checkreport.DMARCInfo {
	info, found := c.readDMARC(ctx, c.domain)
	if found || info.Error != "" {
		return info
	}
	org, err := publicsuffix.EffectiveTLDPlusOne(c.domain)
	if err != nil || org == c.domain {
		return info // the domain is itself an organizational domain (or a public suffix)
	}
	orgInfo, found := c.readDMARC(ctx, org)
	if !found && orgInfo.Error == "" {
		return info
	}
	orgInfo.OrgDomain = org
	return orgInfo
}

// readDMARC reads the DMARC record at _dmarc.<domain> (RFC 7489 §6.1,
// §6.6.3: exactly one record starting with "v=DMARC1"); found is false
// when there is none (a failed look-up sets Error instead). The policy
// for a subdomain is taken when domain is not the checked domain.
func (c *checker) readDMARC(ctx context.Context, domain string) (info checkreport.DMARCInfo, found bool) {
	txts, err := c.dns.txt(ctx, "_dmarc."+domain)
	if err != nil {
		info.Error = "look-up failed: " + untrusted.Printable(err.Error(), 300)
		c.errorf("DMARC record at _dmarc.%s: %v", domain, err)
		return info, false
	}
	var records []string
	for _, t := range txts {
		if v, _, _ := strings.Cut(t, ";"); strings.EqualFold(strings.TrimSpace(v), "v=DMARC1") {
			records = append(records, t)
		}
	}
	switch len(records) {
	case 0:
		return info, false
	case 1:
	default:
		info.Present = true
		info.Record = untrusted.Printable(records[0], 1000)
		info.Error = fmt.Sprintf("%d DMARC records; RFC 7489 §6.6.3 says to ignore them all", len(records))
		return info, true
	}
	info.Present = true
	info.Record = untrusted.Printable(records[0], 1000)
	rec, err := parseDMARC(records[0])
	if err != nil {
		info.Error = untrusted.Printable(err.Error(), 300)
		return info, true
	}
	info.Valid = true
	info.Policy = string(rec.Policy)
	if domain != c.domain && rec.SubdomainPolicy != "" {
		info.Policy = string(rec.SubdomainPolicy) // RFC 7489 §6.3 "sp"
	}
	return info, true
}

// parseDMARC is dmarc.Parse without its panics: a parser of untrusted
// text must never take the check down.
func parseDMARC(txt string) (rec *dmarc.Record, err error) {
	defer func() {
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("malformed DMARC record (%v)", p)
		}
	}()
	rec, err = dmarc.Parse(txt)
	if err == nil && rec == nil {
		err = errors.New("malformed DMARC record")
	}
	return rec, err
}
