package hardening

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// The lab's SSRF canaries (lab/lib.sh): a sender domain whose MX hosts and
// MTA-STS host resolve to private addresses outside the service's
// network.allow_destinations.
const ssrfDomain = "ssrf.lab.internal"

var ssrfCanaries = []string{"10.99.0.1", "169.254.99.1"}

// ssrf listens on the canary addresses (SMTP and HTTPS ports), then makes
// the service look at the canary domain every way a user can: a web check
// of the domain, and a test whose authenticated sender is in it (its
// inbound check and its result mail). No connection may reach a canary; the
// result mail says why it was not delivered.
func (s *Suite) ssrf(ctx context.Context) Check {
	var hits atomic.Int64
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
		for _, a := range ssrfCanaries {
			_ = exec.Command("ip", "addr", "del", a+"/32", "dev", "lo").Run()
		}
	}()
	for _, a := range ssrfCanaries {
		if out, err := exec.CommandContext(ctx, "ip", "addr", "add", a+"/32", "dev", "lo").CombinedOutput(); err != nil && !strings.Contains(string(out), "File exists") {
			return result([]string{fmt.Sprintf("ip addr add %s: %v %s", a, err, out)}, nil, "")
		}
		for _, port := range []string{"25", "443"} {
			l, err := net.Listen("tcp", net.JoinHostPort(a, port))
			if err != nil {
				return result([]string{err.Error()}, nil, "")
			}
			listeners = append(listeners, l)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					hits.Add(1)
					c.Close()
				}
			}()
		}
	}
	var bad []string
	// 1. A web check of the domain, as a user asks for it.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.Env.Web, "/")+"/api/v1/check?domain="+ssrfDomain, nil)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	c := httpFrom(source(94, 1, 1))
	c.Timeout = 2 * time.Minute
	checkStatus, checkSaid := "", ""
	if resp, err := c.Do(req); err != nil {
		bad = append(bad, "web check: "+err.Error())
	} else {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		checkStatus = resp.Status
		if i := strings.Index(string(body), "public"); i >= 0 {
			checkSaid = string(body[max(0, i-80):min(len(body), i+40)])
		}
	}
	// 2. A test whose authenticated sender is in the canary domain: its
	// sender's inbound check and its result mail.
	t, err := s.createTest(ctx, source(94, 2, 1))
	if err != nil {
		return result(append(bad, err.Error()), nil, "")
	}
	if code := s.sendTestMail(ctx, senderSource(3, 1, 1), "lab@"+ssrfDomain, t.A); code != 250 {
		bad = append(bad, fmt.Sprintf("the test mail got %d", code))
	}
	mailState, mailReason := "", ""
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		rt, err := s.readTest(ctx, t)
		if err != nil || !rt.Report.Final || rt.Report.Mail == nil {
			continue
		}
		mailState, mailReason = rt.Report.Mail.State, rt.Report.Mail.Reason
		if strings.Contains(mailReason, "public") || mailState == "sent" || mailState == "failed" {
			break
		}
	}
	if mailState == "sent" {
		bad = append(bad, "the result mail was sent to a private address")
	}
	if !strings.Contains(mailReason, "public") {
		bad = append(bad, fmt.Sprintf("the result mail's state does not say why it is not delivered: %s %q", mailState, mailReason))
	}
	time.Sleep(2 * time.Second)
	if n := hits.Load(); n != 0 {
		bad = append(bad, fmt.Sprintf("%d connection(s) reached the canaries", n))
	}
	return result(bad, map[string]any{"canary_connections": hits.Load(), "web_check_status": checkStatus, "web_check_says": checkSaid,
		"result_mail_state": mailState, "result_mail_reason": mailReason},
		fmt.Sprintf("canaries %s: %d connections; web check %s; result mail %s (%q)", strings.Join(ssrfCanaries, ", "), hits.Load(), checkStatus, mailState, mailReason))
}
