package certs

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/sync/errgroup"
)

// acmeIssuer obtains certificates from an ACME CA (RFC 8555) with the
// dns-01 challenge answered by our own zones. It is used only from the
// renewal pass, one call at a time.
type acmeIssuer struct {
	directory string
	email     string
	key       crypto.Signer // the account key, kept in DATA_DIR/keys
	http      *http.Client
	pub       ChallengePublisher

	// client is registered with the CA; dropped after any failure, so
	// that the next attempt registers again (pebble forgets its accounts
	// when it restarts; a real CA answers "already exists" cheaply).
	client *acme.Client
}

func newACMEIssuer(opt Options, accountKeyPath string) (*acmeIssuer, error) {
	key, err := loadOrCreateKey(accountKeyPath)
	if err != nil {
		return nil, fmt.Errorf("ACME account key: %w", err)
	}
	hc := opt.HTTPClient
	if hc == nil {
		if hc, err = acmeHTTPClient(opt.ACME.CAFile); err != nil {
			return nil, err
		}
	}
	return &acmeIssuer{directory: opt.ACME.Directory, email: opt.ACME.Email, key: key, http: hc, pub: opt.Challenges}, nil
}

// acmeHTTPClient trusts the system roots plus the PEM roots in caFile (a
// lab CA such as the one that signed pebble's listener certificate).
func acmeHTTPClient(caFile string) (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("acme.ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("%w: acme.ca_file %s holds no PEM certificate", ErrOptions, caFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return &http.Client{Transport: tr, Timeout: time.Minute}, nil
}

// registered returns a client whose account is registered, accepting the
// CA's terms of service (RFC 8555 §7.3).
func (a *acmeIssuer) registered(ctx context.Context) (*acme.Client, error) {
	if a.client != nil {
		return a.client, nil
	}
	c := &acme.Client{Key: a.key, HTTPClient: a.http, DirectoryURL: a.directory, UserAgent: "mailsec"}
	acct := &acme.Account{}
	if a.email != "" {
		acct.Contact = []string{"mailto:" + a.email}
	}
	if _, err := c.Register(ctx, acct, acme.AcceptTOS); err != nil && !errors.Is(err, acme.ErrAccountAlreadyExists) {
		return nil, fmt.Errorf("ACME account registration at %s: %w", a.directory, err)
	}
	a.client = c
	return c, nil
}

// obtain runs one order for s.host (RFC 8555 §7.4) and returns the chain,
// leaf first.
func (a *acmeIssuer) obtain(ctx context.Context, s *slot, log *slog.Logger) ([][]byte, error) {
	c, err := a.registered(ctx)
	if err != nil {
		return nil, err
	}
	chain, err := a.order(ctx, c, s, log)
	if err != nil {
		a.client = nil
	}
	return chain, err
}

// maxParallelAuthorizations bounds the authorizations of one order
// validated at once.
const maxParallelAuthorizations = 16

func (a *acmeIssuer) order(ctx context.Context, c *acme.Client, s *slot, log *slog.Logger) ([][]byte, error) {
	o, err := c.AuthorizeOrder(ctx, acme.DomainIDs(s.names()...))
	if err != nil {
		return nil, fmt.Errorf("ACME new order for %s: %w", s.host, err)
	}
	// The authorizations of one order are independent (RFC 8555 §7.5):
	// with test slots an order names a host in up to 100 slots, and the
	// CA validates each in about a second, so they run side by side
	// (each publishes its own _acme-challenge name).
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxParallelAuthorizations)
	for _, u := range o.AuthzURLs {
		g.Go(func() error { return a.authorize(gctx, c, u, log) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if o, err = c.WaitOrder(ctx, o.URI); err != nil {
		return nil, fmt.Errorf("ACME order for %s: %w", s.host, err)
	}
	// The CSR is signed with the persona's own key: the key, and so the
	// TLSA record, survives every renewal (RFC 7671 §8.1).
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: s.names()}, s.key)
	if err != nil {
		return nil, fmt.Errorf("CSR for %s: %w", s.host, err)
	}
	chain, _, err := c.CreateCertFromOrder(ctx, o, csr, true)
	if err != nil {
		return nil, fmt.Errorf("ACME finalize for %s: %w", s.host, err)
	}
	return chain, nil
}

// authorize satisfies one authorization with dns-01 (RFC 8555 §8.4): the
// TXT record _acme-challenge.<host> carries the key authorization's digest
// while the CA validates, and is removed afterwards whatever the outcome.
func (a *acmeIssuer) authorize(ctx context.Context, c *acme.Client, url string, log *slog.Logger) error {
	z, err := c.GetAuthorization(ctx, url)
	if err != nil {
		return fmt.Errorf("ACME authorization %s: %w", url, err)
	}
	host := z.Identifier.Value
	switch z.Status {
	case acme.StatusValid:
		return nil // reused (CAs keep valid authorizations for a while)
	case acme.StatusPending:
	default:
		return fmt.Errorf("ACME authorization for %s is %s", host, z.Status)
	}
	var chal *acme.Challenge
	for _, ch := range z.Challenges {
		if ch.Type == ChallengeDNS01 {
			chal = ch
		}
	}
	if chal == nil {
		return fmt.Errorf("ACME CA offers no dns-01 challenge for %s", host)
	}
	value, err := c.DNS01ChallengeRecord(chal.Token)
	if err != nil {
		return err
	}
	name := "_acme-challenge." + host + "."
	if err := a.pub.SetChallenge(name, []string{value}); err != nil {
		return fmt.Errorf("publishing %s: %w", name, err)
	}
	defer func() {
		if err := a.pub.ClearChallenge(name); err != nil {
			log.Error("removing ACME challenge record failed", "name", name, "err", err)
		}
	}()
	log.Info("ACME dns-01 challenge published", "name", name)
	if _, err := c.Accept(ctx, chal); err != nil {
		return fmt.Errorf("ACME accept challenge for %s: %w", host, err)
	}
	if _, err := c.WaitAuthorization(ctx, z.URI); err != nil {
		return fmt.Errorf("ACME validation of %s: %w", host, err)
	}
	return nil
}
