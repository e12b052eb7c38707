package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/smtpclient"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// Limits on what a server may send.
const (
	maxLine     = 2048     // octets of one reply line (RFC 5321 §4.5.3.1.5 allows 512)
	maxReply    = 32 << 10 // octets of one reply, all lines
	maxEHLOKeys = 64       // EHLO lines kept
	maxBanner   = 512      // octets of the greeting kept
)

// probe is one SMTP session with one address of an MX host: greeting,
// EHLO, STARTTLS and the TLS handshake, one handshake per address
// (RFC 5321 §3.1, §4.1.1.1; RFC 3207 §4). It speaks through
// internal/smtpclient and never sends MAIL.
type probe struct {
	c    *checker
	host string // MX host name: EHLO target, SNI, name to match
	ip   netip.Addr
	a    *Address
	conn *smtpclient.Conn
	ctx  context.Context
	// altName is a second name the certificate may carry: the target of
	// a DNSSEC-secure CNAME (RFC 7672 §3.2.2 for DANE; the same trust for
	// PKIX).
	altName string
}

// run fills a with what the server showed. It never returns early
// without a status: every failure is classified (docs/inbound.md: a 421,
// a tarpit or a rate limit is "not testable", never "no STARTTLS").
func (c *checker) probe(ctx context.Context, host, altName string, ip netip.Addr) Address {
	a := Address{IP: ip.String(), EHLO: []string{}, DANE: DANEInfo{Matched: []string{}}}
	p := &probe{c: c, host: host, altName: altName, ip: ip, a: &a, ctx: ctx}
	p.run()
	if a.TLS != nil && !c.opts.SkipTLSVersions {
		c.probeVersions(ctx, host, ip, &a)
	}
	return a
}

func (p *probe) run() {
	o := &p.c.opts
	step := o.StepTimeout
	start := time.Now()
	// The check's context ends whatever is in progress: the client closes
	// the connection when it is done.
	conn, err := smtpclient.Dial(p.ctx, smtpclient.DialFunc(o.Dial), netip.AddrPortFrom(p.ip, uint16(o.Port)).String(), step,
		smtpclient.Options{Limits: smtpclient.Limits{MaxLine: maxLine, MaxReply: maxReply}})
	p.a.Timings.Connect = ms(time.Since(start))
	if err != nil {
		if p.ctx.Err() != nil {
			p.deadlineHit("during the TCP connect")
			return
		}
		p.a.Status, p.a.Detail = StatusUnreachable, describeNetErr(err, "connect")
		return
	}
	p.conn = conn
	defer conn.Close()

	// Greeting (RFC 5321 §4.3.1: 220, or 554 for "no service").
	code, text, ok := p.exchange(&p.a.Timings.Banner, "waiting for the greeting", func() (smtpclient.Reply, error) {
		return conn.ReadReply(step)
	})
	if !ok {
		return
	}
	p.a.Banner = untrusted.Printable(strconv.Itoa(code)+" "+firstLine(text), maxBanner)
	if code != 220 {
		p.refusal("greeting", code, text)
		return
	}

	// EHLO (RFC 5321 §4.1.1.1); STARTTLS is an EHLO keyword (RFC 3207 §4).
	var ehlo smtpclient.EHLO
	code, text, ok = p.exchange(&p.a.Timings.EHLO, "waiting for the EHLO reply", func() (r smtpclient.Reply, err error) {
		r, ehlo, err = conn.Ehlo(step, o.HELO)
		return r, err
	})
	if !ok {
		return
	}
	switch {
	case code == 250:
	case code == 500 || code == 502:
		// No ESMTP: no extensions, so no STARTTLS (RFC 3207 §4 needs EHLO).
		p.a.Status, p.a.Detail = StatusOK, "EHLO not supported: "+oneLine(code, text)
		p.quit()
		return
	default:
		p.refusal("EHLO", code, text)
		return
	}
	// The first line is the server's name and greeting; the report keeps
	// the next maxEHLOKeys-1 lines as sent.
	for i, ext := range ehlo.Extensions {
		if i+1 >= maxEHLOKeys {
			break
		}
		p.a.EHLO = append(p.a.EHLO, untrusted.Printable(ext.Line, 200))
		if ext.Keyword == "STARTTLS" {
			p.a.STARTTLS = true
		}
	}
	p.a.Status = StatusOK
	if !p.a.STARTTLS {
		p.quit()
		return
	}

	code, text, ok = p.exchange(&p.a.Timings.STARTTLS, "waiting for the STARTTLS reply", func() (smtpclient.Reply, error) {
		return conn.StartTLS(step)
	})
	if !ok {
		return
	}
	switch {
	case code == 220:
	case code == 421:
		p.notTestable("STARTTLS answered "+oneLine(code, text), oneLine(code, text))
		return
	default:
		// RFC 3207 §4: 454 "TLS not available due to temporary reason";
		// a server that offers STARTTLS and refuses it has none.
		p.a.TLSError = "STARTTLS refused: " + oneLine(code, text)
		p.quit()
		return
	}

	t := time.Now()
	cs, err := conn.Handshake(step, p.c.tlsConfig(p.host))
	var cleartext *smtpclient.CleartextError
	if errors.As(err, &cleartext) {
		// RFC 3207 §4.2 (and CVE-2011-0411 the other way round): nothing
		// may follow the 220 in the clear.
		p.a.TLSError = fmt.Sprintf("the server sent %d octets in the clear after its 220 to STARTTLS", cleartext.Octets)
		return
	}
	p.a.Timings.Handshake = ms(time.Since(t))
	if err != nil {
		var ne net.Error
		switch {
		case p.ctx.Err() != nil:
			p.deadlineHit("during the TLS handshake")
		case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
			p.notTestable(fmt.Sprintf("no TLS handshake within %s (tarpit or overload)", step), "")
		default:
			p.a.TLSError = "TLS handshake failed: " + untrusted.Printable(err.Error(), 300)
		}
		return
	}
	p.a.TLS = &TLSInfo{Version: tls.VersionName(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite), KeyExchange: keyExchange(cs)}
	p.a.Peer = cs.PeerCertificates
	p.a.Cert = analyzeCert(cs.PeerCertificates, p.host, p.c.roots, p.c.now)
	if p.a.Cert != nil && !p.a.Cert.NameMatch && p.altName != "" && cs.PeerCertificates[0].VerifyHostname(p.altName) == nil {
		p.a.Cert.NameMatch = true
	}
	// Say goodbye without waiting for the 221: one write, then
	// close_notify (RFC 5321 §4.1.1.10 lets the client close after QUIT).
	p.quit()
}

