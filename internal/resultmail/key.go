package resultmail

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mailsec/mailsec/internal/keyfile"
)

// dkimKeyBits is the RSA key size: RFC 8301 §3.2 requires verifiers to
// accept 1024 to 4096 bits and signers to use at least 1024; 2048 is what
// every verifier accepts and fits a TXT record in one UDP answer.
const dkimKeyBits = 2048

// KeyPath is where the DKIM key of the result mails is kept.
func KeyPath(keyDir, selector string) string {
	return filepath.Join(keyDir, "dkim-"+selector+".pem")
}

// LoadOrCreateKey reads the RSA DKIM key at path, creating it first if it
// does not exist (mode 0600, never overwritten: keyfile.WriteNew). RSA,
// not Ed25519: RFC 8463 signatures are still not verified everywhere.
func LoadOrCreateKey(path string) (crypto.Signer, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		key, err := rsa.GenerateKey(rand.Reader, dkimKeyBits)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := keyfile.WriteNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		return k, nil
	}
	return nil, fmt.Errorf("%s: %T is not an RSA key (DKIM)", path, k)
}

// DNSRecord is the DKIM key record (RFC 6376 §3.6.1) published at
// <selector>._domainkey.<zone A>.
func DNSRecord(key crypto.Signer) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return "", err
	}
	return "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der), nil
}
