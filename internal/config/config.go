// Package config loads mailsec's configuration: one TOML file plus flags.
//
// Every key has a default (see Default and docs/configuration.md), so an empty
// file, or no file at all, gives a working service on unprivileged loopback
// ports. Load rejects unknown keys and invalid values with an error that names
// the key, so a typo never silently falls back to a default.
package config

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/providernotes"
	"github.com/mailsec/mailsec/internal/testslot"
)

// ErrInvalid is wrapped by every validation error, so callers can tell a bad
// configuration (exit 2, fix the file) from an I/O failure.
var ErrInvalid = errors.New("invalid configuration")

// Duration is a time.Duration that reads and writes Go duration strings
// ("90s", "5m", "168h") in TOML.
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration (use e.g. \"90s\", \"5m\", \"168h\"): %q", b)
	}
	d.Duration = v
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Config is the whole configuration. The TOML keys are the lower-case names in
// the struct tags; docs/configuration.md explains each one.
type Config struct {
	// DataDir holds keys, certificates and the SQLite store. Relative paths
	// are taken relative to the directory of the configuration file.
	DataDir string `toml:"data_dir"`
	// MemoryLimit is the Go runtime's soft memory limit for `mailsec
	// serve`, in bytes: near it the garbage collector works harder, so the
	// DATA memory budget is not doubled by collection headroom. 0: the
	// DATA budget plus 256 MiB; -1: none (GOMEMLIMIT, if set, wins).
	MemoryLimit int64      `toml:"memory_limit"`
	Log         Log        `toml:"log"`
	Store       Store      `toml:"store"`
	Node        Node       `toml:"node"`
	Zones       Zones      `toml:"zones"`
	DNS         DNS        `toml:"dns"`
	DNSSEC      DNSSEC     `toml:"dnssec"`
	Timing      Timing     `toml:"timing"`
	SMTP        SMTP       `toml:"smtp"`
	TLS         TLS        `toml:"tls"`
	ACME        ACME       `toml:"acme"`
	PolicyHost  PolicyHost `toml:"policy_host"`
	Resolver    Resolver   `toml:"resolver"`
	Web         Web        `toml:"web"`
	ResultMail  ResultMail `toml:"result_mail"`
	Inbound     Inbound    `toml:"inbound"`
	Metrics     Metrics    `toml:"metrics"`
	Network     Network    `toml:"network"`
}

// Network configures the service's own outgoing connections (the result
// mails, the inbound check).
type Network struct {
	// AllowDestinations are address ranges (CIDR, or single addresses)
	// the service connects to although they are not public. Empty in
	// production: loopback, RFC 1918, CGNAT, link-local, ULA and the
	// other special-purpose ranges are refused wherever DNS points
	// (internal/netguard). A lab on 127.0.0.0/8 lists that.
	AllowDestinations []string `toml:"allow_destinations"`
}

// Inbound configures the inbound check (`mailsec check`, and the check of
// every test's sender domain; docs/inbound.md).
type Inbound struct {
	// AllowPrivate lets the check contact private, loopback, link-local
	// and other reserved addresses. Off in production: the MX records of
	// any domain could otherwise point the service at the operator's
	// own network.
	AllowPrivate bool `toml:"allow_private"`
	// Timeout is the one deadline of a whole check.
	Timeout Duration `toml:"timeout"`
	// Concurrency bounds the SMTP probes of one check running at once.
	Concurrency int `toml:"concurrency"`
	// ExtraRoots is a PEM file of CA roots trusted besides the system's
	// (a lab CA).
	ExtraRoots string `toml:"extra_roots"`
	// CheckSenders runs the check on the sender domain of every test.
	CheckSenders bool `toml:"check_senders"`
	// CacheTTL: a domain checked less than this ago is not checked again
	// for another test; the stored result is reused.
	CacheTTL Duration `toml:"cache_ttl"`
	// ParallelChecks bounds the sender-domain checks running at once.
	ParallelChecks int `toml:"parallel_checks"`
	// MaxHosts and MaxAddresses bound the MX hosts of a domain and the
	// addresses of a host that one check tests; the rest are counted as
	// omitted.
	MaxHosts     int `toml:"max_hosts"`
	MaxAddresses int `toml:"max_addresses"`
	// TLSVersions probes each address for the TLS versions and weak
	// cipher suites it accepts: up to four more sessions per address.
	TLSVersions bool `toml:"tls_versions"`
}

