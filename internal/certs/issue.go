package certs

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/mailsec/mailsec/internal/keyfile"
)

// backdate is how far before "now" new certificates start, so that a
// client whose clock is a little behind accepts them.
const backdate = time.Hour

// maxSkew is how far in the future a new certificate's validity may start.
const maxSkew = time.Hour

// selfSign makes the self-signed certificate of s with its persona key.
// Persona 2's certificate carries a generic subject: it is served to
// clients that send no SNI, for whichever MX host they meant.
func selfSign(s *slot, now time.Time, validity time.Duration) ([][]byte, error) {
	tmpl, err := leafTemplate(s, now, now.Add(validity))
	if err != nil {
		return nil, err
	}
	if s.label == "" {
		tmpl.Subject = pkix.Name{CommonName: fmt.Sprintf("mailsec persona %d", s.persona), Organization: []string{"mailsec"}}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, s.key.Public(), s.key)
	if err != nil {
		return nil, fmt.Errorf("self-signing %s: %w", s.host, err)
	}
	return [][]byte{der}, nil
}

// leafTemplate is a TLS server certificate for s.host.
func leafTemplate(s *slot, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	t := &x509.Certificate{
		SerialNumber:          serial,
		DNSNames:              s.names(),
		NotBefore:             notBefore.Add(-backdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	// RFC 5280 §4.1.2.6 / CA/B Forum: the CN is at most 64 characters
	// and repeats a SAN; longer names go in the SAN only.
	if len(s.host) <= 64 {
		t.Subject.CommonName = s.host
	}
	if _, ok := s.key.Public().(*rsa.PublicKey); ok {
		t.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	return t, nil
}

// localCA is the private CA of tls.issuer = "local".
type localCA struct {
	key      crypto.Signer
	root     *x509.Certificate
	rootPEM  []byte
	rootPath string
	pool     *x509.CertPool
}

// localCAValidity is the lifetime of the local root. It is not renewed:
// after ten years, delete DATA_DIR/certs/local-ca.pem to make a new one.
const localCAValidity = 10 * 365 * 24 * time.Hour

// loadOrCreateLocalCA loads the local CA, creating its key and root
// certificate on first use. Concurrent first starts agree on one (the
// files are written without overwriting; the loser reads the winner's).
func loadOrCreateLocalCA(keyPath, rootPath, zone string, now time.Time) (*localCA, error) {
	key, err := loadOrCreateKey(keyPath)
	if err != nil {
		return nil, fmt.Errorf("local CA key: %w", err)
	}
	if _, err := os.Stat(rootPath); err != nil {
		serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
		if err != nil {
			return nil, err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          serial,
			Subject:               pkix.Name{CommonName: "mailsec local CA for " + zone, Organization: []string{"mailsec"}},
			NotBefore:             now.Add(-backdate),
			NotAfter:              now.Add(localCAValidity),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
			BasicConstraintsValid: true,
			IsCA:                  true,
			MaxPathLenZero:        true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
		if err != nil {
			return nil, fmt.Errorf("local CA root: %w", err)
		}
		if err := keyfile.WriteNewMode(rootPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
			return nil, fmt.Errorf("local CA root: %w", err)
		}
	}
	chain, err := readChain(rootPath)
	if err != nil {
		return nil, fmt.Errorf("local CA root: %w", err)
	}
	root, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("local CA root %s: %w", rootPath, err)
	}
	if !samePublicKey(root.PublicKey, key.Public()) || !root.IsCA {
		return nil, fmt.Errorf("%w: local CA root %s does not belong to the key %s", ErrBadCertificate, rootPath, keyPath)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return &localCA{
		key: key, root: root, rootPath: rootPath, pool: pool,
		rootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.Raw}),
	}, nil
}

// issue signs a certificate for s's key with the local CA.
func (ca *localCA) issue(s *slot, now time.Time, validity time.Duration) ([][]byte, error) {
	notAfter := now.Add(validity)
	if notAfter.After(ca.root.NotAfter) {
		notAfter = ca.root.NotAfter
	}
	tmpl, err := leafTemplate(s, now, notAfter)
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.root, s.key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("local CA signing %s: %w", s.host, err)
	}
	return [][]byte{der}, nil
}

// check parses chain and makes sure it fits s: the leaf names s.host and
// holds s's key; a local-CA chain verifies against the root; an
// intermediate that follows the leaf signed it. With a non-zero now (a
// fresh certificate) the leaf must also be valid now; stored ones are
// loaded even when expired, to be served until a renewal succeeds.
func (m *Manager) check(s *slot, chain [][]byte, now time.Time) (*tls.Certificate, error) {
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: %s: empty chain", ErrBadCertificate, s.host)
	}
	certs := make([]*x509.Certificate, len(chain))
	for i, der := range chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: certificate %d: %w", ErrBadCertificate, s.host, i, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	if !samePublicKey(leaf.PublicKey, s.key.Public()) {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadCertificate, s.host, ErrKeyMismatch)
	}
	for _, name := range s.slotNames {
		if err := leaf.VerifyHostname(name); err != nil {
			return nil, fmt.Errorf("%w: %s: does not name test slot host %s", ErrBadCertificate, s.host, name)
		}
	}
	if err := leaf.VerifyHostname(s.host); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCertificate, err)
	}
	// A CA need not backdate (pebble starts validity at issuance), and
	// clocks differ a little: a start up to maxSkew ahead is accepted.
	if !now.IsZero() && (now.Add(maxSkew).Before(leaf.NotBefore) || !now.Before(leaf.NotAfter)) {
		return nil, fmt.Errorf("%w: %s: valid %s to %s, not now", ErrBadCertificate, s.host, leaf.NotBefore, leaf.NotAfter)
	}
	switch {
	case s.selfSigned:
		// CheckSignatureFrom would insist on a CA parent; a self-signed
		// leaf is checked against its own key.
		if err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature); err != nil {
			return nil, fmt.Errorf("%w: %s: not self-signed: %w", ErrBadCertificate, s.host, err)
		}
	case m.local != nil:
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		// At a moment the leaf is valid: expiry is handled by renewal.
		at := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: s.host, Roots: m.local.pool, Intermediates: inter, CurrentTime: at}); err != nil {
			return nil, fmt.Errorf("%w: %s: not from the local CA: %w", ErrBadCertificate, s.host, err)
		}
	default:
		for i := 1; i < len(certs); i++ {
			if err := certs[i-1].CheckSignatureFrom(certs[i]); err != nil {
				return nil, fmt.Errorf("%w: %s: certificate %d is not signed by the next: %w", ErrBadCertificate, s.host, i-1, err)
			}
		}
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: s.key, Leaf: leaf}, nil
}

// samePublicKey compares two public keys (all of Go's key types have Equal).
func samePublicKey(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}

// chainPEM encodes DER certificates as PEM.
func chainPEM(chain [][]byte) []byte {
	var b bytes.Buffer
	for _, der := range chain {
		_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	return b.Bytes()
}
