package cli

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"

	"github.com/mailsec/mailsec/internal/config"
)

// runInit: 'init' writes the production configuration of docs/deploy.md
// filled in from a few flags, validated, to -o (or stdout); an existing
// file is replaced only with -force.
func runInit(e *env, args []string) error {
	fs := newFlags(e, "init", "-zone-a NAME -zone-b NAME -addr IP[,IP] -policy-addr IP[,IP] -acme-email ADDR -web-url URL [-data-dir DIR] [-o FILE [-force]]")
	var site config.Site
	fs.StringVar(&site.ZoneA, "zone-a", "", "zone A, delegated to this server (e.g. a.mailtest.example)")
	fs.StringVar(&site.ZoneB, "zone-b", "", "zone B, delegated to this server (e.g. b.mailtest.example)")
	addrs := fs.String("addr", "", "the server's addresses for DNS, SMTP and the result mails: IPv4 and/or IPv6, comma-separated")
	policy := fs.String("policy-addr", "", "the addresses of mta-sts.<zone A> (its port 443), comma-separated")
	fs.StringVar(&site.ACMEEmail, "acme-email", "", "the ACME account's e-mail (the CA's expiry notices)")
	fs.StringVar(&site.WebURL, "web-url", "", "the web UI's public https:// URL (behind a TLS reverse proxy)")
	fs.StringVar(&site.DataDir, "data-dir", "", "the data directory (default /var/lib/mailsec)")
	out := fs.String("o", "", "write to this file (mode 0640) instead of standard output")
	force := fs.Bool("force", false, "replace an existing -o file")
	if err := parse(fs, args); err != nil {
		return err
	}
	var err error
	if site.Addrs, err = addrFlag("addr", *addrs); err != nil {
		return err
	}
	if site.PolicyAddrs, err = addrFlag("policy-addr", *policy); err != nil {
		return err
	}
	text, err := config.Production(site)
	if errors.Is(err, config.ErrSite) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	if *out == "" {
		_, err := fmt.Fprint(e.stdout, text)
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(*out, flags, 0o640)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%w: %s exists (-force replaces it)", errUsage, *out)
	}
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "wrote %s: check it with 'mailsec -config %s config'\n", *out, *out)
	return nil
}

// addrFlag parses a comma-separated list of IP addresses of flag name.
func addrFlag(name, value string) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, s := range strings.Split(value, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%w: -%s: %q is not an IP address", errUsage, name, s)
		}
		out = append(out, a.Unmap())
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: -%s is required", errUsage, name)
	}
	return out, nil
}