// Web configures the web UI and JSON API (docs/web.md, docs/api.md).
type Web struct {
	// Listen addresses (host:port); empty turns the web UI off.
	Listen []string `toml:"listen"`
	// BaseURL is how users reach the UI: the links in result mails and
	// pages. "" means http://<first listen address>.
	BaseURL string `toml:"base_url"`
	// Providers are domains the operator marks as public mail providers:
	// the public table shows the latest result of each.
	Providers []string `toml:"providers"`
	// ProviderNotesFile is a TOML file of the operator's comments and
	// footnotes per provider (internal/providernotes, docs/providers.md);
	// "" for none. Read and validated at start (ProviderNotes); a
	// relative path is taken from the configuration file's directory.
	ProviderNotesFile string `toml:"provider_notes_file"`
	// Retention: tests (with their connections and results) older than
	// this are deleted.
	Retention Duration `toml:"retention"`
	// StartLimit and CheckLimit bound new tests and inbound checks per
	// client address and hour.
	StartLimit int `toml:"start_limit"`
	CheckLimit int `toml:"check_limit"`
	// Hostnames are the host names under which the private pages (a
	// test's pages and API answers) answer; others get 421. Empty means
	// the host of base_url and the listen addresses (WebHostnames).
	Hostnames []string `toml:"hostnames"`
	// MaxEventStreams and MaxEventStreamsPerClient bound the live pages'
	// open event streams, in total and per client address (IPv6: /64);
	// EventStreamMax ends each stream (the browser reconnects).
	MaxEventStreams          int      `toml:"max_event_streams"`
	MaxEventStreamsPerClient int      `toml:"max_event_streams_per_client"`
	EventStreamMax           Duration `toml:"event_stream_max"`
	// CheckConcurrency bounds the inbound checks of the web form and the
	// API running at once, all clients together; CheckCache is how long
	// a domain's result is reused instead of probing again.
	CheckConcurrency int      `toml:"check_concurrency"`
	CheckCache       Duration `toml:"check_cache"`
	// TrustedProxies are the reverse proxies (CIDR, or addresses) whose
	// X-Forwarded-For names the client for the per-client limits.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// ResultMail configures the result mails (docs/report.md).
type ResultMail struct {
	// Enabled sends result mails to authenticated senders.
	Enabled bool `toml:"enabled"`
	// From is the sender address, in zone A (SPF and DMARC of A cover
	// it); "" means mailsec@<zone A>.
	From string `toml:"from"`
	// Name is the From display name.
	Name string `toml:"name"`
	// Selector of the DKIM key published in zone A.
	Selector string `toml:"selector"`
	// SourceAddress is the local address the mails leave from; the
	// derived SPF record of the zones includes it. "" lets the system
	// choose (it must then be one of zones.mx_addresses for SPF).
	SourceAddress string `toml:"source_address"`
	// Port is the recipients' SMTP port (25; the lab may use another).
	Port int `toml:"port"`
	// Roots is a PEM file of extra CA roots (MTA-STS hosts in a lab).
	Roots string `toml:"roots"`
	// RateLimit mails per recipient domain per RateWindow.
	RateLimit  int      `toml:"rate_limit"`
	RateWindow Duration `toml:"rate_window"`
	// RetryBase doubles per attempt up to RetryMax; MaxAttempts ends it.
	RetryBase   Duration `toml:"retry_base"`
	RetryMax    Duration `toml:"retry_max"`
	MaxAttempts int      `toml:"max_attempts"`
	// AttemptTimeout bounds one delivery attempt as a whole, so that a
	// recipient MX that never answers (a tarpit) holds up nothing else.
	AttemptTimeout Duration `toml:"attempt_timeout"`
	// Interval of the loops that finalise tests and send mails.
	Interval Duration `toml:"interval"`
}

// SMTP configures the SMTP personas (DESIGN.md §2).
type SMTP struct {
	// Listen addresses (host:port) of the personas; port 25 in production.
	Listen []string `toml:"listen"`
	// Hostname is the name in the greeting and EHLO reply; "" means the
	// name of zone A.
	Hostname string `toml:"hostname"`
	// MaxMessageBytes is the SIZE limit (RFC 1870).
	MaxMessageBytes int64 `toml:"max_message_bytes"`
	// MaxRecipients is the number of RCPT TO accepted per mail.
	MaxRecipients int `toml:"max_recipients"`
	// MaxConnectionsPerClient caps concurrent connections of one client
	// (ClientPrefixV4/V6); more get 421.
	MaxConnectionsPerClient int `toml:"max_connections_per_client"`
	// MaxConnections caps all concurrent connections; more get 421.
	MaxConnections int `toml:"max_connections"`
	// DataMemoryBudget bounds the bytes all DATA phases hold in memory
	// together; a message past it is answered 452 4.3.1 (try later).
	DataMemoryBudget int64 `toml:"data_memory_budget"`
	// ClientPrefixV4 and ClientPrefixV6 define "one client" for the
	// downgrade window and the connection cap: a provider's MTAs share a
	// network, and the window must not restart for each of them.
	ClientPrefixV4 int `toml:"client_prefix_v4"`
	ClientPrefixV6 int `toml:"client_prefix_v6"`
	// FixedLocalParts are local parts accepted in A and B besides the
	// per-test t-<token> addresses (the seed's fixed addresses); such tests
	// are keyed by the envelope sender.
	FixedLocalParts []string `toml:"fixed_local_parts"`
	// FixedTestsPerClient caps the open tests of the fixed addresses one
	// client network (client_prefix_v4/v6) may have, FixedTestsOpenMax all
	// of them: anyone can write any MAIL FROM, and each new one would
	// otherwise be a new test open until test_expiry. Past a cap a new
	// sender's RCPT is answered 452 and nothing is stored.
	FixedTestsPerClient int `toml:"fixed_tests_per_client"`
	FixedTestsOpenMax   int `toml:"fixed_tests_open_max"`
	// AcceptAll answers 250 to every mail for A and B without test logic.
	// For load tests (bench/smtp) only.
	AcceptAll bool `toml:"accept_all"`
	// TLSRPTMaxBytes is the size limit of a mail to the TLS-RPT address
	// (RFC 8460 §5.3: reports are a few KiB of JSON, maybe gzipped).
	TLSRPTMaxBytes int64 `toml:"tlsrpt_max_bytes"`
	// TLSRPTPerClientPerHour is how many TLS-RPT mails one client
	// (client_prefix_v4/v6) may send per hour.
	TLSRPTPerClientPerHour int `toml:"tlsrpt_per_client_per_hour"`
	// TLSRPTMaxReports and TLSRPTMaxStoredBytes cap the TLS-RPT mails
	// stored; past them new ones are answered 452.
	TLSRPTMaxReports     int   `toml:"tlsrpt_max_reports"`
	TLSRPTMaxStoredBytes int64 `toml:"tlsrpt_max_stored_bytes"`
	// TLSRPTRetention: TLS-RPT mails received longer ago are deleted.
	TLSRPTRetention Duration `toml:"tlsrpt_retention"`
	// SessionMax bounds a connection's whole life: past it the client
	// gets 421 and is disconnected, so NOOPs cannot hold a slot for ever.
	SessionMax Duration `toml:"session_max"`
}

// TLS chooses where the CA-signed certificates (personas 5, 6, 7 and the
// MTA-STS policy host) come from.
type TLS struct {
	// Issuer is "acme", "static" (files in [tls.static]) or "local" (a
	// private CA kept in data_dir: demo, lab and tests). "" (default)
	// means "acme" when acme.directory is set, else "local".
	Issuer string `toml:"issuer"`
	// Static gives certificate and key files per host: mx5, mx6, mx7, mta-sts.
	Static map[string]StaticCert `toml:"static"`
	// RenewBefore renews a certificate when less than this validity remains.
	RenewBefore Duration `toml:"renew_before"`
}

// StaticCert is a certificate chain and its key, PEM files.
type StaticCert struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// ACME configures the ACME client (RFC 8555).
type ACME struct {
	// Directory is the CA's directory URL (Let's Encrypt, pebble in the lab).
	Directory string `toml:"directory"`
	// Email is the account contact; optional.
	Email string `toml:"email"`
	// CAFile holds extra PEM roots to trust for the directory's HTTPS
	// (pebble's own certificate in the lab).
	CAFile string `toml:"ca_file"`
	// Challenge is "dns-01" (answered by our own zone; default) or "http-01".
	Challenge string `toml:"challenge"`
}

// PolicyHost configures the HTTPS host of mta-sts.A (RFC 8461 §3.3).
type PolicyHost struct {
	// Listen addresses (host:port); port 443 in production.
	Listen []string `toml:"listen"`
	// MaxFetchesPerClientPerHour bounds the policy fetches stored per
	// client network (smtp.client_prefix_v4/v6) and hour; more are
	// answered, counted and logged, not stored.
	MaxFetchesPerClientPerHour int `toml:"max_fetches_per_client_per_hour"`
}

// Metrics configures the operator's Prometheus endpoint.
type Metrics struct {
	// Listen addresses (host:port) of GET /metrics; none by default. Keep
	// it off the public interfaces: the figures tell how close a cap is.
	Listen []string `toml:"listen"`
}

// Resolver is the DNS resolver mailsec itself uses (DKIM keys, the
// inbound check, result mails). DNSSEC status is read from its AD bit,
// which is trusted only from a resolver on loopback (DESIGN.md §5).
type Resolver struct {
	// Address is ip:port; "" means the first nameserver of /etc/resolv.conf.
	Address string `toml:"address"`
}

// Log configures log/slog output.
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// Store selects the database.
type Store struct {
	// Driver is "sqlite" (one node, the default) or "postgres".
	Driver string `toml:"driver"`
	// DSN is the SQLite file path (empty means DATA_DIR/mailsec.db), or
	// PostgreSQL's libpq URL or keyword/value string (required; its
	// password is never logged: StoreName).
	DSN string `toml:"dsn"`
}

// Node identifies this process among the nodes sharing one PostgreSQL
// store (docs/cluster.md).
type Node struct {
	// Name is recorded on the connections this node holds and in the
	// table of nodes; "" means the host name. Unique per node.
	Name string `toml:"name"`
	// Heartbeat: how often the node records that it lives, checks the
	// leader lock's session if it leads, and tries to take the lock if not
	// (the longest wait before a surviving node takes over from a leader
	// that died).
	Heartbeat Duration `toml:"heartbeat"`
	// DeadAfter: a node not heard of for this long is dead; the leader ends
	// its open connection records (so their tests can be finalised).
	DeadAfter Duration `toml:"dead_after"`
}

// NodeName is node.name, or the host name.
func (c *Config) NodeName() string {
	if c.Node.Name != "" {
		return c.Node.Name
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "localhost"
}

// Zones describes the two test zones of DESIGN.md §2.
type Zones struct {
	// A is the DNSSEC-signed zone with TLSA, MTA-STS and TLS-RPT (mx3–mx6).
	A string `toml:"a"`
	// B is the zone without TLSA and MTA-STS (mx7).
	B string `toml:"b"`
	// SignB signs zone B too (own key). B stays without TLSA and MTA-STS, so
	// its TLSA absence is then provable (secure NODATA).
	SignB bool `toml:"sign_b"`
	// NSAddresses are the addresses of the zones' name servers (glue): of
	// ns1.A and ns1.B unless NSNames names them.
	NSAddresses []string `toml:"ns_addresses"`
	// NSNames names the name server of each of NSAddresses (same length;
	// a name may repeat, for one server's IPv4 and IPv6 addresses): the
	// zones' NS records then name every one (ns1, ns2, ...), as registries
	// ask for at least two and several nodes serve (docs/cluster.md).
	// Empty: every address is ns1's.
	NSNames []string `toml:"ns_names"`
	// MXAddresses are the addresses every MX host shares (DESIGN.md §2: one
	// shared address, personas told apart by SNI and recipient).
	MXAddresses []string `toml:"mx_addresses"`
	// HostAddresses gives single hosts (mx3..mx7, mta-sts) their own
	// addresses instead of MXAddresses: the address then picks the persona.
	// "mx-v6" deploys the IPv6-only MX host: one IPv6 address, slot n's
	// host at that address plus n (docs/dns.md "IPv6-only host").
	HostAddresses map[string][]string `toml:"host_addresses"`
	// PolicyHostAddresses are the addresses of mta-sts.A; empty means MXAddresses.
	PolicyHostAddresses []string `toml:"policy_host_addresses"`
	// TTL of ordinary records.
	TTL Duration `toml:"ttl"`
	// MXTTL is the TTL of MX records. It must be well below the rotation
	// interval, or resolvers keep serving an old priority order.
	MXTTL Duration `toml:"mx_ttl"`
	// NegativeTTL is the SOA minimum (RFC 2308 negative caching).
	NegativeTTL Duration `toml:"negative_ttl"`
	// SPF is the SPF policy published for both zones; empty derives
	// "v=spf1 ip4:... ip6:... -all" from MXAddresses.
	SPF string `toml:"spf"`
	// MTASTSMaxAge is max_age of the MTA-STS policy of zone A.
	MTASTSMaxAge Duration `toml:"mta_sts_max_age"`
	// TLSRPTAddress receives TLS-RPT reports; empty means tlsrpt@A.
	TLSRPTAddress string `toml:"tlsrpt_address"`
	// TLSRPTHTTPS also asks for TLS-RPT reports by HTTPS POST (RFC 8460
	// §5.4): the _smtp._tls records of zone A and of every slot name
	// https://mta-sts.<A>/.well-known/tlsrpt beside the mailbox, and the
	// policy host takes them there. Only when the policy host listens.
	TLSRPTHTTPS bool `toml:"tlsrpt_https"`
	// Slots is the number of test slots (s001.A … under A, the same under
	// B; docs/dns.md "Test slots"), each held by one test at a time; 0
	// turns them off (every test uses the shared names). At most 99, so
	// that one certificate covers a host in every slot.
	Slots int `toml:"slots"`
	// SlotRest is how long a slot rests after its test is final (or
	// deleted) before another test may hold it: longer than every TTL of
	// the slot's names, so a resolver that looked them up for the last
	// test asks our server again for the next.
	SlotRest Duration `toml:"slot_rest"`
}

// DNS configures the authoritative server.
type DNS struct {
	// Listen addresses (host:port); each is served over UDP and TCP.
	Listen []string `toml:"listen"`
	// UDPSize is the largest UDP answer we send (RFC 6891); 1232 avoids
	// fragmentation (DNS flag day 2020).
	UDPSize int `toml:"udp_size"`
	// QueryLogRetention is how long logged queries are kept.
	QueryLogRetention Duration `toml:"query_log_retention"`
	// QueryLogBuffer is how many queries may wait to be written to the store.
	QueryLogBuffer int `toml:"query_log_buffer"`
	// QueryLogRowsPerSecond bounds the query log rows written per second,
	// all clients together; repeats within a flush window fold into one
	// row and do not count.
	QueryLogRowsPerSecond int `toml:"query_log_rows_per_second"`
	// QueryLogRowsPerClientPerSecond bounds them per client network
	// (smtp.client_prefix_v4/v6).
	QueryLogRowsPerClientPerSecond int `toml:"query_log_rows_per_client_per_second"`
	// RRLResponsesPerSecond limits the UDP answers of one kind (a name and
	// type; all NXDOMAIN; all REFUSED) to one client network per second,
	// after one second of credit; 0 turns response rate limiting off.
	RRLResponsesPerSecond int `toml:"rrl_responses_per_second"`
	// RRLSlip: every RRLSlip-th limited answer goes out truncated (TC=1,
	// no records) so a real resolver retries over TCP; the rest are
	// dropped. 0 drops all, 1 truncates all.
	RRLSlip int `toml:"rrl_slip"`
	// RRLPrefixV4 and RRLPrefixV6 are the client network sizes of RRL and
	// of the TCP per-client cap.
	RRLPrefixV4 int `toml:"rrl_prefix_v4"`
	RRLPrefixV6 int `toml:"rrl_prefix_v6"`
	// TCPMaxConnections bounds the open DNS TCP connections; past it new
	// ones are closed at once.
	TCPMaxConnections int `toml:"tcp_max_connections"`
	// TCPMaxConnectionsPerClient bounds them per client network.
	TCPMaxConnectionsPerClient int `toml:"tcp_max_connections_per_client"`
	// TCPIdleTimeout closes a TCP connection without a query for this long.
	TCPIdleTimeout Duration `toml:"tcp_idle_timeout"`
	// MaxUDPAmplification: a UDP answer more than this many times the size
	// of its question goes out truncated (the client asks over TCP); 0:
	// no cap.
	MaxUDPAmplification int `toml:"max_udp_amplification"`
}

// DNSSEC configures online signing.
type DNSSEC struct {
	// SignatureValidity is the lifetime of each RRSIG.
	SignatureValidity Duration `toml:"signature_validity"`
	// RefreshBefore re-signs an RRset when less than this validity remains.
	RefreshBefore Duration `toml:"refresh_before"`
	// InceptionOffset back-dates inception to tolerate clock skew.
	InceptionOffset Duration `toml:"inception_offset"`
	// BrokenHosts lists host labels of zone A (e.g. "broken") whose address
	// records are published with a deliberately invalid signature: a sender
	// behind a validating resolver never reaches them (DESIGN.md §4). For
	// tests and that persona only.
	BrokenHosts []string `toml:"broken_hosts"`
}

// Timing holds every timing of DESIGN.md §3, so a lab can run a full test in
// seconds. Production defaults follow the seed.
type Timing struct {
	// DowngradeWindow: STARTTLS is not offered to a client for this long
	// after the first connection of each of its test episodes.
	DowngradeWindow Duration `toml:"downgrade_window"`
	// EpisodeQuiet: a client past its window, with no open test, that made
	// no connection for this long starts a new test episode (a new
	// downgrade window) at its next connection (docs/smtp.md).
	EpisodeQuiet Duration `toml:"episode_quiet"`
	// MXRotation: the MX priority order of zone A changes this often.
	MXRotation Duration `toml:"mx_rotation"`
	// AckAfter: personas 4–6 hit for this long settle the acknowledgement.
	AckAfter Duration `toml:"ack_after"`
	// SMTPCommandTimeout and SMTPDataTimeout bound idle and slow clients.
	SMTPCommandTimeout Duration `toml:"smtp_command_timeout"`
	SMTPDataTimeout    Duration `toml:"smtp_data_timeout"`
	// TestExpiry: a test with no new connection for this long is final.
	TestExpiry Duration `toml:"test_expiry"`
}

// Default returns the embedded defaults: unprivileged loopback ports, so that
// `mailsec serve` runs as any user with no file at all.
func Default() Config {
	return Config{
		DataDir: "mailsec-data",
		Log:     Log{Level: "info", Format: "text"},
		Store:   Store{Driver: "sqlite"},
		Node:    Node{Heartbeat: Duration{2 * time.Second}, DeadAfter: Duration{30 * time.Second}},
		Zones: Zones{
			A:            "a.mailtest.example.",
			B:            "b.mailtest.example.",
			SignB:        true,
			NSAddresses:  []string{"127.0.0.1"},
			MXAddresses:  []string{"127.0.0.1"},
			TTL:          Duration{5 * time.Minute},
			MXTTL:        Duration{60 * time.Second},
			NegativeTTL:  Duration{60 * time.Second},
			MTASTSMaxAge: Duration{7 * 24 * time.Hour},
			TLSRPTHTTPS:  true,
			Slots:        50,
			SlotRest:     Duration{time.Hour},
		},
		DNS: DNS{
			Listen:                         []string{"127.0.0.1:5353"},
			UDPSize:                        1232,
			QueryLogRetention:              Duration{7 * 24 * time.Hour},
			QueryLogRowsPerSecond:          1000,
			QueryLogRowsPerClientPerSecond: 100,
			QueryLogBuffer:                 65536,
			RRLResponsesPerSecond:          20,
			RRLSlip:                        2,
			RRLPrefixV4:                    24,
			RRLPrefixV6:                    56,
			TCPMaxConnections:              256,
			TCPMaxConnectionsPerClient:     16,
			TCPIdleTimeout:                 Duration{10 * time.Second},
			MaxUDPAmplification:            10,
		},
		DNSSEC: DNSSEC{
			SignatureValidity: Duration{14 * 24 * time.Hour},
			RefreshBefore:     Duration{5 * 24 * time.Hour},
			InceptionOffset:   Duration{time.Hour},
		},
		SMTP: SMTP{
			Listen:                  []string{"127.0.0.1:2525"},
			MaxMessageBytes:         10 << 20,
			MaxRecipients:           20,
			MaxConnectionsPerClient: 20,
			MaxConnections:          1000,
			DataMemoryBudget:        256 << 20,
			ClientPrefixV4:          24,
			ClientPrefixV6:          48,
			TLSRPTMaxBytes:          1 << 20,
			TLSRPTPerClientPerHour:  10,
			TLSRPTMaxReports:        10000,
			TLSRPTMaxStoredBytes:    256 << 20,
			TLSRPTRetention:         Duration{30 * 24 * time.Hour},
			FixedLocalParts:         []string{"test"},
			FixedTestsPerClient:     20,
			FixedTestsOpenMax:       10000,
			SessionMax:              Duration{10 * time.Minute},
		},
		TLS:        TLS{RenewBefore: Duration{30 * 24 * time.Hour}},
		ACME:       ACME{Challenge: "dns-01"},
		PolicyHost: PolicyHost{Listen: []string{"127.0.0.1:8443"}, MaxFetchesPerClientPerHour: 100},
		Web: Web{Listen: []string{"127.0.0.1:8080"}, Retention: Duration{30 * 24 * time.Hour}, StartLimit: 20, CheckLimit: 10,
			MaxEventStreams: 200, MaxEventStreamsPerClient: 4, EventStreamMax: Duration{30 * time.Minute},
			CheckConcurrency: 8, CheckCache: Duration{5 * time.Minute}},
		ResultMail: ResultMail{Enabled: true, Name: "mailsec", Selector: "mailsec1", Port: 25, RateLimit: 10,
			RateWindow: Duration{time.Hour}, RetryBase: Duration{time.Minute}, RetryMax: Duration{4 * time.Hour},
			MaxAttempts: 12, AttemptTimeout: Duration{10 * time.Minute}, Interval: Duration{5 * time.Second}},
		Inbound: Inbound{Timeout: Duration{30 * time.Second}, Concurrency: 8, CheckSenders: true,
			CacheTTL: Duration{time.Hour}, ParallelChecks: 2, MaxHosts: 10, MaxAddresses: 4, TLSVersions: true},
		Timing: Timing{
			DowngradeWindow:    Duration{3 * time.Minute},
			EpisodeQuiet:       Duration{10 * time.Minute},
			MXRotation:         Duration{5 * time.Minute},
			AckAfter:           Duration{10 * time.Minute},
			SMTPCommandTimeout: Duration{5 * time.Minute},
			SMTPDataTimeout:    Duration{10 * time.Minute},
			TestExpiry:         Duration{48 * time.Hour},
		},
	}
}

// Load reads the TOML file at path over the defaults and validates the
// result. An empty path gives the defaults. Relative paths in the file are
// resolved against the file's directory.
func Load(path string) (Config, error) {
	cfg := Default()
	if path == "" {
		return cfg, cfg.Validate()
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("reading configuration: %w", err)
	}
	if err := Parse(&cfg, string(b)); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	if !filepath.IsAbs(cfg.DataDir) {
		cfg.DataDir = filepath.Join(filepath.Dir(path), cfg.DataDir)
	}
	if cfg.Store.Driver != "postgres" && cfg.Store.DSN != "" && !filepath.IsAbs(cfg.Store.DSN) && !strings.HasPrefix(cfg.Store.DSN, "file:") {
		cfg.Store.DSN = filepath.Join(filepath.Dir(path), cfg.Store.DSN)
	}
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(path), p)
	}
	cfg.ACME.CAFile = rel(cfg.ACME.CAFile)
	cfg.ResultMail.Roots = rel(cfg.ResultMail.Roots)
	cfg.Inbound.ExtraRoots = rel(cfg.Inbound.ExtraRoots)
	cfg.Web.ProviderNotesFile = rel(cfg.Web.ProviderNotesFile)
	for h, sc := range cfg.TLS.Static {
		cfg.TLS.Static[h] = StaticCert{Cert: rel(sc.Cert), Key: rel(sc.Key)}
	}
	return cfg, nil
}

