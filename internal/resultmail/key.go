package resultmail

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
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
	k, err := keyfile.LoadOrCreate(path, func() (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, dkimKeyBits) })
	if err != nil {
		return nil, err
	}
	if _, ok := k.(*rsa.PrivateKey); !ok {
		return nil, fmt.Errorf("%s: %T is not an RSA key (DKIM)", path, k)
	}
	return k, nil
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