// exchange runs one step of the dialogue that ends in a reply (do),
// records how long it took in *took (milliseconds, as the report's
// timings_ms) and classifies a failure to get the reply (ioFailure); ok
// is false when the probe ends there.
func (p *probe) exchange(took *float64, step string, do func() (smtpclient.Reply, error)) (code int, text string, ok bool) {
	start := time.Now()
	r, err := do()
	*took = ms(time.Since(start))
	if err != nil {
		p.ioFailure(step, err)
		return 0, "", false
	}
	return r.Code, r.Text(), true
}

// deadlineHit records that the check's own deadline, not the server, ended
// the probe.
func (p *probe) deadlineHit(step string) {
	p.c.deadlineHit.Store(true)
	p.notTestable("the check's deadline ended "+step+" (not the server's fault)", "")
}

// quit ends the session politely, without waiting for the 221.
func (p *probe) quit() { p.conn.SendQuit(time.Second) }

func (p *probe) notTestable(detail, reply string) {
	p.a.Status, p.a.Detail, p.a.Reply = StatusNotTestable, detail, reply
}

// refusal classifies a reply other than the expected one to the greeting
// or EHLO: a 421 or other 4xx is "try later" (rate limit, greylisting,
// overload); a 5xx is a refusal of us (RFC 5321 §3.1: 554 "no SMTP
// service here", or a block list): not testable either way.
func (p *probe) refusal(step string, code int, text string) {
	r := oneLine(code, text)
	switch {
	case code == 421:
		p.notTestable(fmt.Sprintf("the server closes the session at the %s (%s): rate limit or overload", step, r), r)
	case code >= 400 && code < 500:
		p.notTestable(fmt.Sprintf("temporary refusal at the %s (%s)", step, r), r)
	default:
		p.notTestable(fmt.Sprintf("the server refuses the session at the %s (%s)", step, r), r)
		p.quit()
	}
}