// Parse decodes TOML text over cfg and validates the result.
func Parse(cfg *Config, text string) error {
	md, err := toml.Decode(text, cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return fmt.Errorf("%w: line %d: %s", ErrInvalid, perr.Position.Line, perr.Message)
		}
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("%w: unknown key %s", ErrInvalid, strings.Join(keys, ", "))
	}
	return cfg.Validate()
}

// EffectiveMemoryLimit is the soft memory limit serve sets (MemoryLimit
// with 0 resolved), or -1 for none.
func (c *Config) EffectiveMemoryLimit() int64 {
	if c.MemoryLimit == 0 {
		return c.SMTP.DataMemoryBudget + 256<<20
	}
	return c.MemoryLimit
}

// StorePath is what the store opens (store.OpenDriver with Store.Driver):
// the SQLite file, or the PostgreSQL DSN.
func (c *Config) StorePath() string {
	if c.Store.DSN != "" || c.Store.Driver == "postgres" {
		return c.Store.DSN
	}
	return filepath.Join(c.DataDir, "mailsec.db")
}

// StoreName names the store in messages: the SQLite file, or the
// PostgreSQL DSN without its password.
func (c *Config) StoreName() string {
	if c.Store.Driver != "postgres" {
		return c.StorePath()
	}
	return redactDSN(c.Store.DSN)
}

