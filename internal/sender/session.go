package sender

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/dane"
	"github.com/mailsec/mailsec/internal/smtpclient"
)

// session runs one SMTP session with addr of host h under policy p and
// tries to hand over msg for rcpts. It returns the transcript, the
// recipients it settled (delivered or bounced; the others stay pending)
// and, for policy may, whether the TLS handshake failed so that the
// caller retries in plaintext. plaintext suppresses STARTTLS (that retry).
func (s *Sender) session(ctx context.Context, h MXHost, addr netip.Addr, p hostPolicy, msg Message, rcpts []string, plaintext bool) (ht Host, settled map[string]Recipient, retryPlain bool) {
	o := s.opts
	ht = Host{
		MX: h.Name, Preference: h.Preference, Addr: netip.AddrPortFrom(addr, uint16(o.SMTPPort)),
		Policy: p.name, PolicyReason: p.reason, PlaintextRetry: plaintext, Started: o.Now(),
	}
	settled = map[string]Recipient{}
	defer func() { ht.Duration = o.Now().Sub(ht.Started) }()
	finish := func(out Outcome, reply string, err error) {
		ht.Outcome, ht.Reply, ht.Err = out, reply, err
	}
	settle := func(list []string, st Status, reply string) {
		for _, r := range list {
			settled[r] = Recipient{Address: r, Status: st, Reply: reply, Host: h.Name}
		}
	}

	sc, err := smtpclient.Dial(ctx, smtpclient.DialFunc(o.Dial), ht.Addr.String(), o.ConnectTimeout,
		smtpclient.Options{Trace: func(line string) { ht.Log = append(ht.Log, line) }})
	if err != nil {
		finish(OutcomeDeferred, "connect to "+ht.Addr.String()+": "+err.Error(), fmt.Errorf("%w: %s: %w", ErrConnect, ht.Addr, err))
		return
	}
	c := conn{Conn: sc, ctx: ctx}
	defer c.Close()
	// refused ends the session after a reply that refuses the whole
	// transaction (to MAIL or DATA): a permanent one (5xx) bounces the
	// recipients of the transaction, any other defers them (RFC 5321
	// §4.2.1).
	refused := func(command string, code int, text string, list []string) {
		c.quit()
		re := &ReplyError{Command: command, Code: code, Text: oneLine(code, text)}
		if code >= 500 {
			settle(list, Bounced, re.Text)
			finish(OutcomeBounced, re.Text, re)
		} else {
			finish(OutcomeDeferred, re.Text, re)
		}
	}

	// Greeting (RFC 5321 §4.2, §3.1). Only a 220 opens a session that
	// counts against MaxSessions.
	code, text, err := c.reply(o.CommandTimeout)
	if err != nil {
		finish(OutcomeDeferred, "greeting: "+err.Error(), err)
		return
	}
	ht.Greeting, ht.GreetingText = code, firstLine(text)
	if code != 220 {
		c.quit()
		finish(OutcomeDeferred, "host refused to talk: "+oneLine(code, text), &ReplyError{Command: "greeting", Code: code, Text: oneLine(code, text)})
		return
	}
	ext, err := s.hello(c)
	if err != nil {
		c.quit()
		finish(OutcomeDeferred, err.Error(), err)
		return
	}
	ht.STARTTLSOffered = ext.Has("STARTTLS")

	if p.tls != tlsNever && !plaintext {
		switch {
		case !ht.STARTTLSOffered && p.tls == tlsRequire:
			c.quit()
			finish(OutcomeDeferred, "TLS is required, but was not offered by host "+h.Name, ErrTLSRequired)
			return
		case ht.STARTTLSOffered:
			code, text, err := c.result(c.StartTLS(o.CommandTimeout))
			if err != nil {
				finish(OutcomeDeferred, err.Error(), err)
				return
			}
			if code != 220 {
				re := &ReplyError{Command: "STARTTLS", Code: code, Text: oneLine(code, text)}
				if p.tls == tlsRequire {
					c.quit()
					finish(OutcomeDeferred, "TLS is required, but STARTTLS was refused: "+oneLine(code, text), fmt.Errorf("%w: %w", ErrTLSRequired, re))
					return
				}
				// may: RFC 3207 §4.1 lets the client go on in plaintext.
				break
			}
			cs, err := c.Handshake(o.CommandTimeout, &tls.Config{
				ServerName: p.sni,
				// Certificates are judged below, by the host's policy
				// (PKIX, DANE or none), after the handshake.
				InsecureSkipVerify: true,
				MinVersion:         tls.VersionTLS12,
			})
			if errors.Is(err, smtpclient.ErrCleartextAfterSTARTTLS) {
				// Whatever arrived with the 220 was sent before the
				// handshake and could be an attacker's response injection;
				// RFC 3207 §4.2: nothing from before TLS may be used.
				finish(OutcomeDeferred, "server sent data after its STARTTLS reply", fmt.Errorf("%w: data after the STARTTLS reply", ErrProtocol))
				return
			}
			ht.SNI = p.sni
			if err != nil {
				c.Note("TLS handshake failed: " + err.Error())
				finish(OutcomeDeferred, "TLS handshake failed: "+err.Error(), fmt.Errorf("%w: %w", ErrTLSHandshake, err))
				retryPlain = p.tls == tlsTry
				return
			}
			ht.TLS, ht.TLSVersion, ht.TLSCipher = true, tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite)
			c.Note(fmt.Sprintf("TLS: %s %s, SNI %q", ht.TLSVersion, ht.TLSCipher, p.sni))
			s.judge(&ht, p, cs, h.Name)
			if p.dane != nil && !ht.DANE.OK {
				c.quit()
				finish(OutcomeDeferred, "Server certificate not verified (DANE): "+ht.DANE.Detail, fmt.Errorf("%w: %s", ErrDANE, ht.DANE.Detail))
				return
			}
			if p.pkix && !ht.PKIX.OK {
				c.quit()
				finish(OutcomeDeferred, "Server certificate not verified: "+ht.PKIX.Detail, fmt.Errorf("%w: %s", ErrCertificate, ht.PKIX.Detail))
				return
			}
			// RFC 3207 §4.2: forget what was learnt before TLS.
			if ext, err = s.hello(c); err != nil {
				c.quit()
				finish(OutcomeDeferred, err.Error(), err)
				return
			}
		}
	}

	// The mail transaction (RFC 5321 §3.3).
	var params []string
	if ext.Has("SIZE") {
		params = append(params, "SIZE="+strconv.Itoa(len(msg.Data))) // RFC 1870
	}
	if ext.Has("8BITMIME") && has8bit(msg.Data) {
		params = append(params, "BODY=8BITMIME") // RFC 6152
	}
	code, text, err = c.result(c.Mail(o.CommandTimeout, msg.From, params...))
	if err != nil {
		finish(OutcomeDeferred, err.Error(), err)
		return
	}
	if code/100 != 2 {
		refused("MAIL", code, text, rcpts)
		return
	}
	var accepted []string
	var tempReply *ReplyError
	var lastBounce *ReplyError
	for _, r := range rcpts {
		code, text, err := c.result(c.Rcpt(o.CommandTimeout, r))
		if err != nil {
			finish(OutcomeDeferred, err.Error(), err)
			return
		}
		re := &ReplyError{Command: "RCPT", Code: code, Text: oneLine(code, text)}
		switch code / 100 {
		case 2:
			accepted = append(accepted, r)
		case 5:
			settle([]string{r}, Bounced, re.Text)
			lastBounce = re
		default:
			tempReply = re
		}
	}
	if len(accepted) == 0 {
		c.quit()
		if tempReply != nil {
			finish(OutcomeDeferred, tempReply.Text, tempReply)
		} else {
			finish(OutcomeBounced, lastBounce.Text, lastBounce)
		}
		return
	}
	code, text, err = c.result(c.Data(o.CommandTimeout))
	if err != nil {
		finish(OutcomeDeferred, err.Error(), err)
		return
	}
	if code != 354 {
		refused("DATA", code, text, accepted)
		return
	}
	if err := c.WriteMessage(o.DataTimeout, msg.Data); err != nil {
		err = c.err(err)
		finish(OutcomeDeferred, err.Error(), err)
		return
	}
	code, text, err = c.reply(o.DataTimeout)
	if err != nil {
		// The server may have taken the message; deferring risks a
		// duplicate rather than a loss (RFC 5321 §4.5.3.2.6, RFC 1047).
		finish(OutcomeDeferred, "after the end of data: "+err.Error(), err)
		return
	}
	re := &ReplyError{Command: "end of data", Code: code, Text: oneLine(code, text)}
	switch code / 100 {
	case 2:
		settle(accepted, Delivered, re.Text)
		finish(OutcomeDelivered, re.Text, nil)
	case 5:
		settle(accepted, Bounced, re.Text)
		finish(OutcomeBounced, re.Text, re)
	default:
		finish(OutcomeDeferred, re.Text, re)
	}
	c.quit()
	return
}

