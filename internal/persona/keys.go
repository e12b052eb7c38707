package persona

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"path/filepath"

	"github.com/mailsec/mailsec/internal/keyfile"
)

// Keys holds the private key of every persona that serves a certificate.
//
// A persona keeps its key for life: certificates are renewed with the same
// key, so the TLSA records derived from it stay valid across renewals (the
// simplest rollover of RFC 7671 §8.1: "keep the key").
type Keys struct {
	keys map[int]crypto.Signer
}

// LoadKeys reads the persona keys from dir, creating missing ones (ECDSA
// P-256, PKCS#8 PEM files persona-N.key, mode 0600).
func LoadKeys(dir string) (*Keys, error) { return LoadKeysWith(dir, nil) }

// LoadKeysWith is LoadKeys with the keys of some personas given instead of
// kept in dir: with static certificate files (tls.issuer = "static") the
// key of the file is the persona's key, so that the TLSA records derived
// from Keys match the certificate that is served. Overridden keys are
// neither read nor created in dir.
func LoadKeysWith(dir string, overrides map[int]crypto.Signer) (*Keys, error) {
	k := &Keys{keys: map[int]crypto.Signer{}}
	for n, key := range overrides {
		p, ok := ByNumber(n)
		if !ok || !p.HasKey() {
			return nil, fmt.Errorf("persona %d has no key to override", n)
		}
		if key == nil {
			return nil, fmt.Errorf("persona %d: nil override key", n)
		}
		k.keys[n] = key
	}
	for _, p := range Table() {
		if !p.HasKey() || k.keys[p.Number] != nil {
			continue
		}
		path := filepath.Join(dir, fmt.Sprintf("persona-%d.key", p.Number))
		key, err := loadOrCreateECKey(path)
		if err != nil {
			return nil, fmt.Errorf("persona %d key: %w", p.Number, err)
		}
		k.keys[p.Number] = key
	}
	return k, nil
}

// Signer returns the private key of persona n, or nil if it has none.
func (k *Keys) Signer(n int) crypto.Signer {
	if key, ok := k.keys[n]; ok {
		return key
	}
	return nil
}

// SPKISHA256 returns the SHA-256 digest of persona n's SubjectPublicKeyInfo,
// the data of a "3 1 1" TLSA record (RFC 6698 §2.1).
func (k *Keys) SPKISHA256(n int) ([]byte, error) {
	key, ok := k.keys[n]
	if !ok {
		return nil, fmt.Errorf("persona %d has no key", n)
	}
	der, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(der)
	return sum[:], nil
}

func loadOrCreateECKey(path string) (*ecdsa.PrivateKey, error) {
	signer, err := keyfile.LoadOrCreateSigner(path)
	if err != nil {
		return nil, err
	}
	key, ok := signer.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", path)
	}
	return key, nil
}
