package mtasts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// FetchTimeout bounds one policy fetch when the caller's context allows
// longer (RFC 8461 §3.3 leaves the value to the sender; a minute is what
// common implementations use).
const FetchTimeout = time.Minute

// WellKnownPath is where the policy lives on mta-sts.<domain> (§3.3).
const WellKnownPath = "/.well-known/mta-sts.txt"

// Errors of record look-up and policy fetch.
var (
	// ErrRecordLookup: the DNS look-up of _mta-sts failed (SERVFAIL,
	// timeout); not the same as ErrNoRecord.
	ErrRecordLookup = errors.New("mtasts: record look-up failed")
	// ErrNoPolicy: the policy host answered 404: a record without a
	// policy (§3.3: treated as no policy).
	ErrNoPolicy = errors.New("mtasts: no policy at the policy host (404)")
	// ErrPolicyFetch is wrapped by every other fetch failure: connection,
	// TLS or certificate, status, redirect, media type, size, timeout.
	ErrPolicyFetch = errors.New("mtasts: policy fetch failed")
	// ErrRedirect: the policy host answered with a redirect, which §3.3
	// forbids following. Wrapped together with ErrPolicyFetch.
	ErrRedirect = errors.New("mtasts: policy host redirects")
	// ErrContentType: the media type is not text/plain (§3.2). Wrapped
	// together with ErrPolicyFetch.
	ErrContentType = errors.New("mtasts: policy is not text/plain")
	// ErrCertificate: the policy host's certificate was not verified
	// (the client skipped verification). Wrapped together with
	// ErrPolicyFetch; a certificate the client rejects comes back as the
	// TLS error, also wrapped in ErrPolicyFetch.
	ErrCertificate = errors.New("mtasts: policy host certificate not verified")
)

// LookupTXTFunc looks up the TXT records at a name, each record's strings
// joined. resolver.(*Resolver).LookupTXT is one. A missing name should
// come back as an error wrapping resolver.ErrNXDomain (or a *net.DNSError
// with IsNotFound); no records and no error mean NODATA.
type LookupTXTFunc func(ctx context.Context, name string) ([]string, error)

// LookupRecord looks up and picks the MTA-STS record of domain (§3.1).
// Absence (NXDOMAIN, NODATA, no v=STSv1 record) is ErrNoRecord; a failed
// look-up wraps ErrRecordLookup; several or malformed records are
// ErrMultipleRecords and ErrRecordSyntax.
func LookupRecord(ctx context.Context, lookupTXT LookupTXTFunc, domain string) (Record, error) {
	d, err := normalDomain(domain)
	if err != nil {
		return Record{}, err
	}
	txts, err := lookupTXT(ctx, "_mta-sts."+d)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.Is(err, resolver.ErrNXDomain) || errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return Record{}, ErrNoRecord
		}
		return Record{}, fmt.Errorf("%w: %w", ErrRecordLookup, err)
	}
	return PickRecord(txts)
}

// PolicyURL returns https://mta-sts.<domain>/.well-known/mta-sts.txt.
func PolicyURL(domain string) (string, error) {
	d, err := normalDomain(domain)
	if err != nil {
		return "", err
	}
	return "https://mta-sts." + d + WellKnownPath, nil
}

// Fetch gets and parses the policy of domain from
// https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 §3.3):
//
//   - redirects are not followed (an HTTP 3xx is ErrRedirect);
//   - the certificate must be PKIX-valid for mta-sts.<domain>: the
//     client's TLS configuration decides the roots, and a client that
//     skips verification is refused (ErrCertificate);
//   - only status 200 is accepted (404 is ErrNoPolicy);
//   - the media type must be text/plain, parameters allowed (§3.2);
//   - the body is at most 64 KiB (ErrPolicyTooLarge);
//   - the whole fetch takes at most FetchTimeout, or less if ctx says so.
//
// client nil means a client with the system roots and no proxy. The
// client is not changed: Fetch works on a copy with its own redirect rule.
func Fetch(ctx context.Context, client *http.Client, domain string) (Policy, error) {
	u, err := PolicyURL(domain)
	if err != nil {
		return Policy{}, err
	}
	var c http.Client
	if client != nil {
		c = *client
	} else {
		c.Transport = &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12},
		}
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %w", ErrPolicyFetch, err)
	}
	req.Header.Set("User-Agent", "mailsec-mtasts/1")
	resp, err := c.Do(req)
	if err != nil {
		return Policy{}, fmt.Errorf("%w: %w", ErrPolicyFetch, err)
	}
	defer resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.VerifiedChains) == 0 {
		return Policy{}, fmt.Errorf("%w: %w", ErrPolicyFetch, ErrCertificate)
	}
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusNotFound:
		return Policy{}, ErrNoPolicy
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Policy{}, fmt.Errorf("%w: %w: %s to %q", ErrPolicyFetch, ErrRedirect, resp.Status, untrusted.Truncate(resp.Header.Get("Location"), 200))
	default:
		return Policy{}, fmt.Errorf("%w: status %s", ErrPolicyFetch, resp.Status)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" {
		return Policy{}, fmt.Errorf("%w: %w: %q", ErrPolicyFetch, ErrContentType, untrusted.Truncate(resp.Header.Get("Content-Type"), 100))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err != nil {
		return Policy{}, fmt.Errorf("%w: reading the body: %w", ErrPolicyFetch, err)
	}
	if len(body) > MaxPolicySize {
		return Policy{}, fmt.Errorf("%w: %w", ErrPolicyFetch, ErrPolicyTooLarge)
	}
	return ParsePolicy(string(body))
}

// normalDomain lower-cases domain, drops a trailing dot and checks that it
// is a host name (so that it cannot change the URL built from it).
func normalDomain(domain string) (string, error) {
	d := dnsname.Canonical(domain)
	if !validHostname(d) {
		return "", fmt.Errorf("mtasts: %q is not a domain name", untrusted.Truncate(domain, 80))
	}
	return d, nil
}
