package inbound

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/untrusted"
)

// analyzeCert describes the chain a server sent and checks it: PKIX
// against roots (RFC 5280 §6: signatures, dates, constraints; the serverAuth
// extended key usage as mail servers' clients expect), the MX host name
// (RFC 6125 §6 via x509.VerifyHostname: DNS subjectAltNames, wildcards in
// the left-most label), expiry and self-signature.
func analyzeCert(chain []*x509.Certificate, host string, roots *x509.CertPool, now time.Time) *CertInfo {
	if len(chain) == 0 {
		return nil
	}
	leaf := chain[0]
	ci := &CertInfo{
		Subject:     untrusted.Printable(leaf.Subject.String(), 300),
		Issuer:      untrusted.Printable(leaf.Issuer.String(), 300),
		Names:       []string{},
		NotBefore:   leaf.NotBefore.UTC(),
		NotAfter:    leaf.NotAfter.UTC(),
		DaysLeft:    int(math.Floor(leaf.NotAfter.Sub(now).Hours() / 24)),
		ChainLength: len(chain),
	}
	for i, n := range leaf.DNSNames {
		if i == 50 {
			break
		}
		ci.Names = append(ci.Names, untrusted.Printable(n, 253))
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	ci.SPKISHA256 = hex.EncodeToString(sum[:])
	ci.SelfSigned = bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now})
	if err == nil {
		ci.PKIXValid = true
	} else {
		ci.PKIXError = pkixReason(err, ci)
	}
	ci.NameMatch = leaf.VerifyHostname(strings.TrimSuffix(host, ".")) == nil
	return ci
}

// pkixReason puts a verification error in a few words.
func pkixReason(err error, ci *CertInfo) string {
	var ua x509.UnknownAuthorityError
	var inv x509.CertificateInvalidError
	switch {
	case ci.SelfSigned:
		return "self-signed"
	case errors.As(err, &ua):
		return "issuer not trusted (" + untrusted.Printable(ci.Issuer, 200) + ")"
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "expired or not yet valid: " + untrusted.Printable(err.Error(), 200)
	}
	return untrusted.Printable(err.Error(), 300)
}
