package dane

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
)

// Errors of Verify.
var (
	// ErrNoUsableRecords: none of the records is usable for SMTP; the
	// connection cannot be authenticated by DANE (RFC 7672 §2.2).
	ErrNoUsableRecords = errors.New("dane: no usable TLSA records")
	// ErrNoCertificate: the server sent no certificate.
	ErrNoCertificate = errors.New("dane: the server sent no certificate")
	// ErrNoMatch: usable records exist but none authenticates the server
	// (Postfix logs "no matching DANE TLSA records").
	ErrNoMatch = errors.New("dane: no matching TLSA record")
)

// Check is the verdict on one record.
type Check struct {
	Record TLSA
	// Usable is false for records that cannot be used for SMTP; Reason
	// says why.
	Usable bool
	// Matched is true when the record authenticated the server.
	Matched bool
	// Depth is the position, in the chain the server sent, of the
	// certificate the record matched (0: the server's own certificate);
	// -1 if it matched none.
	Depth int
	// Reason explains the verdict in a few words.
	Reason string
}

// Result is the outcome of Verify.
type Result struct {
	// Verified: a usable record authenticated the server.
	Verified bool
	// Matched is the first record that authenticated the server.
	Matched TLSA
	// Checks holds one entry per record given, in order.
	Checks []Check
}

// Summary lists the checks in one line, e.g. for a transcript.
func (r Result) Summary() string {
	parts := make([]string, 0, len(r.Checks))
	for _, c := range r.Checks {
		parts = append(parts, c.Record.Short()+": "+c.Reason)
	}
	return strings.Join(parts, "; ")
}

// Verify authenticates the TLS server of cs by the TLSA records (RFC 7672
// §3): records must come from a secure answer (the caller's duty).
//
// host is the TLSA base domain, normally the MX host name; DANE-TA(2)
// requires it among the server certificate's DNS names (RFC 7672 §3.2.2),
// DANE-EE(3) ignores names. now is the time for the DANE-TA validity
// check; DANE-EE ignores dates (RFC 7672 §3.1.1).
//
// cs.PeerCertificates is the chain as the server sent it, which is what a
// client configured with InsecureSkipVerify (verification done here)
// receives. A DANE-TA record must match a certificate after the first:
// the trust anchor must be in the served chain (RFC 7672 §3.1.2 asks
// servers to include it; a bare key not in the chain is not supported).
//
// The result reports on every record; the error is nil when Verified,
// else ErrNoCertificate, ErrNoUsableRecords or ErrNoMatch (with the
// reasons).
func Verify(cs tls.ConnectionState, records []TLSA, host string, now time.Time) (Result, error) {
	chain := cs.PeerCertificates
	res := Result{Checks: make([]Check, 0, len(records))}
	if len(chain) == 0 {
		for _, r := range records {
			res.Checks = append(res.Checks, Check{Record: r, Usable: r.Unusable() == "", Depth: -1, Reason: "no certificate"})
		}
		return res, ErrNoCertificate
	}
	host = dnsname.Canonical(host)
	usable := 0
	for _, r := range records {
		c := Check{Record: r, Depth: -1}
		if why := r.Unusable(); why != "" {
			c.Reason = "unusable: " + why
			res.Checks = append(res.Checks, c)
			continue
		}
		c.Usable = true
		usable++
		switch r.Usage {
		case UsageDANEEE:
			// RFC 7672 §3.1.1: the leaf alone; no name, date or chain check.
			if matches(r, chain[0]) {
				c.Matched, c.Depth, c.Reason = true, 0, "matches the server certificate"
			} else {
				c.Reason = "does not match the server certificate"
			}
		case UsageDANETA:
			c.Matched, c.Depth, c.Reason = verifyTA(r, chain, host, now)
		}
		if c.Matched && !res.Verified {
			res.Verified, res.Matched = true, r
		}
		res.Checks = append(res.Checks, c)
	}
	switch {
	case res.Verified:
		return res, nil
	case usable == 0:
		return res, ErrNoUsableRecords
	}
	return res, fmt.Errorf("%w (%s)", ErrNoMatch, res.Summary())
}

// verifyTA checks a DANE-TA(2) record (RFC 7671 §5.2, RFC 7672 §3.1.2):
// some issuer certificate of the served chain matches, and the server
// certificate chains up to it, is valid at now and names host.
func verifyTA(r TLSA, chain []*x509.Certificate, host string, now time.Time) (bool, int, string) {
	var lastErr error
	depth := -1
	for i := 1; i < len(chain); i++ {
		if !matches(r, chain[i]) {
			continue
		}
		depth = i
		anchors := x509.NewCertPool()
		anchors.AddCert(chain[i])
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		_, err := chain[0].Verify(x509.VerifyOptions{
			DNSName:       host,
			Roots:         anchors,
			Intermediates: inter,
			CurrentTime:   now,
			// RFC 7672 asks for no particular extended key usage.
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		})
		if err == nil {
			return true, i, fmt.Sprintf("matches the trust anchor at depth %d; chain, dates and name %s valid", i, host)
		}
		lastErr = err
	}
	switch {
	case depth >= 0:
		return false, depth, fmt.Sprintf("matches the certificate at depth %d, but the server certificate does not validate under it: %v", depth, lastErr)
	case matches(r, chain[0]):
		return false, -1, "matches only the server certificate; DANE-TA needs the trust anchor among its issuers"
	case len(chain) == 1:
		return false, -1, "the server sent no issuer certificate to match"
	}
	return false, -1, "matches no certificate of the served chain"
}

// matches compares the record with cert.
func matches(r TLSA, cert *x509.Certificate) bool {
	data, err := associationData(r.Selector, r.MatchingType, cert)
	return err == nil && bytes.Equal(data, r.Data)
}