// redactDSN takes the password out of a libpq DSN, a URL
// (postgres://user:password@host/db) or keyword/value pairs
// (password=...): what is left says which database is meant.
func redactDSN(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		if q.Has("password") {
			q.Set("password", "xxxxx")
			u.RawQuery = q.Encode()
		}
		return u.String()
	} else if err != nil && strings.Contains(dsn, "://") {
		return "(a DSN that does not parse)"
	}
	// keyword = value pairs; a value may be 'quoted', with \' and \\
	// escapes (libpq, "Keyword/Value Connection Strings").
	var out []string
	for rest := strings.TrimSpace(dsn); rest != ""; rest = strings.TrimSpace(rest) {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			return "(a DSN that does not parse)"
		}
		key = strings.TrimSpace(key)
		after = strings.TrimLeft(after, " \t")
		var value string
		if strings.HasPrefix(after, "'") {
			end := 1
			for ; end < len(after) && after[end] != '\''; end++ {
				if after[end] == '\\' {
					end++
				}
			}
			if end >= len(after) {
				return "(a DSN that does not parse)"
			}
			value, rest = after[:end+1], after[end+1:]
		} else {
			value, rest, _ = strings.Cut(after, " ")
		}
		if strings.EqualFold(key, "password") {
			value = "xxxxx"
		}
		out = append(out, key+"="+value)
	}
	return strings.Join(out, " ")
}