// ioFailure classifies a failed command or reply. The check's own deadline
// ends the session by closing the connection, so an error with the
// context done is the check's, not the server's.
func (p *probe) ioFailure(step string, err error) {
	var ne net.Error
	var ioe *smtpclient.IOError
	if errors.As(err, &ioe) {
		err = ioe.Err // the texts name the step themselves
	}
	switch {
	case p.ctx.Err() != nil:
		p.deadlineHit(step)
	case errors.As(err, &ne) && ne.Timeout():
		p.notTestable(fmt.Sprintf("no answer within %s %s (tarpit or overload)", p.c.opts.StepTimeout, step), "")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed), isReset(err):
		p.notTestable("the server closed the connection "+step+" (rate limit or block?)", "")
	case errors.Is(err, smtpclient.ErrMalformed), errors.Is(err, smtpclient.ErrTooLong):
		p.a.Status, p.a.Detail = StatusError, "not an SMTP server: "+untrusted.Printable(err.Error(), 200)+" "+step
	default:
		p.notTestable(untrusted.Printable(err.Error(), 200)+" "+step, "")
	}
}

func isReset(err error) bool {
	s := err.Error()
	return strings.Contains(s, "connection reset") || strings.Contains(s, "broken pipe")
}

// describeNetErr says why a connect failed, briefly.
func describeNetErr(err error, what string) string {
	var ne net.Error
	s := err.Error()
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return what + " timed out"
	case strings.Contains(s, "connection refused"):
		return what + " refused (nothing listens on the port)"
	case strings.Contains(s, "no route to host"), strings.Contains(s, "network is unreachable"):
		return what + ": no route to host"
	}
	return what + ": " + untrusted.Printable(s, 200)
}

// tlsConfig is the client configuration of one handshake: SNI with the MX
// host name (RFC 7672 §8.1 requires it for DANE; RFC 8461 §5 for
// MTA-STS), every protocol version and cipher suite Go still implements so
// that old servers are seen and reported rather than failed, and no
// verification inside crypto/tls: the chain is verified afterwards against
// the roots and by DANE, and the result reported either way.
func (c *checker) tlsConfig(host string) *tls.Config {
	return &tls.Config{
		ServerName:         host,
		InsecureSkipVerify: true, // verified in analyzeCert and by DANE
		MinVersion:         tls.VersionTLS10,
		CipherSuites:       c.suites,
		// No X25519MLKEM768 (Go's default first group): its key share is
		// the costliest part of a bulk scan's handshakes, and whether the
		// transport is protected does not depend on it. Servers that
		// support it negotiate X25519 instead, so key_exchange no longer
		// shows post-quantum support (nothing is graded on it). The NIST
		// curves stay offered, so that a server with only P-384 or P-521
		// still completes the handshake (RFC 8446 §4.2.7; a share is sent
		// for the first group only).
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521},
	}
}

// allSuites lists every cipher suite crypto/tls implements for TLS 1.0–1.2,
// secure first (TLS 1.3 suites are not configurable).
func allSuites() []uint16 {
	var ids []uint16
	for _, s := range tls.CipherSuites() {
		ids = append(ids, s.ID)
	}
	for _, s := range tls.InsecureCipherSuites() {
		ids = append(ids, s.ID)
	}
	return ids
}

// keyExchange names the key exchange of a connection: the group of an
// (EC)DHE or hybrid exchange, or RSA for the legacy RSA key transport.
func keyExchange(cs tls.ConnectionState) string {
	switch cs.CurveID {
	case 0:
		if cs.Version < tls.VersionTLS13 {
			return "RSA"
		}
		return ""
	case tls.CurveP256:
		return "P-256"
	case tls.CurveP384:
		return "P-384"
	case tls.CurveP521:
		return "P-521"
	}
	return cs.CurveID.String()
}

// oneLine joins a reply's lines for texts: "421 4.7.0 too busy / try later".
func oneLine(code int, text string) string {
	return untrusted.Printable(strconv.Itoa(code)+" "+strings.ReplaceAll(text, "\n", " / "), 300)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
