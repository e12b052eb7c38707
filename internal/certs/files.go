package certs

import (
	"crypto"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mailsec/mailsec/internal/keyfile"
	"github.com/mailsec/mailsec/internal/persona"
)

// loadOrCreateKey reads a signing key from a PEM file, creating an ECDSA
// P-256 key there first if missing.
func loadOrCreateKey(path string) (crypto.Signer, error) { return keyfile.LoadOrCreateSigner(path) }

// readChain reads the CERTIFICATE blocks of a PEM file, in order. A
// missing file gives an error wrapping fs.ErrNotExist.
func readChain(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var chain [][]byte
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			chain = append(chain, block.Bytes)
		}
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%s: no certificate", path)
	}
	return chain, nil
}

// writeChain stores a chain as PEM, replacing the file atomically (a
// reader sees the old or the new chain, never part of one).
func writeChain(path string, chain [][]byte) error {
	return keyfile.Replace(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(chainPEM(chain))
		return err
	})
}

// directoryID names the storage directory of an ACME CA: certificates of
// another CA (staging vs. production, pebble vs. Let's Encrypt) are never
// loaded as this one's.
func directoryID(url string) string {
	if url == "" {
		return "none"
	}
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:6])
}

// fileStamp identifies a version of the static files of one host.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func stampOf(f StaticFiles) (fileStamp, error) {
	ci, err := os.Stat(f.Cert)
	if err != nil {
		return fileStamp{}, err
	}
	ki, err := os.Stat(f.Key)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{certMod: ci.ModTime(), keyMod: ki.ModTime(), certSize: ci.Size(), keySize: ki.Size()}, nil
}

// readStatic reads a static certificate chain and its key and checks that
// they belong together.
func readStatic(f StaticFiles) (tls.Certificate, crypto.Signer, error) {
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("%w: %s and %s: %w", ErrBadCertificate, f.Cert, f.Key, err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok {
		return tls.Certificate{}, nil, fmt.Errorf("%w: %s: %T is not a signing key", ErrBadCertificate, f.Key, pair.PrivateKey)
	}
	return pair, signer, nil
}

// StaticPersonaKeys reads the keys of the static certificate files of the
// CA-signed personas (host labels mx5, mx6, mx7), for
// persona.LoadKeysWith: with tls.issuer = "static" the file's key is the
// persona's key, and the zone's TLSA record of mx6 must be derived from
// it. Hosts without files are left out.
func StaticPersonaKeys(static map[string]StaticFiles) (map[int]crypto.Signer, error) {
	out := map[int]crypto.Signer{}
	for _, p := range persona.Table() {
		f, ok := static[p.Host]
		if p.Cert != persona.CertCASigned || !ok {
			continue
		}
		_, key, err := readStatic(f)
		if err != nil {
			return nil, fmt.Errorf("static certificate of %s: %w", p.Host, err)
		}
		out[p.Number] = key
	}
	return out, nil
}

// loadStatic installs the static files of s (at start: any error is fatal).
func (m *Manager) loadStatic(s *slot) error {
	f, ok := m.opt.Static[s.label]
	if !ok || f.Cert == "" || f.Key == "" {
		return fmt.Errorf("%w: tls.issuer is static but %s has no certificate and key files", ErrOptions, s.label)
	}
	stamp, err := stampOf(f)
	if err != nil {
		return fmt.Errorf("static certificate of %s: %w", s.label, err)
	}
	cert, key, err := m.readStaticFor(s, f)
	if err != nil {
		return err
	}
	s.key, s.static = key, stamp
	s.cur.Store(cert)
	m.warnExpiry(s, cert)
	m.log.Info("static certificate loaded", "cert", s.name, "host", s.host, "file", f.Cert, "not_after", cert.Leaf.NotAfter)
	return nil
}

// reloadStatic re-reads the static files of s if they changed since they
// were loaded; a bad new version is logged and the old one kept.
func (m *Manager) reloadStatic(s *slot) {
	f := m.opt.Static[s.label]
	stamp, err := stampOf(f)
	if err != nil {
		m.log.Error("static certificate files unreadable; keeping the loaded one", "cert", s.name, "err", err)
		return
	}
	if stamp == s.static {
		if c := s.cur.Load(); c != nil {
			m.warnExpiry(s, c)
		}
		return
	}
	cert, key, err := m.readStaticFor(s, f)
	if err != nil {
		m.log.Error("changed static certificate rejected; keeping the loaded one", "cert", s.name, "file", f.Cert, "err", err)
		return
	}
	s.key, s.static = key, stamp
	s.cur.Store(cert)
	m.log.Info("static certificate reloaded", "cert", s.name, "host", s.host, "not_after", cert.Leaf.NotAfter)
}

// readStaticFor reads and checks the static files of s: the certificate
// must name s.host and, for a persona whose TLSA record is derived from its
// key (persona 6), hold that key.
func (m *Manager) readStaticFor(s *slot, f StaticFiles) (*tls.Certificate, crypto.Signer, error) {
	pair, key, err := readStatic(f)
	if err != nil {
		return nil, nil, fmt.Errorf("static certificate of %s: %w", s.label, err)
	}
	if err := pair.Leaf.VerifyHostname(s.host); err != nil {
		return nil, nil, fmt.Errorf("%w: static certificate %s: %w", ErrBadCertificate, f.Cert, err)
	}
	if p, ok := persona.ByNumber(s.persona); ok && p.TLSA == persona.TLSACorrect {
		if want := m.opt.Keys.Signer(s.persona); want == nil || !samePublicKey(key.Public(), want.Public()) {
			return nil, nil, fmt.Errorf("%w: %s of persona %d: its TLSA record names another key (load the persona keys with certs.StaticPersonaKeys)",
				ErrKeyMismatch, f.Key, s.persona)
		}
	}
	return &tls.Certificate{Certificate: pair.Certificate, PrivateKey: key, Leaf: pair.Leaf}, key, nil
}

// warnExpiry warns when a static certificate needs replacing: nobody but
// the operator renews it.
func (m *Manager) warnExpiry(s *slot, c *tls.Certificate) {
	if left := c.Leaf.NotAfter.Sub(m.now()); left < m.opt.RenewBefore {
		m.log.Warn("static certificate expires soon; replace its files", "cert", s.name, "host", s.host, "not_after", c.Leaf.NotAfter)
	}
}
