package inbound

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/resolver"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"
)

// DialFunc opens a TCP connection, as net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Options configures Check. Zero values take the defaults noted.
type Options struct {
	// Resolver is the validating resolver, "ip:port"; "" means the first
	// nameserver of /etc/resolv.conf. Its AD bit is believed only when it
	// is on loopback (DESIGN.md §5); otherwise every DNSSEC state is
	// indeterminate and the report warns.
	Resolver string
	// SharedResolver, when set, is used instead of a resolver made for
	// Resolver by each check: a bulk scan shares one across all its
	// checks, so its pooled UDP sockets are reused (docs/bench-scan.md).
	// Check does not close it.
	SharedResolver *resolver.Resolver
	// AllowPrivate lets the check contact private, loopback, link-local
	// and other reserved addresses (the lab); without it they are refused
	// (safety.private_refused).
	AllowPrivate bool
	// AllowDestinations are ranges contacted although not public
	// (network.allow_destinations: a lab on loopback); ignored with
	// AllowPrivate.
	AllowDestinations []netip.Prefix
	// ExtraRoots are trusted besides the system roots for PKIX (the MX
	// certificates and the MTA-STS policy host): a lab CA.
	ExtraRoots []*x509.Certificate
	// Timeout is the one deadline of the whole check; 0 means 30s.
	Timeout time.Duration
	// Concurrency bounds the SMTP probes running at once; 0 means 8.
	Concurrency int
	// HELO is the name sent in EHLO (RFC 5321 §4.1.1.1); "" means
	// "mailsec.invalid".
	HELO string

	// StepTimeout bounds the TCP connect and each SMTP reply and the TLS
	// handshake (within Timeout); 0 means 15s. A greeting slower than
	// this is a tarpit: not testable.
	StepTimeout time.Duration
	// MaxHosts bounds the MX hosts tested; 0 means 10.
	MaxHosts int
	// MaxAddresses bounds the addresses tested per host; 0 means 4.
	MaxAddresses int
	// SkipTLSVersions leaves out the extra sessions that find which TLS
	// versions and weak cipher suites an address accepts (up to four
	// more per address; docs/inbound.md): one session per address only.
	SkipTLSVersions bool

	// Port is the SMTP port asked for; 0 means 25. Dial connects to
	// "ip:Port"; nil means a net.Dialer. Tests map port 25 to their
	// listeners with it.
	Port int
	Dial DialFunc
	// DialHTTPS connects to the MTA-STS policy host's address "ip:443"
	// (resolved through Resolver and checked like the MX addresses); nil
	// means a net.Dialer.
	DialHTTPS DialFunc
	// ProbeCache, if set, stands between the check and its SMTP probes:
	// it is called for the probe of MX host name (altName: the target of a
	// DNSSEC-secure CNAME, also accepted as the certificate's name) at ip,
	// and must return what probe returns for them — run now, or earlier
	// for the same host, altName and address. A bulk scan
	// (internal/scan) shares one probe of a hoster's MX among its many
	// domains this way. probe runs under the context it is given.
	ProbeCache func(ctx context.Context, host, altName string, ip netip.Addr, probe func(context.Context) Address) Address

	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

func (o *Options) defaults() {
	option.Positive(&o.Timeout, 30*time.Second)
	option.Positive(&o.Concurrency, 8)
	if o.HELO == "" {
		o.HELO = "mailsec.invalid"
	}
	option.Positive(&o.StepTimeout, 15*time.Second)
	option.Positive(&o.MaxHosts, 10)
	option.Positive(&o.MaxAddresses, 4)
	if o.Port == 0 {
		o.Port = 25
	}
	// The default dialers judge the address actually connected to
	// (netguard: after resolution, so DNS rebinding cannot slip past the
	// checks made on the resolved addresses).
	d := &net.Dialer{}
	if g := o.guard(); g != nil {
		d = g.Dialer(net.Dialer{})
	}
	if o.Dial == nil {
		o.Dial = d.DialContext
	}
	if o.DialHTTPS == nil {
		o.DialHTTPS = d.DialContext
	}
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
}

// LoadRoots reads the PEM certificates of a roots file (a lab CA).
func LoadRoots(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inbound: roots: %w", err)
	}
	var out []*x509.Certificate
	for len(b) > 0 {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("inbound: roots %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("inbound: roots %s: no PEM certificate", path)
	}
	return out, nil
}
