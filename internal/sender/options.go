package sender

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"

	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/netguard"
	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/resolver"
)

// DialFunc opens a TCP connection, as net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// DNS answers the sender's queries; *resolver.Resolver implements it.
// Answer.Secure must be true only for answers whose DNSSEC validation the
// implementation can vouch for (resolver.Resolver: the AD bit of a
// loopback validating resolver). Query returns NXDOMAIN and SERVFAIL as
// errors wrapping resolver.ErrNXDomain and resolver.ErrServFail, with the
// answer; LookupTXT joins each record's strings.
type DNS interface {
	Query(ctx context.Context, name string, qtype uint16) (resolver.Answer, error)
	LookupTXT(ctx context.Context, name string) ([]string, error)
}

// Options configures a Sender. Zero values take the defaults noted.
type Options struct {
	// Hostname is the EHLO name (RFC 5321 §4.1.1.1). Required.
	Hostname string
	// Level is the default TLS security level; "" means may.
	Level Level
	// MTASTS applies MTA-STS (RFC 8461) on top of Level.
	MTASTS bool
	// Resolver answers MX, A/AAAA, TLSA and _mta-sts TXT queries (and
	// the policy host's addresses); a *resolver.Resolver, whose AD bit
	// is believed only from loopback. Required.
	Resolver DNS
	// Roots are the trust anchors of PKIX validation (level verify,
	// MTA-STS hosts and the policy fetch); nil means the system roots.
	Roots *x509.CertPool
	// SendSNI sends the MX host name as SNI at levels and hosts where
	// neither DANE nor MTA-STS requires it (Postfix: smtp_tls_servername
	// = hostname). DANE and MTA-STS hosts always get SNI.
	SendSNI bool
	// LocalAddr is the source address of SMTP and HTTPS connections made
	// by the default dialers; only MX addresses of its family are tried.
	// Zero: chosen by the system.
	LocalAddr netip.Addr
	// Dial connects to an MX address "ip:SMTPPort"; nil means a
	// net.Dialer bound to LocalAddr with ConnectTimeout. A Dial hook
	// binds LocalAddr itself if it wants one.
	Dial DialFunc
	// SMTPPort is the port asked for; 0 means 25.
	SMTPPort int
	// DialHTTPS connects to the policy host's address "ip:443" (resolved
	// through Resolver) for the MTA-STS fetch; nil as for Dial.
	DialHTTPS DialFunc
	// PolicyCache keeps MTA-STS policies; nil means a cache of this
	// Sender. Share one between senders that should share policies.
	PolicyCache *mtasts.Cache
	// Guard, when set, refuses connections (SMTP and the policy fetch)
	// to addresses that are not public unless it allows them: every
	// dial is checked, and the default dialers check again as they
	// connect (internal/netguard). nil: no guard (a lab sender). The
	// result-mail sender sets it: a tester's MX records must not aim
	// the service at the operator's network.
	Guard *netguard.Guard

	// MaxSessions bounds the sessions past the greeting per attempt
	// (Postfix smtp_mx_session_limit); 0 means 2.
	MaxSessions int
	// MaxAddresses bounds the addresses tried per attempt (Postfix
	// smtp_mx_address_limit); 0 means 5.
	MaxAddresses int
	// ConnectTimeout bounds the TCP connect (smtp_connect_timeout); 0
	// means 30s.
	ConnectTimeout time.Duration
	// CommandTimeout bounds the greeting and each reply, and the TLS
	// handshake (RFC 5321 §4.5.3.2: 5 minutes); 0 means 5m.
	CommandTimeout time.Duration
	// DataTimeout bounds the message transfer and the reply to the final
	// dot (RFC 5321 §4.5.3.2.6: 10 minutes); 0 means 10m.
	DataTimeout time.Duration
	// PolicyTimeout bounds the MTA-STS record look-up and policy fetch;
	// 0 means mtasts.FetchTimeout.
	PolicyTimeout time.Duration
	// PreferIPv6 tries an MX host's IPv6 addresses before its IPv4 ones
	// (default: IPv4 first).
	PreferIPv6 bool
	// Shuffle randomises MX hosts of equal preference (RFC 5321 §5.1);
	// nil means math/rand/v2.Shuffle. Tests inject a fixed order.
	Shuffle func(n int, swap func(i, j int))

	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

// Defaults.
const (
	DefaultMaxSessions    = 2
	DefaultMaxAddresses   = 5
	DefaultConnectTimeout = 30 * time.Second
	DefaultCommandTimeout = 5 * time.Minute
	DefaultDataTimeout    = 10 * time.Minute
)

func (o Options) withDefaults() (Options, error) {
	if o.Hostname == "" {
		return o, errors.New("sender: Options.Hostname (the EHLO name) is required")
	}
	if r, ok := o.Resolver.(*resolver.Resolver); o.Resolver == nil || ok && r == nil {
		return o, errors.New("sender: Options.Resolver is required")
	}
	if o.Level == "" {
		o.Level = LevelMay
	}
	if _, err := ParseLevel(string(o.Level)); err != nil {
		return o, err
	}
	option.Positive(&o.ConnectTimeout, DefaultConnectTimeout)
	option.Positive(&o.CommandTimeout, DefaultCommandTimeout)
	option.Positive(&o.DataTimeout, DefaultDataTimeout)
	option.Positive(&o.PolicyTimeout, mtasts.FetchTimeout)
	option.Positive(&o.MaxSessions, DefaultMaxSessions)
	option.Positive(&o.MaxAddresses, DefaultMaxAddresses)
	if o.SMTPPort == 0 {
		o.SMTPPort = 25
	}
	if o.SMTPPort < 0 || o.SMTPPort > 65535 {
		return o, fmt.Errorf("sender: SMTP port %d out of range", o.SMTPPort)
	}
	if o.Shuffle == nil {
		o.Shuffle = rand.Shuffle
	}
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	o.LocalAddr = o.LocalAddr.Unmap()
	if o.Dial == nil {
		o.Dial = netDialer(o.LocalAddr, o.ConnectTimeout, o.Guard)
	}
	if o.DialHTTPS == nil {
		o.DialHTTPS = netDialer(o.LocalAddr, o.ConnectTimeout, o.Guard)
	}
	if o.Guard != nil {
		o.Dial, o.DialHTTPS = o.Guard.Dial(o.Dial), o.Guard.Dial(o.DialHTTPS)
	}
	if o.PolicyCache == nil {
		o.PolicyCache = mtasts.NewCache(0, o.Now)
	}
	return o, nil
}

// netDialer dials from local (if valid), through guard (if set).
func netDialer(local netip.Addr, timeout time.Duration, guard *netguard.Guard) DialFunc {
	d := &net.Dialer{Timeout: timeout}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	if guard != nil {
		d = guard.Dialer(*d)
	}
	return d.DialContext
}
