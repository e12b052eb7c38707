package config

import (
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec/internal/dnsname"
)

// productionExample is the example configuration of a public instance
// (docs/deploy.md), with documentation names and addresses (RFC 2606,
// RFC 5737, RFC 3849); the Debian package installs it as
// /etc/mailsec/mailsec.toml and Production fills it in.
//
//go:embed production.toml
var productionExample string

// ProductionExample returns the example production configuration as text.
func ProductionExample() string { return productionExample }

// Site is what differs between two public instances: `mailsec init`'s flags.
type Site struct {
	ZoneA, ZoneB string
	// Addrs: NS, MX and the result mails' source (IPv4 and/or IPv6);
	// PolicyAddrs: mta-sts.A (its port 443).
	Addrs, PolicyAddrs []netip.Addr
	ACMEEmail          string
	WebURL             string // the public URL of the web UI (behind a TLS proxy)
	DataDir            string // "" keeps /var/lib/mailsec
}

// ErrSite: a Site value is missing or malformed; the message names it.
var ErrSite = errors.New("config: site")

// The example values in production.toml that Production replaces.
const (
	exampleZoneA   = "a.mailtest.example"
	exampleZoneB   = "b.mailtest.example"
	exampleV4      = "192.0.2.10"
	exampleV6      = "2001:db8::10"
	examplePolicy4 = "192.0.2.11"
	examplePolicy6 = "2001:db8::11"
	exampleEmail   = "postmaster@example.net"
	exampleWebURL  = "https://mailtest.example"
)

// exampleMark is the comment that marks a value to replace.
var exampleMark = regexp.MustCompile(` *# EXAMPLE(:[^\n]*)?`)

// Production fills the example production configuration in with s and
// returns it, validated.
func Production(s Site) (string, error) {
	a, errA := dnsname.NormalizeDomain(s.ZoneA)
	b, errB := dnsname.NormalizeDomain(s.ZoneB)
	switch {
	case s.ZoneA == "" || errA != nil:
		return "", fmt.Errorf("%w: zone A %q: %v", ErrSite, s.ZoneA, errA)
	case s.ZoneB == "" || errB != nil:
		return "", fmt.Errorf("%w: zone B %q: %v", ErrSite, s.ZoneB, errB)
	case a == b:
		return "", fmt.Errorf("%w: zones A and B are both %s", ErrSite, a)
	case len(s.Addrs) == 0 || len(s.PolicyAddrs) == 0:
		return "", fmt.Errorf("%w: the addresses and the policy host's addresses are required", ErrSite)
	case !strings.Contains(s.ACMEEmail, "@"):
		return "", fmt.Errorf("%w: ACME e-mail %q", ErrSite, s.ACMEEmail)
	}
	if u, err := url.Parse(s.WebURL); err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("%w: web URL %q: want https://HOST", ErrSite, s.WebURL)
	}
	// The example's opening comment (what to replace) becomes the site's.
	_, body, _ := strings.Cut(productionExample, "\n\n")
	text := "# mailsec on a public server, written by 'mailsec init' (docs/deploy.md).\n" +
		"# Check it with: mailsec -config FILE config; every key: docs/configuration.md.\n\n" + body
	// Address lists first (they are quoted pairs in the example), then the
	// source address, then the names.
	list := func(addrs []netip.Addr, port uint16) string {
		out := make([]string, len(addrs))
		for i, ad := range addrs {
			if port == 0 {
				out[i] = strconv.Quote(ad.String())
			} else {
				out[i] = strconv.Quote(netip.AddrPortFrom(ad, port).String())
			}
		}
		return strings.Join(out, ", ")
	}
	pair := func(v4, v6 string, port uint16) string {
		return list([]netip.Addr{netip.MustParseAddr(v4), netip.MustParseAddr(v6)}, port)
	}
	for _, port := range []uint16{0, 53, 25, 443} {
		text = strings.ReplaceAll(text, pair(examplePolicy4, examplePolicy6, port), list(s.PolicyAddrs, port))
		text = strings.ReplaceAll(text, pair(exampleV4, exampleV6, port), list(s.Addrs, port))
	}
	source := s.Addrs[0]
	text = strings.ReplaceAll(text, `source_address = "`+exampleV4+`"`, `source_address = "`+source.String()+`"`)
	text = strings.ReplaceAll(text, exampleWebURL, strings.TrimSuffix(s.WebURL, "/"))
	text = strings.ReplaceAll(text, exampleEmail, s.ACMEEmail)
	text = strings.ReplaceAll(text, exampleZoneA, a)
	text = strings.ReplaceAll(text, exampleZoneB, b)
	if s.DataDir != "" {
		text = strings.Replace(text, `data_dir = "/var/lib/mailsec"`, fmt.Sprintf("data_dir = %q", s.DataDir), 1)
	}
	text = exampleMark.ReplaceAllString(text, "")
	cfg := Default()
	if err := Parse(&cfg, text); err != nil { // validates
		return "", err
	}
	return text, nil
}