// KeyDir is where DNSSEC and persona keys are kept.
func (c *Config) KeyDir() string { return filepath.Join(c.DataDir, "keys") }

// HostLabels are the host names (first labels) that may carry addresses of
// their own in [zones.host_addresses].
var HostLabels = []string{"mx3", "mx4", "mx5", "mx6", "mx7", "mta-sts", "ns1", testslot.IPv6HostLabel}

// validateIPv6Host checks zones.host_addresses.mx-v6, the IPv6-only MX
// host (docs/dns.md "IPv6-only host"): one IPv6 address, the first of
// zones.slots+1 consecutive ones (one per slot, testslot.HostAddr), every
// connection to which is answered 421 (docs/smtp.md "IPv6-only host"), so
// none may be another host's.
func (c *Config) validateIPv6Host(bad func(key, format string, args ...any)) {
	list, ok := c.Zones.HostAddresses[testslot.IPv6HostLabel]
	if !ok {
		return
	}
	key := "zones.host_addresses." + testslot.IPv6HostLabel
	if len(list) != 1 {
		bad(key, "needs exactly one address (slot n gets that address plus n), not %d", len(list))
		return
	}
	base, err := netip.ParseAddr(list[0])
	if err != nil {
		return // reported with the other host addresses
	}
	if !base.Is6() || base.Is4In6() || base.Zone() != "" {
		bad(key, "%s is not an IPv6 address: the host is reachable over IPv6 only", base)
		return
	}
	last, ok := testslot.HostAddr(base, c.Zones.Slots)
	if !ok {
		bad(key, "%s plus zones.slots (%d) leaves the IPv6 address space", base, c.Zones.Slots)
		return
	}
	others := slices.Concat(c.Zones.NSAddresses, c.Zones.MXAddresses, c.Zones.PolicyHostAddresses)
	for host, l := range c.Zones.HostAddresses {
		if host != testslot.IPv6HostLabel {
			others = append(others, l...)
		}
	}
	for _, o := range others {
		if a, err := netip.ParseAddr(o); err == nil && a.Unmap().Compare(base) >= 0 && a.Unmap().Compare(last) <= 0 {
			bad(key, "%s (one of its %d slot addresses %s-%s) is another host's: the IPv6-only host needs addresses of its own", a, c.Zones.Slots+1, base, last)
		}
	}
}

