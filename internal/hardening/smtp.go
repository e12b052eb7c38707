package hardening

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/textproto"
	"strings"
	"time"
)

// smtpConn is a plain SMTP session from a source of the suite's.
type smtpConn struct {
	c  net.Conn
	tp *textproto.Conn
}

func dialSMTP(ctx context.Context, src netip.Addr, dst netip.AddrPort) (*smtpConn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", dst.String())
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	s := &smtpConn{c: c, tp: textproto.NewConn(c)}
	if _, _, err := s.tp.ReadResponse(220); err != nil {
		c.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	return s, nil
}

// cmd sends one command and returns the reply's code and text (a
// non-2xx/3xx reply is no error here: the caller judges it).
func (s *smtpConn) cmd(format string, args ...any) (int, string, error) {
	id, err := s.tp.Cmd(format, args...)
	if err != nil {
		return 0, "", err
	}
	s.tp.StartResponse(id)
	defer s.tp.EndResponse(id)
	code, msg, err := s.tp.ReadResponse(0)
	if _, ok := err.(*textproto.Error); ok {
		err = nil
	}
	return code, msg, err
}

func (s *smtpConn) close() {
	_, _, _ = s.cmd("QUIT")
	s.c.Close()
}

// smtpGreets tells whether the SMTP listener greets a new connection.
func smtpGreets(ctx context.Context, src netip.Addr, dst netip.AddrPort) (bool, string) {
	s, err := dialSMTP(ctx, src, dst)
	if err != nil {
		return false, err.Error()
	}
	s.close()
	return true, ""
}

// webAnswers tells whether the web UI answers its home page.
func webAnswers(ctx context.Context, base string) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/", nil)
	if err != nil {
		return false, err.Error()
	}
	// The lab's web UI is plain HTTP on loopback; an https base would be
	// the lab CA's, which this check does not need to verify.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // reachability only
	resp, err := client.Do(req)
	if err != nil {
		return false, err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, resp.Status
	}
	return true, ""
}

// relay tries every address trick that has made mail servers relay: each
// RCPT must be refused (5xx), none accepted.
func (s *Suite) relay(ctx context.Context) Check {
	a := strings.TrimSuffix(s.Env.ZoneA, ".")
	b := strings.TrimSuffix(s.Env.ZoneB, ".")
	victim := "victim@relay-target.example"
	tricks := []string{
		victim,
		"victim%relay-target.example@" + a,        // percent hack
		"@" + a + ":" + victim,                    // source route (RFC 5321 §4.1.2, to be ignored)
		"@" + a + ",@" + b + ":" + victim,         // a longer source route
		`"` + victim + `"@` + a,                   // quoted local part holding an address
		`"victim%relay-target.example"@` + a,      // quoted percent hack
		"victim!relay-target.example@" + a,        // bang path
		"relay-target.example!victim@" + a,        // bang path, UUCP order
		victim + "@" + a,                          // double at
		"victim@[127.0.0.1]",                      // address literal
		"victim@[IPv6:::1]",                       // IPv6 literal
		"victim@sub." + a,                         // a subdomain of zone A
		"victim@" + a + ".relay-target.example",   // zone A as a label of another domain
		"postmaster@relay-target.example",         // a role address elsewhere
		"victim@relay-target.example.",            // trailing dot
		"t-0000000000000000@relay-target.example", // a test-shaped local part elsewhere
	}
	sess, err := dialSMTP(ctx, source(79, 1, 1), s.Env.SMTP)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	defer sess.close()
	var bad []string
	if code, msg, err := sess.cmd("EHLO relay-probe.example"); err != nil || code != 250 {
		return result([]string{fmt.Sprintf("EHLO: %d %s %v", code, msg, err)}, nil, "")
	}
	refused := 0
	for _, rcpt := range tricks {
		if code, msg, err := sess.cmd("MAIL FROM:<probe@relay-probe.example>"); err != nil || code != 250 {
			bad = append(bad, fmt.Sprintf("MAIL FROM: %d %s %v", code, msg, err))
			break
		}
		code, msg, err := sess.cmd("RCPT TO:<%s>", rcpt)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("RCPT TO:<%s>: %v", rcpt, err))
		case code >= 500 && code < 600:
			refused++
		default:
			bad = append(bad, fmt.Sprintf("RCPT TO:<%s>: %d %s", rcpt, code, msg))
		}
		if code, _, err := sess.cmd("RSET"); err != nil || code != 250 {
			bad = append(bad, fmt.Sprintf("RSET: %d %v", code, err))
			break
		}
	}
	return result(bad, map[string]any{"tricks": len(tricks), "refused": refused},
		fmt.Sprintf("%d of %d relay tricks refused with 5xx", refused, len(tricks)))
}