// hello sends EHLO, or HELO when EHLO is refused with 5xx (RFC 5321
// §4.1.4), and returns the extensions offered (none after HELO).
func (s *Sender) hello(c conn) (smtpclient.EHLO, error) {
	t := s.opts.CommandTimeout
	r, ext, err := c.Ehlo(t, s.opts.Hostname)
	if err != nil {
		return ext, c.err(err)
	}
	code, text := r.Code, r.Text()
	if code == 250 {
		return ext, nil
	}
	if code >= 500 {
		hcode, htext, err := c.result(c.Helo(t, s.opts.Hostname))
		if err != nil {
			return ext, err
		}
		if hcode == 250 {
			return ext, nil
		}
		return ext, &ReplyError{Command: "HELO", Code: hcode, Text: oneLine(hcode, htext)}
	}
	return ext, &ReplyError{Command: "EHLO", Code: code, Text: oneLine(code, text)}
}

// judge fills in the certificate verdicts of a TLS session: PKIX always
// (informational unless the policy enforces it), DANE for DANE hosts,
// MTA-STS for hosts under a policy.
func (s *Sender) judge(ht *Host, p hostPolicy, cs tls.ConnectionState, host string) {
	now := s.opts.Now()
	ht.PKIX = pkixVerdict(cs, s.opts.Roots, host, now)
	if p.dane != nil {
		res, err := dane.Verify(cs, p.dane, host, now)
		if err != nil {
			ht.DANE = Verdict{Checked: true, Detail: err.Error()}
		} else {
			var why string
			for _, c := range res.Checks {
				if c.Matched {
					why = c.Reason
					break
				}
			}
			ht.DANE = Verdict{Checked: true, OK: true, Detail: res.Matched.Short() + " " + why}
		}
	}
	if p.sts != nil {
		switch {
		case !p.sts.Matches(host):
			ht.STS = Verdict{Checked: true, Detail: "host not in the policy's mx list"}
		case !ht.PKIX.OK:
			ht.STS = Verdict{Checked: true, Detail: "certificate not PKIX-valid: " + ht.PKIX.Detail}
		default:
			ht.STS = Verdict{Checked: true, OK: true, Detail: "host listed, certificate valid"}
		}
		if !p.stsEnforce && !ht.STS.OK {
			s.opts.Logger.Warn("MTA-STS testing: policy failure (reported, not enforced)", "mx", host, "detail", ht.STS.Detail)
		}
	}
}

// pkixVerdict validates the served chain against roots (nil: the system
// roots) for host at now (RFC 5280; names per RFC 6125: DNS
// subjectAltNames, one-label wildcards).
func pkixVerdict(cs tls.ConnectionState, roots *x509.CertPool, host string, now time.Time) Verdict {
	if len(cs.PeerCertificates) == 0 {
		return Verdict{Checked: true, Detail: "no certificate"}
	}
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	leaf := cs.PeerCertificates[0]
	_, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Roots: roots, Intermediates: inter, CurrentTime: now})
	if err != nil {
		if len(cs.PeerCertificates) == 1 && bytes.Equal(leaf.RawIssuer, leaf.RawSubject) &&
			leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
			return Verdict{Checked: true, Detail: "self-signed certificate (" + leaf.Subject.CommonName + "): " + err.Error()}
		}
		return Verdict{Checked: true, Detail: err.Error()}
	}
	return Verdict{Checked: true, OK: true, Detail: "chain to a trusted root, name " + host}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func has8bit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}
