package config

import "testing"

// TestPackagedConfiguration: the Debian package's /etc/mailsec/mailsec.toml
// (production.toml, the example configuration of docs/deploy.md) loads and
// validates, and says what a public instance needs: ACME through DNS-01,
// the privileged ports, a private metrics listener.
func TestPackagedConfiguration(t *testing.T) {
	cfg, err := Load("production.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		what      string
		got, want string
	}{
		{"data_dir", cfg.DataDir, "/var/lib/mailsec"},
		{"tls.issuer", cfg.TLS.Issuer, "acme"},
		{"acme.challenge", cfg.ACME.Challenge, "dns-01"},
		{"smtp.listen", cfg.SMTP.Listen[0], "192.0.2.10:25"},
		{"dns.listen", cfg.DNS.Listen[0], "192.0.2.10:53"},
		{"policy_host.listen", cfg.PolicyHost.Listen[0], "192.0.2.11:443"},
		{"metrics.listen", cfg.Metrics.Listen[0], "127.0.0.1:9100"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}
