package service

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/certs"
	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/dnssec"
	"github.com/mailsec/mailsec/internal/health"
	"github.com/mailsec/mailsec/internal/keyfile"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
)

// ErrKeyChanged: a key file on disk is not the key in service; the next
// start would publish other DNSKEY, DKIM or TLSA records.
var ErrKeyChanged = errors.New("key file differs from the key in service")

// ErrNotValidated: zone A answers through the resolver but without the
// AD bit: validating resolvers do not see the chain of trust to it.
var ErrNotValidated = errors.New("zone A does not validate through the resolver")

// Readiness is the service's readiness checks (GET /readyz): the store,
// the key files, the certificates and the resolver.
func Readiness(cfg *config.Config, zones *Zones, st *store.Store, mgr *certs.Manager, res *resolver.Resolver) *health.Checker {
	return health.New(0,
		health.Check{Name: "store", Run: st.Ping},
		health.Check{Name: "keys", Run: func(context.Context) error { return checkKeyFiles(cfg, zones) }},
		health.Check{Name: "certificates", Run: func(context.Context) error { return mgr.Check() }},
		health.Check{Name: "resolver", Run: func(ctx context.Context) error { return checkResolver(ctx, cfg, res) }},
	)
}

// checkKeyFiles compares every key file with the key in service: a file
// lost or replaced since the start (a botched restore, a cleaned data
// directory) is found now, not at the next start, when the DS at the
// parent would name a key that is gone.
func checkKeyFiles(cfg *config.Config, zones *Zones) error {
	var errs []error
	for _, k := range []*dnssec.Key{zones.KeyA, zones.KeyB} {
		if k == nil {
			continue
		}
		disk, err := dnssec.LoadKey(cfg.KeyDir(), k.DNSKEY.Hdr.Name)
		switch {
		case err != nil:
			errs = append(errs, err)
		case disk.DNSKEY.PublicKey != k.DNSKEY.PublicKey:
			errs = append(errs, fmt.Errorf("%w: zone key of %s (key tag %d on disk, %d in service)", ErrKeyChanged, k.DNSKEY.Hdr.Name, disk.KeyTag(), k.KeyTag()))
		}
	}
	signers := map[string]crypto.Signer{}
	if zones.DKIMKey != nil {
		signers[resultmail.KeyPath(cfg.KeyDir(), cfg.ResultMail.Selector)] = zones.DKIMKey
	}
	if cfg.TLSIssuer() != certs.IssuerStatic { // static files hold the persona keys then
		for _, p := range persona.Table() {
			if p.HasKey() {
				signers[filepath.Join(cfg.KeyDir(), fmt.Sprintf("persona-%d.key", p.Number))] = zones.Keys.Signer(p.Number)
			}
		}
	}
	for path, inService := range signers {
		disk, err := keyfile.ReadSigner(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a, errA := x509.MarshalPKIXPublicKey(disk.Public())
		b, errB := x509.MarshalPKIXPublicKey(inService.Public())
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			errs = append(errs, fmt.Errorf("%w: %s", ErrKeyChanged, path))
		}
	}
	return errors.Join(errs...)
}

// checkResolver asks the service's resolver for zone A's SOA: it must
// answer, and — when its AD bit is trusted (a resolver on loopback) — the
// answer must be validated: the chain of trust from the root through the
// DS at the parent (docs/deploy.md) reaches zone A.
func checkResolver(ctx context.Context, cfg *config.Config, res *resolver.Resolver) error {
	if res == nil {
		return resolver.ErrNoResolver
	}
	a, err := res.Query(ctx, dns.Fqdn(cfg.Zones.A), dns.TypeSOA)
	if err != nil {
		return fmt.Errorf("%s: %w", res.Addr(), err)
	}
	if res.TrustsAD() && !a.Secure {
		return fmt.Errorf("%w %s: is the DS at the parent published and equal to 'mailsec dns ds'?", ErrNotValidated, res.Addr())
	}
	return nil
}