// Validate checks every value and names the key of the first problem.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	oneOf(bad, "log.level", c.Log.Level, "debug", "info", "warn", "error")
	oneOf(bad, "log.format", c.Log.Format, "text", "json")
	oneOf(bad, "store.driver", c.Store.Driver, "sqlite", "postgres")
	if c.Store.Driver == "postgres" && strings.TrimSpace(c.Store.DSN) == "" {
		bad("store.dsn", "must name the PostgreSQL database (a libpq URL or keyword/value string) when store.driver is postgres")
	}

	for _, z := range []struct{ key, name string }{{"zones.a", c.Zones.A}, {"zones.b", c.Zones.B}} {
		if _, ok := dns.IsDomainName(z.name); !ok || z.name == "" || z.name == "." {
			bad(z.key, "%q is not a domain name", z.name)
		} else if dns.CountLabel(z.name) < 2 {
			bad(z.key, "%q must have at least two labels", z.name)
		}
	}
	if dns.CanonicalName(c.Zones.A) == dns.CanonicalName(c.Zones.B) {
		bad("zones.b", "must differ from zones.a")
	} else if dns.IsSubDomain(dns.Fqdn(c.Zones.A), dns.Fqdn(c.Zones.B)) || dns.IsSubDomain(dns.Fqdn(c.Zones.B), dns.Fqdn(c.Zones.A)) {
		bad("zones.b", "zones a and b must not be nested")
	}
	checkAddrs := func(key string, list []string, required bool) {
		if required && len(list) == 0 {
			bad(key, "needs at least one address")
		}
		for _, a := range list {
			if _, err := netip.ParseAddr(a); err != nil {
				bad(key, "%q is not an IP address", a)
			}
		}
	}
	checkAddrs("zones.ns_addresses", c.Zones.NSAddresses, true)
	if len(c.Zones.NSNames) > 0 {
		if len(c.Zones.NSNames) != len(c.Zones.NSAddresses) {
			bad("zones.ns_names", "%d names for %d zones.ns_addresses: give one name per address", len(c.Zones.NSNames), len(c.Zones.NSAddresses))
		}
		for _, n := range c.Zones.NSNames {
			switch {
			case !isHostLabel(n):
				bad("zones.ns_names", "%q is not a host name label (letters, digits, hyphens; ns1, ns2, ...)", n)
			case n != "ns1" && slices.Contains(HostLabels, n) || slices.Contains(c.DNSSEC.BrokenHosts, n) || n == "tlsrpt" || isSlot(n):
				bad("zones.ns_names", "%q is a name the zones use for something else (a host, a test slot)", n)
			}
		}
	}
	checkAddrs("zones.mx_addresses", c.Zones.MXAddresses, true)
	checkAddrs("zones.policy_host_addresses", c.Zones.PolicyHostAddresses, false)
	for host, list := range c.Zones.HostAddresses {
		if !slices.Contains(HostLabels, host) && !slices.Contains(c.DNSSEC.BrokenHosts, host) {
			bad("zones.host_addresses."+host, "unknown host (one of %s, or a host of dnssec.broken_hosts)", strings.Join(HostLabels, ", "))
		}
		checkAddrs("zones.host_addresses."+host, list, true)
	}
	// A broken host with addresses of its own is an MX host, and every
	// connection to its addresses is answered 421 (docs/smtp.md "Broken
	// host"): they must be its own.
	for _, b := range c.DNSSEC.BrokenHosts {
		if slices.Contains(HostLabels, b) {
			bad("dnssec.broken_hosts", "%q is one of the service's own hosts (%s)", b, strings.Join(HostLabels, ", "))
		}
		for _, a := range c.Zones.HostAddresses[b] {
			shared := slices.Contains(c.Zones.MXAddresses, a) || slices.Contains(c.Zones.PolicyHostAddresses, a)
			for host, list := range c.Zones.HostAddresses {
				shared = shared || host != b && slices.Contains(list, a)
			}
			if shared {
				bad("zones.host_addresses."+b, "%s is shared with another host: the broken host needs addresses of its own", a)
			}
		}
	}
	c.validateIPv6Host(bad)
	positive := func(key string, d Duration, min time.Duration) {
		if d.Duration < min {
			bad(key, "%s is too short (at least %s)", d.Duration, min)
		}
	}
	positive("zones.ttl", c.Zones.TTL, time.Second)
	positive("node.heartbeat", c.Node.Heartbeat, 100*time.Millisecond)
	if c.Node.DeadAfter.Duration < 3*c.Node.Heartbeat.Duration {
		bad("node.dead_after", "%s is too short (at least three heartbeats, %s)", c.Node.DeadAfter.Duration, 3*c.Node.Heartbeat.Duration)
	}
	if strings.ContainsFunc(c.Node.Name, func(r rune) bool { return r < 0x21 || r > 0x7e }) || len(c.Node.Name) > 63 {
		bad("node.name", "%q: at most 63 printable ASCII characters without spaces", c.Node.Name)
	}
	positive("zones.mx_ttl", c.Zones.MXTTL, time.Second)
	positive("zones.negative_ttl", c.Zones.NegativeTTL, time.Second)
	positive("zones.mta_sts_max_age", c.Zones.MTASTSMaxAge, time.Second)
	if c.Zones.Slots < 0 || c.Zones.Slots > testslot.MaxCount {
		bad("zones.slots", "%d is out of range (0 to %d: one certificate names a host in every slot, at most 100 names)", c.Zones.Slots, testslot.MaxCount)
	}
	// A slot handed to the next test while a resolver still caches its
	// names would hide that test's look-ups (docs/dns.md "Test slots").
	if longest := max(c.Zones.TTL.Duration, c.Zones.MXTTL.Duration, c.Zones.NegativeTTL.Duration); c.Zones.Slots > 0 && c.Zones.SlotRest.Duration < longest {
		bad("zones.slot_rest", "%s is shorter than the longest TTL of the zones (%s): a resolver could still cache the names of the slot's last test", c.Zones.SlotRest.Duration, longest)
	}
	if c.Zones.SPF != "" && !strings.HasPrefix(c.Zones.SPF, "v=spf1") {
		bad("zones.spf", "must start with \"v=spf1\"")
	}
	if c.Zones.TLSRPTAddress != "" && !strings.Contains(c.Zones.TLSRPTAddress, "@") {
		bad("zones.tlsrpt_address", "%q is not a mail address", c.Zones.TLSRPTAddress)
	}

	if len(c.DNS.Listen) == 0 {
		bad("dns.listen", "needs at least one host:port")
	}
	for _, l := range c.DNS.Listen {
		if _, err := netip.ParseAddrPort(l); err != nil {
			bad("dns.listen", "%q is not an ip:port (%v)", l, err)
		}
	}
	within(bad, "dns.udp_size", c.DNS.UDPSize, 512, 4096)
	positive("dns.query_log_retention", c.DNS.QueryLogRetention, time.Minute)
	if c.DNS.QueryLogBuffer < 1 {
		bad("dns.query_log_buffer", "must be at least 1")
	}
	if c.DNS.QueryLogRowsPerSecond < 1 {
		bad("dns.query_log_rows_per_second", "must be at least 1")
	}
	if c.DNS.QueryLogRowsPerClientPerSecond < 1 || c.DNS.QueryLogRowsPerClientPerSecond > c.DNS.QueryLogRowsPerSecond {
		bad("dns.query_log_rows_per_client_per_second", "%d is outside 1..dns.query_log_rows_per_second", c.DNS.QueryLogRowsPerClientPerSecond)
	}
	if c.DNS.RRLResponsesPerSecond < 0 || c.DNS.RRLResponsesPerSecond > 1_000_000 {
		bad("dns.rrl_responses_per_second", "%d is outside 0..1000000 (0: off)", c.DNS.RRLResponsesPerSecond)
	}
	within(bad, "dns.rrl_slip", c.DNS.RRLSlip, 0, 10)
	within(bad, "dns.rrl_prefix_v4", c.DNS.RRLPrefixV4, 8, 32)
	within(bad, "dns.rrl_prefix_v6", c.DNS.RRLPrefixV6, 16, 128)
	if c.DNS.TCPMaxConnections < 1 {
		bad("dns.tcp_max_connections", "must be at least 1")
	}
	if c.DNS.TCPMaxConnectionsPerClient < 1 || c.DNS.TCPMaxConnectionsPerClient > c.DNS.TCPMaxConnections {
		bad("dns.tcp_max_connections_per_client", "%d is outside 1..dns.tcp_max_connections", c.DNS.TCPMaxConnectionsPerClient)
	}
	positive("dns.tcp_idle_timeout", c.DNS.TCPIdleTimeout, time.Second)
	if c.DNS.MaxUDPAmplification != 0 && (c.DNS.MaxUDPAmplification < 2 || c.DNS.MaxUDPAmplification > 100) {
		bad("dns.max_udp_amplification", "%d is outside 2..100 (0: no cap)", c.DNS.MaxUDPAmplification)
	}

	positive("dnssec.signature_validity", c.DNSSEC.SignatureValidity, time.Hour)
	positive("dnssec.refresh_before", c.DNSSEC.RefreshBefore, time.Minute)
	if c.DNSSEC.RefreshBefore.Duration >= c.DNSSEC.SignatureValidity.Duration {
		bad("dnssec.refresh_before", "must be shorter than dnssec.signature_validity")
	}
	if c.DNSSEC.InceptionOffset.Duration < 0 {
		bad("dnssec.inception_offset", "must not be negative")
	}
	for _, h := range c.DNSSEC.BrokenHosts {
		if _, ok := dns.IsDomainName(h); !ok || strings.Contains(h, ".") || h == "" {
			bad("dnssec.broken_hosts", "%q is not a single host label", h)
		}
	}

	positive("timing.downgrade_window", c.Timing.DowngradeWindow, 0)
	positive("timing.episode_quiet", c.Timing.EpisodeQuiet, time.Second)
	positive("timing.mx_rotation", c.Timing.MXRotation, time.Second)
	positive("timing.ack_after", c.Timing.AckAfter, 0)
	positive("timing.smtp_command_timeout", c.Timing.SMTPCommandTimeout, time.Second)
	positive("timing.smtp_data_timeout", c.Timing.SMTPDataTimeout, time.Second)
	positive("timing.test_expiry", c.Timing.TestExpiry, time.Second)
	c.validateOutbound(bad)
	c.validateResults(bad)
	c.validateInbound(bad)
	if _, err := c.AllowedDestinations(); err != nil {
		bad("network.allow_destinations", "%v", err)
	}
	if _, err := c.WebTrustedProxies(); err != nil {
		bad("web.trusted_proxies", "%v", err)
	}
	if c.Zones.MXTTL.Duration > c.Timing.MXRotation.Duration {
		bad("zones.mx_ttl", "%s exceeds timing.mx_rotation %s: resolvers would not follow the rotation", c.Zones.MXTTL.Duration, c.Timing.MXRotation.Duration)
	}
	return errors.Join(errs...)
}

