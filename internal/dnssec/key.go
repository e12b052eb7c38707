// Package dnssec keeps a zone's signing key and signs RRsets online.
//
// Each zone has one Combined Signing Key (CSK, flags 257, ECDSA P-256 with
// SHA-256, algorithm 13, RFC 6605): the operator hands one DS to the parent
// and never has to roll a ZSK separately. Signatures are made on the way out
// and cached per RRset, as CoreDNS's dnssec plugin does, and re-made before
// they expire.
package dnssec

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/keyfile"
)

// Key is a zone's combined signing key.
type Key struct {
	DNSKEY  *dns.DNSKEY
	private crypto.Signer
}

// KeyTag returns the key tag (RFC 4034 Appendix B).
func (k *Key) KeyTag() uint16 { return k.DNSKEY.KeyTag() }

// DS returns the delegation signer record (SHA-256 digest, RFC 4509) to
// publish in the parent zone or give to a resolver as trust anchor.
func (k *Key) DS() *dns.DS { return k.DNSKEY.ToDS(dns.SHA256) }

// ErrKeyMissing is wrapped by LoadKey's error when the key files of a zone
// are not there.
var ErrKeyMissing = errors.New("dnssec: zone key missing")

// keyPaths are the BIND-style files of zone's key in dir: <zone>.key (the
// public DNSKEY) and <zone>.private.
func keyPaths(dir, zone string) (pubPath, privPath string) {
	base := filepath.Join(dir, strings.TrimSuffix(zone, "."))
	return base + ".key", base + ".private"
}

// LoadOrCreateKey reads the key of zone from dir, creating it on first use.
// The files are BIND-style: <zone>.key (the public DNSKEY) and <zone>.private.
func LoadOrCreateKey(dir, zone string, ttl uint32) (*Key, error) {
	zone = dns.CanonicalName(zone)
	pubPath, privPath := keyPaths(dir, zone)
	if _, err := os.Stat(pubPath); errors.Is(err, os.ErrNotExist) {
		if err := createKey(zone, ttl, pubPath, privPath); err != nil {
			return nil, err
		}
	}
	return readKey(zone, pubPath, privPath)
}

// LoadKey reads the key of zone from dir and never makes one: a missing
// key file is an error wrapping ErrKeyMissing that names the path. A zone
// whose DS is published must keep its key; a new one would make the zone
// bogus for every validating resolver.
func LoadKey(dir, zone string) (*Key, error) {
	zone = dns.CanonicalName(zone)
	pubPath, privPath := keyPaths(dir, zone)
	for _, p := range []string{pubPath, privPath} {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s of %s does not exist", ErrKeyMissing, p, zone)
		}
	}
	return readKey(zone, pubPath, privPath)
}

func createKey(zone string, ttl uint32, pubPath, privPath string) error {
	k := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: zone, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: ttl},
		Flags:     dns.ZONE | dns.SEP, // 257: a CSK is both KSK and ZSK
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
	}
	priv, err := k.Generate(256)
	if err != nil {
		return fmt.Errorf("generating key for %s: %w", zone, err)
	}
	// Private part first: a public file without its private part would be
	// a key that cannot sign. WriteNew never replaces an existing file, so
	// two processes starting at once end with one key pair.
	if err := keyfile.WriteNew(privPath, []byte(k.PrivateKeyString(priv))); err != nil {
		return err
	}
	if _, err := os.Stat(pubPath); err == nil {
		return nil
	}
	// If another process won the race for the private file, our public
	// half does not match it; derive the public file from what is there.
	privText, err := os.ReadFile(privPath)
	if err != nil {
		return err
	}
	p, err := k.ReadPrivateKey(strings.NewReader(string(privText)), privPath)
	if err != nil {
		return fmt.Errorf("%s: %w", privPath, err)
	}
	ec, ok := p.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("%s: not an ECDSA key", privPath)
	}
	k.PublicKey = publicKeyString(ec)
	return keyfile.WriteNew(pubPath, []byte(k.String()+"\n"))
}

func readKey(zone, pubPath, privPath string) (*Key, error) {
	pubText, err := os.ReadFile(pubPath)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	rr, err := dns.NewRR(string(pubText))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pubPath, err)
	}
	k, ok := rr.(*dns.DNSKEY)
	if !ok || dns.CanonicalName(k.Hdr.Name) != zone {
		return nil, fmt.Errorf("%s: not a DNSKEY of %s", pubPath, zone)
	}
	if k.Algorithm != dns.ECDSAP256SHA256 {
		return nil, fmt.Errorf("%s: algorithm %d, want 13 (ECDSAP256SHA256)", pubPath, k.Algorithm)
	}
	f, err := os.Open(privPath)
	if err != nil {
		return nil, fmt.Errorf("reading key: %w", err)
	}
	defer f.Close()
	priv, err := k.ReadPrivateKey(f, privPath)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", privPath, err)
	}
	ec, ok := priv.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", privPath)
	}
	if publicKeyString(ec) != k.PublicKey {
		return nil, fmt.Errorf("%s does not belong to %s", privPath, pubPath)
	}
	return &Key{DNSKEY: k, private: ec}, nil
}

// publicKeyString encodes an ECDSA P-256 public key as DNSKEY data
// (RFC 6605 §4: the concatenation of x and y, 32 bytes each).
//
// The public key is derived from the private scalar, not read from the
// private key's X and Y: miekg/dns fills those in from the DNSKEY file, so
// only the scalar tells whether the two files belong together.
func publicKeyString(k *ecdsa.PrivateKey) string {
	scalar, err := k.Bytes()
	if err != nil {
		return ""
	}
	priv, err := ecdh.P256().NewPrivateKey(scalar)
	if err != nil {
		return ""
	}
	raw := priv.PublicKey().Bytes() // 0x04 || x || y
	if len(raw) != 65 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(raw[1:])
}
