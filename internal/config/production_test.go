package config

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addrList(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// TestProduction: the example filled in with a site's values validates and
// holds them everywhere the example had its own (IPv4 only, dual stack),
// with no example value or EXAMPLE mark left; bad values are refused
// naming what is wrong.
func TestProduction(t *testing.T) {
	site := Site{ZoneA: "A.Tests.Example.ORG.", ZoneB: "b.tests.example.org", Addrs: addrList("198.51.100.7"),
		PolicyAddrs: addrList("198.51.100.8"), ACMEEmail: "ops@example.org", WebURL: "https://tests.example.org/"}
	text, err := Production(site)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Default()
	if err := Parse(&cfg, text); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ what, got, want string }{
		{"zones.a", cfg.Zones.A, "a.tests.example.org."},
		{"zones.b", cfg.Zones.B, "b.tests.example.org."},
		{"zones.tlsrpt_address", cfg.Zones.TLSRPTAddress, "tlsrpt@a.tests.example.org"},
		{"dns.listen", strings.Join(cfg.DNS.Listen, " "), "198.51.100.7:53"},
		{"smtp.listen", strings.Join(cfg.SMTP.Listen, " "), "198.51.100.7:25"},
		{"policy_host.listen", strings.Join(cfg.PolicyHost.Listen, " "), "198.51.100.8:443"},
		{"zones.mx_addresses", strings.Join(cfg.Zones.MXAddresses, " "), "198.51.100.7"},
		{"zones.policy_host_addresses", strings.Join(cfg.Zones.PolicyHostAddresses, " "), "198.51.100.8"},
		{"result_mail.source_address", cfg.ResultMail.SourceAddress, "198.51.100.7"},
		{"acme.email", cfg.ACME.Email, "ops@example.org"},
		{"web.base_url", cfg.Web.BaseURL, "https://tests.example.org"},
		{"data_dir", cfg.DataDir, "/var/lib/mailsec"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	for _, left := range []string{"mailtest.example", "192.0.2.", "2001:db8:", "example.net", "EXAMPLE"} {
		if strings.Contains(text, left) {
			t.Errorf("%q left in:\n%s", left, text)
		}
	}

	dual := site
	dual.Addrs, dual.PolicyAddrs = addrList("198.51.100.7", "2001:db8:7::25"), addrList("198.51.100.8", "2001:db8:7::443")
	dual.DataDir = "/srv/mailsec"
	text, err = Production(dual)
	if err != nil {
		t.Fatal(err)
	}
	cfg = Default()
	if err := Parse(&cfg, text); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.SMTP.Listen, []string{"198.51.100.7:25", "[2001:db8:7::25]:25"}) || cfg.DataDir != "/srv/mailsec" ||
		!slices.Equal(cfg.Zones.NSAddresses, []string{"198.51.100.7", "2001:db8:7::25"}) {
		t.Errorf("dual stack: smtp.listen %v, ns_addresses %v, data_dir %s", cfg.SMTP.Listen, cfg.Zones.NSAddresses, cfg.DataDir)
	}

	for _, bad := range []struct {
		name string
		edit func(*Site)
		want string
	}{
		{"no zone A", func(s *Site) { s.ZoneA = "" }, "zone A"},
		{"same zones", func(s *Site) { s.ZoneB = s.ZoneA }, "both"},
		{"no addresses", func(s *Site) { s.Addrs = nil }, "addresses"},
		{"no e-mail", func(s *Site) { s.ACMEEmail = "ops" }, "e-mail"},
		{"http URL", func(s *Site) { s.WebURL = "http://tests.example.org" }, "web URL"},
	} {
		s := site
		bad.edit(&s)
		if _, err := Production(s); !errors.Is(err, ErrSite) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want ErrSite naming %q", bad.name, err, bad.want)
		}
	}
}
