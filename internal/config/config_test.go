package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if cfg.Timing.DowngradeWindow.Duration != 3*time.Minute || cfg.Timing.MXRotation.Duration != 5*time.Minute ||
		cfg.Timing.EpisodeQuiet.Duration != 10*time.Minute {
		t.Fatal("DESIGN.md §3 defaults changed")
	}
}

func TestParseErrorsNameTheKey(t *testing.T) {
	tests := []struct {
		name, text, want string
	}{
		{"unknown key", "[dns]\nlisten_on = [\"127.0.0.1:53\"]", "unknown key dns.listen_on"},
		{"unknown section", "[smpt]\nx = 1", "unknown key smpt"},
		{"bad duration", "[timing]\nmx_rotation = \"5 minutes\"", "not a duration"},
		{"too short", "[timing]\nmx_rotation = \"100ms\"", "timing.mx_rotation"},
		{"episode quiet zero", "[timing]\nepisode_quiet = \"0s\"", "timing.episode_quiet: 0s is too short"},
		{"bad address", "[zones]\nmx_addresses = [\"mx.example\"]", "zones.mx_addresses: \"mx.example\" is not an IP address"},
		{"no mx address", "[zones]\nmx_addresses = []", "zones.mx_addresses: needs at least one address"},
		{"bad listen", "[dns]\nlisten = [\"localhost:53\"]", "dns.listen"},
		{"same zones", "[zones]\na = \"x.example.\"\nb = \"X.example.\"", "zones.b: must differ"},
		{"nested zones", "[zones]\na = \"x.example.\"\nb = \"b.x.example.\"", "nested"},
		{"not a name", "[zones]\na = \"bad..name\"", "zones.a"},
		{"single label", "[zones]\na = \"example\"", "zones.a"},
		{"host label", "[zones.host_addresses]\nmx9 = [\"127.0.0.9\"]", "zones.host_addresses.mx9: unknown host"},
		{"mx ttl above rotation", "[zones]\nmx_ttl = \"10m\"", "zones.mx_ttl"},
		{"too many slots", "[zones]\nslots = 100", "zones.slots: 100 is out of range"},
		{"negative slots", "[zones]\nslots = -1", "zones.slots"},
		{"slot rest below a TTL", "[zones]\nslot_rest = \"4m\"", "zones.slot_rest: 4m0s is shorter than the longest TTL of the zones (5m0s)"},
		{"refresh above validity", "[dnssec]\nrefresh_before = \"400h\"", "dnssec.refresh_before"},
		{"broken host label", "[dnssec]\nbroken_hosts = [\"a.b\"]", "dnssec.broken_hosts"},
		{"broken host is a persona", "[dnssec]\nbroken_hosts = [\"mx4\"]", "dnssec.broken_hosts: \"mx4\" is one of the service's own hosts"},
		{"broken host on a shared address", "[zones]\nmx_addresses = [\"127.0.0.20\"]\n[zones.host_addresses]\nbroken = [\"127.0.0.20\"]\n[dnssec]\nbroken_hosts = [\"broken\"]", "zones.host_addresses.broken: 127.0.0.20 is shared with another host"},
		{"broken host on a persona's address", "[zones.host_addresses]\nbroken = [\"127.0.0.4\"]\nmx4 = [\"127.0.0.4\"]\n[dnssec]\nbroken_hosts = [\"broken\"]", "zones.host_addresses.broken: 127.0.0.4 is shared with another host"},
		{"IPv6-only host over IPv4", "[zones.host_addresses]\nmx-v6 = [\"127.0.0.6\"]", "zones.host_addresses.mx-v6: 127.0.0.6 is not an IPv6 address"},
		{"IPv6-only host on a mapped address", "[zones.host_addresses]\nmx-v6 = [\"::ffff:127.0.0.6\"]", "is not an IPv6 address"},
		{"IPv6-only host with two addresses", "[zones.host_addresses]\nmx-v6 = [\"fd00::6:0\", \"fd00::7:0\"]", "zones.host_addresses.mx-v6: needs exactly one address"},
		{"IPv6-only host's slot on a persona", "[zones]\nslots = 5\n[zones.host_addresses]\nmx-v6 = [\"fd00::6:0\"]\nmx4 = [\"fd00::6:5\"]", "zones.host_addresses.mx-v6: fd00::6:5 (one of its 6 slot addresses fd00::6:0-fd00::6:5) is another host's"},
		{"IPv6-only host past the end", "[zones]\nslots = 2\n[zones.host_addresses]\nmx-v6 = [\"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\"]", "leaves the IPv6 address space"},
		{"own address of an unlisted broken host", "[zones.host_addresses]\nbroken = [\"127.0.0.29\"]", "zones.host_addresses.broken: unknown host"},
		{"ns names count", "[zones]\nns_addresses = [\"127.0.0.10\", \"127.0.0.11\"]\nns_names = [\"ns1\"]", "zones.ns_names: 1 names for 2 zones.ns_addresses"},
		{"ns name not a label", "[zones]\nns_addresses = [\"127.0.0.10\"]\nns_names = [\"ns.1\"]", "zones.ns_names: \"ns.1\" is not a host name label"},
		{"ns name is a persona", "[zones]\nns_addresses = [\"127.0.0.10\"]\nns_names = [\"mx4\"]", "zones.ns_names: \"mx4\" is a name the zones use"},
		{"ns name is a slot", "[zones]\nns_addresses = [\"127.0.0.10\"]\nns_names = [\"s001\"]", "zones.ns_names: \"s001\" is a name the zones use"},
		{"udp size", "[dns]\nudp_size = 100", "dns.udp_size"},
		{"log level", "[log]\nlevel = \"loud\"", "log.level"},
		{"wrong type", "[dns]\nudp_size = \"big\"", "line 2"},
		{"syntax", "[dns\nudp_size = 1", "to end table name"},
		{"store driver", "[store]\ndriver = \"mysql\"", "store.driver"},
		{"postgres without a DSN", "[store]\ndriver = \"postgres\"", "store.dsn: must name the PostgreSQL database"},
		{"node name with a space", "[node]\nname = \"node 1\"", "node.name"},
		{"node heartbeat", "[node]\nheartbeat = \"10ms\"", "node.heartbeat"},
		{"node dead before three heartbeats", "[node]\nheartbeat = \"10s\"\ndead_after = \"20s\"", "node.dead_after"},
		{"inbound timeout", "[inbound]\ntimeout = \"0s\"", "inbound.timeout"},
		{"inbound concurrency", "[inbound]\nconcurrency = 0", "inbound.concurrency"},
		{"inbound parallel checks", "[inbound]\nparallel_checks = 1000", "inbound.parallel_checks"},
		{"inbound max hosts", "[inbound]\nmax_hosts = 0", "inbound.max_hosts"},
		{"inbound max addresses", "[inbound]\nmax_addresses = 17", "inbound.max_addresses"},
		{"tlsrpt size above the message limit", "[smtp]\nmax_message_bytes = 100000\ntlsrpt_max_bytes = 200000", "smtp.tlsrpt_max_bytes"},
		{"tlsrpt rate", "[smtp]\ntlsrpt_per_client_per_hour = 0", "smtp.tlsrpt_per_client_per_hour"},
		{"fixed tests per client", "[smtp]\nfixed_tests_per_client = 0", "smtp.fixed_tests_per_client"},
		{"fixed tests open", "[smtp]\nfixed_tests_per_client = 30\nfixed_tests_open_max = 20", "smtp.fixed_tests_open_max"},
		{"tlsrpt reports", "[smtp]\ntlsrpt_max_reports = 0", "smtp.tlsrpt_max_reports"},
		{"tlsrpt stored bytes", "[smtp]\ntlsrpt_max_stored_bytes = 1000", "smtp.tlsrpt_max_stored_bytes"},
		{"tlsrpt retention", "[smtp]\ntlsrpt_retention = \"10m\"", "smtp.tlsrpt_retention"},
		{"policy fetches per client", "[policy_host]\nmax_fetches_per_client_per_hour = 0", "policy_host.max_fetches_per_client_per_hour"},
		{"query log rows", "[dns]\nquery_log_rows_per_second = 0", "dns.query_log_rows_per_second"},
		{"query log rows per client", "[dns]\nquery_log_rows_per_client_per_second = 5000", "dns.query_log_rows_per_client_per_second"},
		{"inbound unknown key", "[inbound]\nallow_privat = true", "unknown key inbound.allow_privat"},
		{"session max", "[smtp]\nsession_max = \"0s\"", "smtp.session_max: 0s is too short"},
		{"web host name", "[web]\nhostnames = [\"http://x.example\"]", "web.hostnames: \"http://x.example\" is not a host name"},
		{"event streams", "[web]\nmax_event_streams = 2\nmax_event_streams_per_client = 3", "web.max_event_streams"},
		{"event stream lifetime", "[web]\nevent_stream_max = \"0s\"", "web.event_stream_max"},
		{"check concurrency", "[web]\ncheck_concurrency = 0", "web.check_concurrency"},
		{"check cache", "[web]\ncheck_cache = \"0s\"", "web.check_cache"},
		{"trusted proxy", "[web]\ntrusted_proxies = [\"proxy.example\"]", "web.trusted_proxies: \"proxy.example\" is neither"},
		{"allowed destination", "[network]\nallow_destinations = [\"127.0.0.0/33\"]", "network.allow_destinations: \"127.0.0.0/33\" is neither"},
		{"allowed destination host bits", "[network]\nallow_destinations = [\"127.0.0.1/8\"]", "network.allow_destinations: \"127.0.0.1/8\" has host bits set"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			err := Parse(&cfg, tc.text)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailsec.toml")
	text := "data_dir = \"state\"\n[store]\ndsn = \"db/x.db\"\n[timing]\nmx_rotation = \"12s\"\n[zones]\nmx_ttl = \"2s\"\n"
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != filepath.Join(dir, "state") || cfg.StorePath() != filepath.Join(dir, "db/x.db") {
		t.Fatalf("paths not resolved: %q %q", cfg.DataDir, cfg.StorePath())
	}
	if cfg.Timing.MXRotation.Duration != 12*time.Second {
		t.Fatalf("rotation %v", cfg.Timing.MXRotation)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml")); err == nil || errors.Is(err, ErrInvalid) {
		t.Fatalf("a missing file is an I/O error, not ErrInvalid: %v", err)
	}
}

// TestPostgresStore: store.driver postgres takes its DSN as written (not as
// a path relative to the file), and StoreName shows it without a password.
func TestPostgresStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mailsec.toml")
	const dsn = "postgres://mailsec:s3cret@db.example:5432/mailsec?sslmode=verify-full"
	if err := os.WriteFile(path, []byte("[store]\ndriver = \"postgres\"\ndsn = \""+dsn+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StorePath() != dsn {
		t.Errorf("StorePath = %q, want the DSN as written", cfg.StorePath())
	}
	for _, tc := range []struct{ dsn, want string }{
		{dsn, "postgres://mailsec:xxxxx@db.example:5432/mailsec?sslmode=verify-full"},
		{"postgresql://mailsec@db.example/mailsec?password=s3cret", "postgresql://mailsec@db.example/mailsec?password=xxxxx"},
		{"host=db.example user=mailsec password=s3cret dbname=mailsec", "host=db.example user=mailsec password=xxxxx dbname=mailsec"},
		{"postgres://mailsec:s3cret@[::1/db", "(a DSN that does not parse)"},
		{"host=db.example password = 's3c ret\\' x' dbname=m", "host=db.example password=xxxxx dbname=m"},
		{"host=db.example password='s3c ret", "(a DSN that does not parse)"},
	} {
		cfg.Store.DSN = tc.dsn
		if got := cfg.StoreName(); got != tc.want {
			t.Errorf("StoreName(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}

// FuzzParse: arbitrary text never panics, and what is accepted validates.
func FuzzParse(f *testing.F) {
	f.Add("[dns]\nlisten = [\"127.0.0.1:53\"]\n")
	f.Add("[zones]\na = \"a.example.\"\n[zones.host_addresses]\nmx4 = [\"::1\"]\n")
	f.Add("[timing]\nmx_rotation = \"1s\"\n")
	f.Fuzz(func(t *testing.T, text string) {
		cfg := Default()
		if err := Parse(&cfg, text); err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("accepted an invalid config: %v", err)
		}
	})
}

func TestAllowedDestinations(t *testing.T) {
	cfg := Default()
	if err := Parse(&cfg, "[network]\nallow_destinations = [\"127.0.0.0/8\", \"::1\", \"10.1.2.3\"]"); err != nil {
		t.Fatal(err)
	}
	got, err := cfg.AllowedDestinations()
	if err != nil {
		t.Fatal(err)
	}
	if want := "[127.0.0.0/8 ::1/128 10.1.2.3/32]"; fmt.Sprint(got) != want {
		t.Errorf("allowed %v, want %s", got, want)
	}
	def := Default()
	if d, _ := def.AllowedDestinations(); len(d) != 0 {
		t.Errorf("default allows %v", d)
	}
}

func TestWebHostnames(t *testing.T) {
	cfg := Default()
	if got := fmt.Sprint(cfg.WebHostnames()); got != "[127.0.0.1 localhost]" {
		t.Errorf("default: %s", got)
	}
	if err := Parse(&cfg, "[web]\nlisten = [\"[::]:8080\", \"192.0.2.1:80\"]\nbase_url = \"https://MailSec.example/\""); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.WebHostnames()); got != "[MailSec.example 192.0.2.1]" {
		t.Errorf("derived: %s", got)
	}
	if err := Parse(&cfg, "[web]\nhostnames = [\"mailsec.example\", \"[2001:db8::1]\"]"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(cfg.WebHostnames()); got != "[mailsec.example [2001:db8::1]]" {
		t.Errorf("configured: %s", got)
	}
}

// TestBrokenHostOwnAddress: a broken host may have addresses of its own,
// which make it an MX host (docs/dns.md "Broken host").
func TestBrokenHostOwnAddress(t *testing.T) {
	cfg := Default()
	if err := Parse(&cfg, "[zones.host_addresses]\nbroken = [\"127.0.0.29\", \"fd00::29\"]\n[dnssec]\nbroken_hosts = [\"broken\"]"); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Zones.HostAddresses["broken"]; len(got) != 2 {
		t.Fatalf("broken host addresses %v", got)
	}
}

// TestIPv6HostOwnAddresses: the IPv6-only host takes one IPv6 address, the
// first of its slots' (docs/dns.md "IPv6-only host"); the address after
// its last slot may be another host's.
func TestIPv6HostOwnAddresses(t *testing.T) {
	cfg := Default()
	if err := Parse(&cfg, "[zones]\nslots = 5\n[zones.host_addresses]\nmx-v6 = [\"fd00::6:0\"]\nmx4 = [\"fd00::6:6\"]"); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Zones.HostAddresses["mx-v6"]; len(got) != 1 {
		t.Fatalf("IPv6-only host addresses %v", got)
	}
}
