package inbound

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/smtpclient"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// probedVersions are the protocol versions offered one at a time, oldest
// first (the report's order). SSL 3.0 is not among them: crypto/tls does
// not implement it, so the check cannot tell whether a server accepts it.
var probedVersions = []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13}

// weakSuites lists the weak cipher suites crypto/tls can offer (RC4 and
// 3DES; checkreport.WeakSuiteClass), which it does only when they are
// listed explicitly. NULL, EXPORT, DES and anonymous suites it does not
// implement at all: a server that accepts only those is not seen here
// (docs/inbound.md says so).
func weakSuites() []uint16 {
	var ids []uint16
	for _, s := range append(tls.CipherSuites(), tls.InsecureCipherSuites()...) {
		if checkreport.WeakSuiteClass(s.Name) != "" {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// probeVersions finds which protocol versions the server accepts when
// each is offered alone, and whether it accepts a weak cipher suite, on
// an address whose first session (a) negotiated TLS with every version
// and suite offered. The versions above the negotiated one need no
// session: a server picks the highest version both sides support (RFC
// 8446 §4.2.1, RFC 5246 §7.4.1.3), so it has refused them already. Each
// older version costs one session, and the weak suites one more when a
// version up to TLS 1.2 is accepted: at most four extra sessions, one
// after the other in the probe's slot, each under the step timeout and
// the check's deadline.
func (c *checker) probeVersions(ctx context.Context, host string, ip netip.Addr, a *Address) {
	t := a.TLS
	negotiated := versionID(t.Version)
	t.Versions = make([]checkreport.VersionProbe, 0, len(probedVersions))
	maxLegacyAccepted := uint16(0) // the highest accepted version up to TLS 1.2
	for _, v := range probedVersions {
		vp := checkreport.VersionProbe{Version: tls.VersionName(v)}
		switch {
		case v > negotiated:
			vp.Result = checkreport.ProbeRefused
			vp.Detail = "the server chose " + t.Version + " when this version was offered too"
		case v == negotiated:
			vp.Result, vp.Cipher = checkreport.ProbeAccepted, t.Cipher
			vp.Detail = "negotiated in the first session"
		default:
			cfg := c.tlsConfig(host)
			cfg.MinVersion, cfg.MaxVersion = v, v
			cs, result, detail := c.tryHandshake(ctx, ip, cfg)
			vp.Result, vp.Detail = result, detail
			if result == checkreport.ProbeAccepted {
				vp.Cipher = tls.CipherSuiteName(cs.CipherSuite)
				c.noteWeak(t, cs)
			}
		}
		if vp.Result == checkreport.ProbeAccepted && v <= tls.VersionTLS12 {
			maxLegacyAccepted = max(maxLegacyAccepted, v)
		}
		t.Versions = append(t.Versions, vp)
	}
	if maxLegacyAccepted == 0 {
		return // TLS 1.3 has no weak suites (RFC 8446 §9.1, appendix B.4)
	}
	// One session offering only the weak suites, at the versions up to
	// the highest accepted one: a server that accepts any of them picks it.
	cfg := c.tlsConfig(host)
	cfg.MinVersion, cfg.MaxVersion, cfg.CipherSuites = tls.VersionTLS10, maxLegacyAccepted, weakSuites()
	cs, result, _ := c.tryHandshake(ctx, ip, cfg)
	t.WeakProbe = result
	if result == checkreport.ProbeAccepted {
		c.noteWeak(t, cs)
	}
}

// noteWeak adds the suite of cs to t.WeakCiphers when it is weak.
func (c *checker) noteWeak(t *TLSInfo, cs tls.ConnectionState) {
	name := tls.CipherSuiteName(cs.CipherSuite)
	class := checkreport.WeakSuiteClass(name)
	if class == "" {
		return
	}
	w := checkreport.WeakCipher{Version: tls.VersionName(cs.Version), Cipher: name, Class: class}
	for _, have := range t.WeakCiphers {
		if have == w {
			return
		}
	}
	t.WeakCiphers = append(t.WeakCiphers, w)
}

// versionID is the protocol version named by tls.VersionName; 0 for an
// unknown name.
func versionID(name string) uint16 {
	for _, v := range probedVersions {
		if tls.VersionName(v) == name {
			return v
		}
	}
	return 0
}

// tryHandshake is one more session with the server, up to the TLS
// handshake with cfg: greeting, EHLO, STARTTLS (RFC 3207 §4), handshake,
// QUIT. The server refuses cfg when it answers the ClientHello with an
// alert or by closing (ProbeRefused); anything that ends the session
// before the handshake could say either — a refused connect, a 4xx, a
// timeout, the check's deadline — leaves the answer unknown, never
// "refused".
func (c *checker) tryHandshake(ctx context.Context, ip netip.Addr, cfg *tls.Config) (tls.ConnectionState, string, string) {
	o := &c.opts
	step := o.StepTimeout
	unknown := func(format string, args ...any) (tls.ConnectionState, string, string) {
		if ctx.Err() != nil {
			c.deadlineHit.Store(true)
			return tls.ConnectionState{}, checkreport.ProbeUnknown, "the check's deadline ended the session"
		}
		return tls.ConnectionState{}, checkreport.ProbeUnknown, untrusted.Printable(fmt.Sprintf(format, args...), 300)
	}
	conn, err := smtpclient.Dial(ctx, smtpclient.DialFunc(o.Dial), netip.AddrPortFrom(ip, uint16(o.Port)).String(), step,
		smtpclient.Options{Limits: smtpclient.Limits{MaxLine: maxLine, MaxReply: maxReply}})
	if err != nil {
		return unknown("%s", describeNetErr(err, "connect"))
	}
	defer conn.Close()
	if r, err := conn.ReadReply(step); err != nil || r.Code != 220 {
		return unknown("greeting: %s", replyOrErr(r, err))
	}
	if r, _, err := conn.Ehlo(step, o.HELO); err != nil || r.Code != 250 {
		return unknown("EHLO: %s", replyOrErr(r, err))
	}
	if r, err := conn.StartTLS(step); err != nil || r.Code != 220 {
		return unknown("STARTTLS: %s", replyOrErr(r, err))
	}
	cs, err := conn.Handshake(step, cfg)
	var ne net.Error
	var cleartext *smtpclient.CleartextError
	switch {
	case err == nil:
	case ctx.Err() != nil, errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return unknown("no TLS handshake within %s", step)
	case errors.As(err, &cleartext):
		return unknown("the server sent %d octets in the clear after its 220 to STARTTLS", cleartext.Octets)
	default:
		return tls.ConnectionState{}, checkreport.ProbeRefused, untrusted.Printable(err.Error(), 300)
	}
	conn.SendQuit(time.Second)
	return cs, checkreport.ProbeAccepted, ""
}

// replyOrErr describes what came instead of the expected reply.
func replyOrErr(r smtpclient.Reply, err error) string {
	if err != nil {
		return err.Error()
	}
	return oneLine(r.Code, r.Text())
}
