package sender

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/mailsec/mailsec/internal/mtasts"
)

// Sender delivers messages under one TLS policy. It is safe for
// concurrent use; each Attempt is independent apart from the MTA-STS
// policy cache.
type Sender struct {
	opts Options
	log  *slog.Logger
	http *http.Client // the MTA-STS policy fetch
}

// New checks opts and returns a Sender.
func New(opts Options) (*Sender, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Sender{opts: o, log: o.Logger.With("level", string(o.Level), "mta_sts", o.MTASTS)}
	s.http = &http.Client{Transport: &http.Transport{
		Proxy:       nil, // never through an environment proxy
		DialContext: s.dialPolicyHost,
		TLSClientConfig: &tls.Config{
			RootCAs:    o.Roots, // RFC 8461 §3.3: PKIX-valid for mta-sts.<domain>
			MinVersion: tls.VersionTLS12,
		},
		TLSHandshakeTimeout:    o.ConnectTimeout,
		ResponseHeaderTimeout:  o.PolicyTimeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 64 << 10,
	}}
	return s, nil
}

// Level returns the sender's default level.
func (s *Sender) Level() Level { return s.opts.Level }

// dialPolicyHost resolves the policy host through the Resolver (not the
// system resolver) and dials its addresses with DialHTTPS.
func (s *Sender) dialPolicyHost(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	addrs, _, err := s.lookupAddrs(ctx, host)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, a := range addrs {
		c, err := s.opts.DialHTTPS(ctx, network, net.JoinHostPort(a.String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Attempt makes one delivery attempt of msg (see the package
// documentation). It never returns an error of its own: everything,
// including a bad message, is in the Result.
func (s *Sender) Attempt(ctx context.Context, msg Message) Result {
	o := s.opts
	res := Result{Level: o.Level, MTASTS: o.MTASTS, Started: o.Now()}
	defer func() {
		res.Duration = o.Now().Sub(res.Started)
		s.log.Info("delivery attempt", "domain", res.Domain, "status", res.Status.String(), "reason", res.Reason,
			"sessions", res.Sessions, "addresses", res.Addresses, "duration", res.Duration)
	}()

	domain, err := checkMessage(msg)
	res.Domain = domain
	rcpts := msg.To
	for _, r := range rcpts {
		res.Recipients = append(res.Recipients, Recipient{Address: r, Status: Deferred})
	}
	if err != nil {
		s.conclude(&res, Bounced, err.Error(), err)
		return res
	}

	mx, err := s.resolveMX(ctx, domain)
	if err != nil {
		st := Deferred
		if errors.Is(err, ErrNoSuchDomain) || errors.Is(err, ErrNullMX) {
			st = Bounced
		}
		s.conclude(&res, st, err.Error(), err)
		return res
	}
	res.MX = mx
	hosts := mx.Hosts
	if len(msg.OnlyMX) > 0 {
		hosts = onlyMX(hosts, msg.OnlyMX)
	}
	if len(hosts) == 0 {
		s.conclude(&res, Deferred, "no MX host to try", ErrNoMX)
		return res
	}

	var sts *mtasts.Policy
	if o.MTASTS {
		res.STS, sts = s.discoverSTS(ctx, domain)
	}

	pending := append([]string(nil), rcpts...)
	var last Host
	limit := false
walk:
	for _, h := range hosts {
		if len(pending) == 0 || ctx.Err() != nil {
			break
		}
		if res.Sessions >= o.MaxSessions || res.Addresses >= o.MaxAddresses {
			limit = true
			break
		}
		p := s.planHost(ctx, h, mx, sts)
		if p.skip != nil {
			ht := Host{MX: h.Name, Preference: h.Preference, Policy: p.name, PolicyReason: p.reason,
				Started: o.Now(), Outcome: OutcomeSkipped, Reply: p.skip.Error(), Err: p.skip}
			s.logHost(domain, ht)
			res.Hosts = append(res.Hosts, ht)
			last = ht
			continue
		}
		for _, a := range p.addrs {
			if len(pending) == 0 || ctx.Err() != nil {
				break walk
			}
			if res.Sessions >= o.MaxSessions || res.Addresses >= o.MaxAddresses {
				limit = true
				break walk
			}
			res.Addresses++
			ht, settled, retry := s.session(ctx, h, a, p, msg, pending, false)
			if ht.PastGreeting() {
				res.Sessions++
			}
			pending = s.record(&res, ht, settled, pending)
			last = ht
			if retry && len(pending) > 0 && ctx.Err() == nil {
				// Postfix at level may: after a failed handshake, the
				// same address again in plaintext (not counted).
				ht, settled, _ = s.session(ctx, h, a, p, msg, pending, true)
				pending = s.record(&res, ht, settled, pending)
				last = ht
			}
		}
	}

	switch {
	case len(pending) == 0:
		s.conclude(&res, Deferred, "", nil) // the recipients' statuses decide
	case ctx.Err() != nil:
		s.conclude(&res, Deferred, "attempt interrupted: "+ctx.Err().Error(), fmt.Errorf("%w: %w", ErrConnect, ctx.Err()))
	case limit:
		why := fmt.Sprintf("limit reached (%d sessions, %d addresses)", res.Sessions, res.Addresses)
		if last.Reply != "" {
			why += "; last: " + last.MX + ": " + last.Reply
		}
		s.conclude(&res, Deferred, why, errors.Join(ErrLimit, last.Err))
	case last.Outcome == OutcomeSkipped && !anyContacted(res.Hosts):
		s.conclude(&res, Deferred, "no MX host could be tried; last: "+last.MX+": "+last.Reply, errors.Join(ErrNoMX, last.Err))
	default:
		s.conclude(&res, Deferred, last.MX+": "+last.Reply, last.Err)
	}
	return res
}

// record appends a session's transcript, applies the recipients it
// settled, and returns those still pending.
func (s *Sender) record(res *Result, ht Host, settled map[string]Recipient, pending []string) []string {
	s.logHost(res.Domain, ht)
	res.Hosts = append(res.Hosts, ht)
	var rest []string
	for _, r := range pending {
		if st, ok := settled[r]; ok {
			for i := range res.Recipients {
				if res.Recipients[i].Address == r {
					res.Recipients[i] = st
				}
			}
			continue
		}
		rest = append(rest, r)
	}
	return rest
}

func (s *Sender) logHost(domain string, h Host) {
	s.log.Info("smtp host", "domain", domain, "mx", h.MX, "addr", h.Addr.String(), "policy", h.Policy,
		"outcome", string(h.Outcome), "starttls_offered", h.STARTTLSOffered, "tls", h.TLSVersion, "sni", h.SNI,
		"pkix", h.PKIX.String(), "dane", h.DANE.String(), "reply", h.Reply, "plaintext_retry", h.PlaintextRetry)
}

// conclude sets the final status. Recipients still pending get
// pendingStatus (Deferred, or Bounced when the whole domain refuses mail)
// and the reason; the message is Delivered when every recipient was
// delivered, Deferred when any is deferred, and Bounced otherwise.
func (s *Sender) conclude(res *Result, pendingStatus Status, reason string, err error) {
	deferred, bounced := 0, 0
	var bounce Recipient
	for i := range res.Recipients {
		r := &res.Recipients[i]
		if r.Status == Deferred && r.Host == "" {
			r.Status, r.Reply = pendingStatus, reason
		}
		switch r.Status {
		case Deferred:
			deferred++
		case Bounced:
			bounced++
			bounce = *r
		}
	}
	switch {
	case len(res.Recipients) == 0:
		res.Status, res.Reason, res.Err = pendingStatus, reason, err
	case deferred > 0:
		res.Status, res.Reason, res.Err = Deferred, reason, err
	case bounced > 0:
		res.Status, res.Reason, res.Err = Bounced, reason, err
		if err == nil {
			res.Reason = bounce.Host + ": " + bounce.Reply
			res.Err = fmt.Errorf("%w: %s", ErrPermanent, res.Reason)
		}
	default:
		res.Status, res.Err = Delivered, nil
		res.Reason = "delivered to " + res.DeliveredTo()
		if len(res.Recipients) > 0 {
			res.Reason += ": " + res.Recipients[0].Reply
		}
	}
}

func anyContacted(hosts []Host) bool {
	for _, h := range hosts {
		if h.Outcome != OutcomeSkipped {
			return true
		}
	}
	return false
}

// onlyMX keeps the hosts named in only, in that order.
func onlyMX(hosts []MXHost, only []string) []MXHost {
	var out []MXHost
	for _, name := range only {
		name = canonName(name)
		for _, h := range hosts {
			if h.Name == name {
				out = append(out, h)
				break
			}
		}
	}
	return out
}

// discoverSTS finds the MTA-STS policy in force (internal/mtasts, RFC 8461
// §5.1). The policy comes back only in modes enforce and testing.
func (s *Sender) discoverSTS(ctx context.Context, domain string) (*STSInfo, *mtasts.Policy) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.PolicyTimeout)
	defer cancel()
	d := s.opts.PolicyCache.Discover(ctx, domain, s.opts.Resolver.LookupTXT, func(ctx context.Context, d string) (mtasts.Policy, error) {
		return mtasts.Fetch(ctx, s.http, d)
	})
	info := &STSInfo{Source: d.Source.String()}
	var errs []string
	for _, err := range []error{d.RecordErr, d.FetchErr} {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	info.Error = strings.Join(errs, "; ")
	p, ok := d.Policy()
	if !ok {
		s.log.Info("MTA-STS: no policy", "domain", domain, "err", info.Error)
		return info, nil
	}
	info.Mode, info.ID, info.MX = string(p.Mode), d.Entry.ID, append([]string(nil), p.MX...)
	s.log.Info("MTA-STS policy", "domain", domain, "mode", info.Mode, "id", info.ID, "source", info.Source, "err", info.Error)
	if p.Mode == mtasts.ModeNone {
		return info, nil
	}
	return info, &p
}

// checkMessage validates the envelope and returns the recipient domain.
func checkMessage(msg Message) (string, error) {
	if msg.From != "" {
		if err := checkAddress(msg.From); err != nil {
			return "", fmt.Errorf("%w: sender: %w", ErrMessage, err)
		}
	}
	if len(msg.To) == 0 {
		return "", fmt.Errorf("%w: no recipients", ErrMessage)
	}
	domain := ""
	for _, r := range msg.To {
		if err := checkAddress(r); err != nil {
			return domain, fmt.Errorf("%w: recipient: %w", ErrMessage, err)
		}
		d := canonName(r[strings.LastIndexByte(r, '@')+1:])
		if domain == "" {
			domain = d
		} else if d != domain {
			return domain, fmt.Errorf("%w: recipients in %s and %s: one domain per attempt", ErrMessage, domain, d)
		}
	}
	if strings.HasPrefix(domain, "[") {
		return domain, fmt.Errorf("%w: address literals are not supported", ErrMessage)
	}
	return domain, nil
}

// checkAddress accepts local@domain without characters that could break
// the command line or the angle brackets (RFC 5321 §4.1.2).
func checkAddress(a string) error {
	at := strings.LastIndexByte(a, '@')
	if at <= 0 || at == len(a)-1 || len(a) > 254 {
		return fmt.Errorf("%q is not local@domain", a)
	}
	for _, c := range a {
		if c < 0x21 || c == 0x7f || c == '<' || c == '>' {
			return fmt.Errorf("%q contains a space, control character or angle bracket", a)
		}
	}
	return nil
}