// oversizeTLSRPT sends tlsrpt@A a report over the size limit, once
// announced with SIZE and once not: both refused with 552, nothing stored.
func (s *Suite) oversizeTLSRPT(ctx context.Context) Check {
	before, _, err := s.storeStats(ctx)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	const size = 1<<20 + 64<<10 // just over smtp.tlsrpt_max_bytes' default (1 MiB)
	rcpt := "tlsrpt@" + strings.TrimSuffix(s.Env.ZoneA, ".")
	var bad []string
	var codes []int
	// Announced: refused at MAIL FROM or RCPT (RFC 1870 §6.1).
	if sess, err := dialSMTP(ctx, source(80, 1, 1), s.Env.SMTP); err != nil {
		bad = append(bad, err.Error())
	} else {
		sess.cmd("EHLO reporter.example")
		code, msg, _ := sess.cmd("MAIL FROM:<reports@reporter.example> SIZE=%d", size)
		if code == 250 {
			code, msg, _ = sess.cmd("RCPT TO:<%s>", rcpt)
		}
		codes = append(codes, code)
		if code != 552 {
			bad = append(bad, fmt.Sprintf("announced SIZE=%d: %d %s, want 552", size, code, msg))
		}
		sess.close()
	}
	// Not announced: refused after DATA.
	if sess, err := dialSMTP(ctx, source(80, 2, 1), s.Env.SMTP); err != nil {
		bad = append(bad, err.Error())
	} else {
		sess.cmd("EHLO reporter.example")
		sess.cmd("MAIL FROM:<reports@reporter.example>")
		code, msg, _ := sess.cmd("RCPT TO:<%s>", rcpt)
		if code == 250 {
			code, msg, _ = sess.cmd("DATA")
			if code == 354 {
				w := sess.tp.DotWriter()
				fmt.Fprintf(w, "From: reports@reporter.example\r\nTo: %s\r\nSubject: Report Domain: %s\r\nContent-Type: application/tlsrpt+json\r\n\r\n", rcpt, s.Env.ZoneA)
				line := strings.Repeat("x", 998) + "\r\n"
				for n := 0; n < size; n += len(line) {
					if _, err := w.Write([]byte(line)); err != nil {
						break
					}
				}
				w.Close()
				code, msg, _ = sess.tp.ReadResponse(0)
			}
		}
		codes = append(codes, code)
		if code != 552 {
			bad = append(bad, fmt.Sprintf("unannounced %d octets: %d %s, want 552", size, code, msg))
		}
		sess.close()
	}
	after, _, err := s.storeStats(ctx)
	if err != nil {
		bad = append(bad, err.Error())
	} else if d := after["tlsrpt_reports"] - before["tlsrpt_reports"]; d != 0 {
		bad = append(bad, fmt.Sprintf("%d TLS-RPT rows stored", d))
	}
	return result(bad, map[string]any{"octets": size, "replies": codes}, fmt.Sprintf("a %d-octet report: replies %v", size, codes))
}

// result makes a check from its problems: ok when there are none.
func result(bad []string, figures map[string]any, summary string) Check {
	c := Check{OK: len(bad) == 0, Figures: figures, Detail: summary}
	if len(bad) > 0 {
		c.Detail = strings.Join(bad, "; ")
		if summary != "" {
			c.Detail = summary + ": " + c.Detail
		}
	}
	return c
}
