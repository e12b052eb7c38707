package hardening

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/policyhost"
)

// badTLSRPTReports sends malformed TLS-RPT reports and gzip bombs by mail
// to tlsrpt@A and by HTTPS POST to the policy host's report path, and an
// oversize one by POST (the mail path's size is R3 oversize TLS-RPT):
// each refused with its reason (554 5.6.0; 400, 413), no row stored.
func (s *Suite) badTLSRPTReports(ctx context.Context) Check {
	before, _, err := s.storeStats(ctx)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	zoneA := strings.TrimSuffix(s.Env.ZoneA, ".")
	rcpt := "tlsrpt@" + zoneA
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(make([]byte, 900_000)) // about 1 KiB compressed: a thousandfold
	_ = zw.Close()
	bomb := zipped.Bytes()
	malformed := []byte(`{"organization-name": "Reporter", "report-id": "x", "policies": [`)
	head := "From: reports@reporter.example\r\nTo: " + rcpt + "\r\nSubject: Report Domain: " + zoneA + "\r\nMIME-Version: 1.0\r\n"
	var bad []string
	var replies []string
	for _, m := range []struct{ name, mail, want string }{
		{"malformed JSON by mail", head + "Content-Type: application/tlsrpt+json\r\n\r\n" + string(malformed) + "\r\n", "not a valid TLS report"},
		{"gzip bomb by mail", head + "Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			base64.StdEncoding.EncodeToString(bomb) + "\r\n", "expands too much"},
		{"no report by mail", head + "Content-Type: text/plain\r\n\r\nhello\r\n", "no application/tlsrpt+json"},
	} {
		code, msg, err := s.sendMail(ctx, rcpt, m.mail)
		replies = append(replies, fmt.Sprintf("%s: %d", m.name, code))
		if err != nil || code != 554 || !strings.HasPrefix(msg, "5.6.0 TLS-RPT report refused") || !strings.Contains(msg, m.want) {
			bad = append(bad, fmt.Sprintf("%s: %d %s (%v), want 554 5.6.0 saying %q", m.name, code, msg, err, m.want))
		}
	}
	host, _, _ := net.SplitHostPort(s.Env.PolicyHost.String())
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: source(80, 4, 1).AsSlice()}, Timeout: 5 * time.Second}
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{ServerName: "mta-sts." + zoneA, InsecureSkipVerify: true}}} //nolint:gosec // the lab CA; the answer is what is checked
	for _, p := range []struct {
		name, ctype string
		body        []byte
		status      int
		want        string
	}{
		{"malformed JSON by POST", "application/tlsrpt+json", malformed, 400, "not a valid TLS report"},
		{"gzip bomb by POST", "application/tlsrpt+gzip", bomb, 400, "expands too much"},
		{"oversize by POST", "application/tlsrpt+json", bytes.Repeat([]byte(" "), 1<<20+64<<10), 413, "larger than"},
		{"wrong media type by POST", "application/json", malformed, 415, "Content-Type must be"},
	} {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+net.JoinHostPort(host, fmt.Sprint(s.Env.PolicyHost.Port()))+policyhost.ReportPath, bytes.NewReader(p.body))
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		req.Host = "mta-sts." + zoneA
		req.Header.Set("Content-Type", p.ctype)
		resp, err := c.Do(req)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s: %v", p.name, err))
			continue
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		replies = append(replies, fmt.Sprintf("%s: %d", p.name, resp.StatusCode))
		if resp.StatusCode != p.status || !strings.Contains(string(body), p.want) {
			bad = append(bad, fmt.Sprintf("%s: %d %q, want %d saying %q", p.name, resp.StatusCode, body, p.status, p.want))
		}
	}
	after, _, err := s.storeStats(ctx)
	if err != nil {
		bad = append(bad, err.Error())
	} else if d := after["tlsrpt_reports"] - before["tlsrpt_reports"]; d != 0 {
		bad = append(bad, fmt.Sprintf("%d TLS-RPT rows stored", d))
	}
	return result(bad, map[string]any{"replies": replies}, strings.Join(replies, ", "))
}

// sendMail sends one mail to rcpt from the suite's reporter address and
// returns the reply to its data.
func (s *Suite) sendMail(ctx context.Context, rcpt, mail string) (int, string, error) {
	sess, err := dialSMTP(ctx, source(80, 3, 1), s.Env.SMTP)
	if err != nil {
		return 0, "", err
	}
	defer sess.close()
	sess.cmd("EHLO reporter.example")
	if code, msg, err := sess.cmd("MAIL FROM:<reports@reporter.example>"); code != 250 {
		return code, msg, err
	}
	if code, msg, err := sess.cmd("RCPT TO:<%s>", rcpt); code != 250 {
		return code, msg, err
	}
	if code, msg, err := sess.cmd("DATA"); code != 354 {
		return code, msg, err
	}
	w := sess.tp.DotWriter()
	if _, err := io.WriteString(w, mail); err != nil {
		return 0, "", err
	}
	if err := w.Close(); err != nil {
		return 0, "", err
	}
	code, msg, err := sess.tp.ReadResponse(0)
	if code != 0 {
		err = nil
	}
	return code, msg, err
}