// TLSIssuer returns the effective tls.issuer: "" resolves to "acme" when
// an ACME directory is configured and to "local" otherwise.
func (c *Config) TLSIssuer() string {
	if c.TLS.Issuer != "" {
		return c.TLS.Issuer
	}
	if c.ACME.Directory != "" {
		return "acme"
	}
	return "local"
}

// TLSHosts are the hosts that may have static certificates.
var TLSHosts = []string{"mx5", "mx6", "mx7", "mta-sts"}

// isAddr tells whether s is an IP address, possibly in brackets.
func isAddr(s string) bool {
	_, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return err == nil
}

// oneOf reports key as bad unless value is one of allowed.
func oneOf(bad func(key, format string, args ...any), key, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		bad(key, "%q is not one of %s", value, strings.Join(allowed, ", "))
	}
}

// within reports value if it is outside lo..hi.
func within(bad func(key, format string, args ...any), key string, value, lo, hi int) {
	if value < lo || value > hi {
		bad(key, "%d is outside %d..%d", value, lo, hi)
	}
}

func (c *Config) validateOutbound(bad func(key, format string, args ...any)) {
	listen := func(key string, list []string) {
		if len(list) == 0 {
			bad(key, "needs at least one host:port")
		}
		for _, l := range list {
			if _, err := netip.ParseAddrPort(l); err != nil {
				bad(key, "%q is not an ip:port (%v)", l, err)
			}
		}
	}
	listen("smtp.listen", c.SMTP.Listen)
	listen("policy_host.listen", c.PolicyHost.Listen)
	if c.PolicyHost.MaxFetchesPerClientPerHour < 1 {
		bad("policy_host.max_fetches_per_client_per_hour", "must be at least 1")
	}
	if c.SMTP.Hostname != "" {
		if _, ok := dns.IsDomainName(c.SMTP.Hostname); !ok {
			bad("smtp.hostname", "%q is not a host name", c.SMTP.Hostname)
		}
	}
	if c.SMTP.MaxMessageBytes < 1024 {
		bad("smtp.max_message_bytes", "%d is too small (at least 1024)", c.SMTP.MaxMessageBytes)
	}
	if c.SMTP.MaxRecipients < 1 {
		bad("smtp.max_recipients", "must be at least 1")
	}
	if c.SMTP.TLSRPTMaxBytes < 1024 || c.SMTP.TLSRPTMaxBytes > c.SMTP.MaxMessageBytes {
		bad("smtp.tlsrpt_max_bytes", "%d is outside 1024..smtp.max_message_bytes", c.SMTP.TLSRPTMaxBytes)
	}
	if c.SMTP.TLSRPTPerClientPerHour < 1 {
		bad("smtp.tlsrpt_per_client_per_hour", "must be at least 1")
	}
	if c.SMTP.TLSRPTMaxReports < 1 {
		bad("smtp.tlsrpt_max_reports", "must be at least 1")
	}
	if c.SMTP.TLSRPTMaxStoredBytes < c.SMTP.TLSRPTMaxBytes {
		bad("smtp.tlsrpt_max_stored_bytes", "%d is less than smtp.tlsrpt_max_bytes", c.SMTP.TLSRPTMaxStoredBytes)
	}
	if c.SMTP.TLSRPTRetention.Duration < time.Hour {
		bad("smtp.tlsrpt_retention", "%s is too short (at least 1h)", c.SMTP.TLSRPTRetention.Duration)
	}
	if c.SMTP.SessionMax.Duration < time.Second {
		bad("smtp.session_max", "%s is too short (at least 1s)", c.SMTP.SessionMax.Duration)
	}
	if c.SMTP.MaxConnectionsPerClient < 1 {
		bad("smtp.max_connections_per_client", "must be at least 1")
	}
	if c.SMTP.MaxConnections < c.SMTP.MaxConnectionsPerClient {
		bad("smtp.max_connections", "%d is less than smtp.max_connections_per_client", c.SMTP.MaxConnections)
	}
	if c.MemoryLimit < -1 || c.MemoryLimit > 0 && c.MemoryLimit < 64<<20 {
		bad("memory_limit", "%d: 0 (automatic), -1 (none) or at least 67108864 (64 MiB)", c.MemoryLimit)
	}
	if c.SMTP.DataMemoryBudget < c.SMTP.MaxMessageBytes {
		bad("smtp.data_memory_budget", "%d is less than smtp.max_message_bytes (not even one message would fit)", c.SMTP.DataMemoryBudget)
	}
	within(bad, "smtp.client_prefix_v4", c.SMTP.ClientPrefixV4, 8, 32)
	within(bad, "smtp.client_prefix_v6", c.SMTP.ClientPrefixV6, 16, 128)
	if c.SMTP.FixedTestsPerClient < 1 {
		bad("smtp.fixed_tests_per_client", "%d: must be at least 1", c.SMTP.FixedTestsPerClient)
	}
	if c.SMTP.FixedTestsOpenMax < c.SMTP.FixedTestsPerClient {
		bad("smtp.fixed_tests_open_max", "%d is less than smtp.fixed_tests_per_client (%d)", c.SMTP.FixedTestsOpenMax, c.SMTP.FixedTestsPerClient)
	}
	for _, lp := range c.SMTP.FixedLocalParts {
		if lp == "" || strings.ContainsAny(lp, "@ \t<>\"") || strings.HasPrefix(strings.ToLower(lp), "t-") {
			bad("smtp.fixed_local_parts", "%q is not a plain local part (and t-* is reserved for test tokens)", lp)
		}
	}
	switch c.TLSIssuer() {
	case "acme", "local":
		// "acme" without a directory is allowed: the CA-signed personas
		// then serve no certificate until one is configured; serve warns.
	case "static":
		for _, h := range TLSHosts {
			sc, ok := c.TLS.Static[h]
			if !ok || sc.Cert == "" || sc.Key == "" {
				bad("tls.static."+h, "tls.issuer = \"static\" needs cert and key files for %s", h)
			}
		}
	default:
		bad("tls.issuer", "%q is not one of acme, static, local", c.TLS.Issuer)
	}
	for h := range c.TLS.Static {
		known := false
		for _, k := range TLSHosts {
			known = known || k == h
		}
		if !known {
			bad("tls.static."+h, "unknown host (one of %s)", strings.Join(TLSHosts, ", "))
		}
	}
	if c.TLS.RenewBefore.Duration < time.Hour {
		bad("tls.renew_before", "%s is too short (at least 1h)", c.TLS.RenewBefore.Duration)
	}
	if c.ACME.Directory != "" && !strings.HasPrefix(c.ACME.Directory, "https://") {
		bad("acme.directory", "%q is not an https:// URL", c.ACME.Directory)
	}
	oneOf(bad, "acme.challenge", c.ACME.Challenge, "dns-01", "http-01")
	if c.Resolver.Address != "" {
		if _, err := netip.ParseAddrPort(c.Resolver.Address); err != nil {
			bad("resolver.address", "%q is not an ip:port (%v)", c.Resolver.Address, err)
		}
	}
}

// AllowedDestinations parses network.allow_destinations: a CIDR range or
// a single address (its own /32 or /128) each.
func (c *Config) AllowedDestinations() ([]netip.Prefix, error) {
	return parsePrefixes(c.Network.AllowDestinations)
}

// WebTrustedProxies parses web.trusted_proxies as AllowedDestinations.
func (c *Config) WebTrustedProxies() ([]netip.Prefix, error) {
	return parsePrefixes(c.Web.TrustedProxies)
}

// parsePrefixes reads CIDR ranges or single addresses.
func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			if p != p.Masked() {
				return nil, fmt.Errorf("%q has host bits set (%s)", s, p.Masked())
			}
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR range nor an IP address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// WebBaseURL is web.base_url, or http://<first listen address>.
func (c *Config) WebBaseURL() string {
	if c.Web.BaseURL != "" {
		return strings.TrimSuffix(c.Web.BaseURL, "/")
	}
	if len(c.Web.Listen) > 0 {
		return "http://" + c.Web.Listen[0]
	}
	return ""
}

// ProviderNotes reads and validates web.provider_notes_file (nil without
// one); its errors name the key and the file.
func (c *Config) ProviderNotes() (providernotes.Notes, error) {
	if c.Web.ProviderNotesFile == "" {
		return nil, nil
	}
	n, err := providernotes.Load(c.Web.ProviderNotesFile, c.Web.Providers)
	if err != nil {
		return nil, fmt.Errorf("%w: web.provider_notes_file: %w", ErrInvalid, err)
	}
	return n, nil
}

// WebHostnames is web.hostnames, or the host of web.base_url and the
// hosts of web.listen (unspecified addresses left out; "localhost" for a
// loopback one): the names the service is reached by.
func (c *Config) WebHostnames() []string {
	if len(c.Web.Hostnames) > 0 {
		return c.Web.Hostnames
	}
	var out []string
	if u, err := url.Parse(c.WebBaseURL()); err == nil && u.Hostname() != "" {
		out = append(out, u.Hostname())
	}
	for _, l := range c.Web.Listen {
		ap, err := netip.ParseAddrPort(l)
		if err != nil || ap.Addr().IsUnspecified() {
			continue
		}
		for _, h := range []string{ap.Addr().String(), "localhost"} {
			if (h != "localhost" || ap.Addr().IsLoopback()) && !slices.Contains(out, h) {
				out = append(out, h)
			}
		}
	}
	return out
}

// ResultMailFrom is result_mail.from, or mailsec@<zone A>.
func (c *Config) ResultMailFrom() string {
	if c.ResultMail.From != "" {
		return c.ResultMail.From
	}
	return "mailsec@" + strings.TrimSuffix(c.Zones.A, ".")
}

func (c *Config) validateResults(bad func(key, format string, args ...any)) {
	for _, l := range c.Web.Listen {
		if _, err := netip.ParseAddrPort(l); err != nil {
			bad("web.listen", "%q is not an ip:port (%v)", l, err)
		}
	}
	for _, l := range c.Metrics.Listen {
		if _, err := netip.ParseAddrPort(l); err != nil {
			bad("metrics.listen", "%q is not an ip:port (%v)", l, err)
		}
	}
	if c.Web.BaseURL != "" && !strings.HasPrefix(c.Web.BaseURL, "http://") && !strings.HasPrefix(c.Web.BaseURL, "https://") {
		bad("web.base_url", "%q is not an http:// or https:// URL", c.Web.BaseURL)
	}
	for _, p := range c.Web.Providers {
		if _, ok := dns.IsDomainName(p); !ok || p == "" || strings.Contains(p, "@") {
			bad("web.providers", "%q is not a domain name", p)
		}
	}
	if c.Web.Retention.Duration < time.Hour {
		bad("web.retention", "%s is too short (at least 1h)", c.Web.Retention.Duration)
	}
	for _, h := range c.Web.Hostnames {
		if _, ok := dns.IsDomainName(h); (!ok || h == "" || strings.ContainsAny(h, "/@ ")) && !isAddr(h) {
			bad("web.hostnames", "%q is not a host name", h)
		}
	}
	if c.Web.MaxEventStreams < 1 || c.Web.MaxEventStreamsPerClient < 1 || c.Web.MaxEventStreamsPerClient > c.Web.MaxEventStreams {
		bad("web.max_event_streams", "max_event_streams and max_event_streams_per_client must be at least 1, the second at most the first")
	}
	within(bad, "web.check_concurrency", c.Web.CheckConcurrency, 1, 256)
	if c.Web.CheckCache.Duration < time.Second {
		bad("web.check_cache", "%s is too short (at least 1s)", c.Web.CheckCache.Duration)
	}
	if c.Web.EventStreamMax.Duration < time.Second {
		bad("web.event_stream_max", "%s is too short (at least 1s)", c.Web.EventStreamMax.Duration)
	}
	if c.Web.StartLimit < 1 || c.Web.CheckLimit < 1 {
		bad("web.start_limit", "start_limit and check_limit must be at least 1")
	}
	rm := c.ResultMail
	from := c.ResultMailFrom()
	at := strings.LastIndexByte(from, "@"[0])
	if at <= 0 || !strings.EqualFold(dns.Fqdn(from[at+1:]), dns.Fqdn(c.Zones.A)) || strings.ContainsAny(from, " <>\"\r\n") {
		// DMARC of A is strict (adkim=s, aspf=s): the address must be in A itself.
		bad("result_mail.from", "%q must be a plain address in zone A (%s)", from, c.Zones.A)
	}
	if strings.ContainsAny(rm.Name, "\r\n") {
		bad("result_mail.name", "must be one line")
	}
	if _, ok := dns.IsDomainName(rm.Selector); !ok || rm.Selector == "" || strings.Contains(rm.Selector, ".") {
		bad("result_mail.selector", "%q is not a single DNS label", rm.Selector)
	}
	if rm.SourceAddress != "" {
		if _, err := netip.ParseAddr(rm.SourceAddress); err != nil {
			bad("result_mail.source_address", "%q is not an IP address", rm.SourceAddress)
		}
	}
	within(bad, "result_mail.port", rm.Port, 1, 65535)
	if rm.RateLimit < 0 {
		bad("result_mail.rate_limit", "must not be negative (0: no limit)")
	}
	if rm.RateWindow.Duration < time.Second || rm.RetryBase.Duration < time.Second || rm.Interval.Duration < 100*time.Millisecond {
		bad("result_mail.rate_window", "rate_window and retry_base must be at least 1s, interval at least 100ms")
	}
	if rm.RetryMax.Duration < rm.RetryBase.Duration {
		bad("result_mail.retry_max", "must not be shorter than retry_base")
	}
	if rm.MaxAttempts < 1 {
		bad("result_mail.max_attempts", "must be at least 1")
	}
	if rm.AttemptTimeout.Duration < time.Second {
		bad("result_mail.attempt_timeout", "must be at least 1s")
	}
}

func (c *Config) validateInbound(bad func(key, format string, args ...any)) {
	if c.Inbound.Timeout.Duration < time.Second || c.Inbound.Timeout.Duration > 10*time.Minute {
		bad("inbound.timeout", "%s is outside 1s..10m", c.Inbound.Timeout.Duration)
	}
	within(bad, "inbound.concurrency", c.Inbound.Concurrency, 1, 256)
	if c.Inbound.CacheTTL.Duration < 0 {
		bad("inbound.cache_ttl", "must not be negative")
	}
	within(bad, "inbound.parallel_checks", c.Inbound.ParallelChecks, 1, 64)
	within(bad, "inbound.max_hosts", c.Inbound.MaxHosts, 1, 50)
	within(bad, "inbound.max_addresses", c.Inbound.MaxAddresses, 1, 16)
}

// isHostLabel tells whether s is one lower-case LDH label (RFC 1123 §2.1),
// as a name server's first label must be.
func isHostLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// isSlot tells whether s is a test slot's label (s001 ...).
func isSlot(s string) bool {
	_, ok := testslot.ParseLabel(s)
	return ok
}
