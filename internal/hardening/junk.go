package hardening

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// junkThenReal floods the store the way Internet noise would — policy
// fetches from many networks, fixed-address tests from forged senders —
// and then runs one real test as a user would: it must still get its
// right verdict ("none", the suite's sender sends in plain text whatever
// is offered) and its result mail within the quiet time and a margin.
func (s *Suite) junkThenReal(ctx context.Context) Check {
	mb, err := startMailbox(mailboxAddr)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	defer mb.close()
	before, _, err := s.storeStats(ctx)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	fetches, fetchOK := s.junkFetches(ctx, s.Sizes.JunkFetches)
	fixed, fixedAccepted, fixedRefused := s.junkFixedTests(ctx, s.Sizes.JunkFixedTests)
	after, _, err := s.storeStats(ctx)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	figures := map[string]any{"junk_fetches": fetches, "junk_fetches_answered": fetchOK,
		"policy_fetch_rows_added": after["policy_fetches"] - before["policy_fetches"],
		"junk_fixed_tests_tried":  fixed, "junk_fixed_tests_accepted": fixedAccepted, "junk_fixed_tests_refused": fixedRefused,
		"tests_rows_added": after["tests"] - before["tests"]}

	var bad []string
	start := time.Now()
	real, err := s.createTest(ctx, source(86, 1, 1))
	if err != nil {
		return result([]string{err.Error()}, figures, "")
	}
	from := "lab@r3-" + runID() + ".sender.lab.internal"
	if code := s.sendTestMail(ctx, senderSource(2, 1, 1), from, real.A); code != 250 {
		bad = append(bad, fmt.Sprintf("the real test mail got %d", code))
	}
	t, err := s.waitFinal(ctx, real, time.Now().Add(3*time.Minute))
	if err != nil {
		bad = append(bad, "the real test: "+err.Error())
	} else if t.Report.Policy != "none" {
		bad = append(bad, fmt.Sprintf("the real test's verdict is %q, want none", t.Report.Policy))
	}
	var mailAfter time.Duration
	for deadline := time.Now().Add(30 * time.Second); mb.count(from) == 0 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
	}
	if mb.count(from) == 0 {
		bad = append(bad, "the real test's result mail did not arrive")
	} else {
		mailAfter = time.Since(start)
	}
	figures["real_verdict"], figures["real_result_mail_seconds"] = t.Report.Policy, round1(mailAfter.Seconds())
	return result(bad, figures, fmt.Sprintf("%d junk policy fetches (+%d rows), %d junk fixed tests tried (%d accepted, %d refused at the caps); then a real test: verdict %s, result mail after %.0f s",
		fetches, figures["policy_fetch_rows_added"], fixed, fixedAccepted, fixedRefused, t.Report.Policy, mailAfter.Seconds()))
}

// junkFetches GETs zone A's MTA-STS policy n times from many networks
// (and a few junk paths), 32 at a time; it returns how many it sent and
// how many were answered.
func (s *Suite) junkFetches(ctx context.Context, n int) (sent, answered int64) {
	host, _, _ := net.SplitHostPort(s.Env.PolicyHost.String())
	var ok, tried atomic.Int64
	paths := []string{"/.well-known/mta-sts.txt", "/.well-known/mta-sts.txt", "/.well-known/mta-sts.txt", "/", "/wp-login.php", "/.well-known/mta-sts.txt?x=1"}
	fanOut(ctx, n, 32, func(i int) {
		src := source(87+i/60000, (i/200)%250, 1+i%200)
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
		c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true,
			TLSClientConfig: &tls.Config{ServerName: "mta-sts." + strings.TrimSuffix(s.Env.ZoneA, "."), InsecureSkipVerify: true}}} //nolint:gosec // junk
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+net.JoinHostPort(host, fmt.Sprint(s.Env.PolicyHost.Port()))+paths[i%len(paths)], nil)
		if err != nil {
			return
		}
		req.Host = "mta-sts." + strings.TrimSuffix(s.Env.ZoneA, ".")
		tried.Add(1)
		if resp, err := c.Do(req); err == nil {
			resp.Body.Close()
			ok.Add(1)
		}
	})
	return tried.Load(), ok.Load()
}

// junkFixedTests sends n plain-text mails to the fixed address test@A,
// each from a forged sender, from 10 addresses: the server creates at most
// its caps of open fixed tests and refuses the rest at RCPT.
func (s *Suite) junkFixedTests(ctx context.Context, n int) (tried, accepted, refused int64) {
	rcpt := "test@" + strings.TrimSuffix(s.Env.ZoneA, ".")
	var a, r, t atomic.Int64
	fanOut(ctx, n, 32, func(i int) {
		sess, err := dialSMTP(ctx, source(90, 1, 1+i%10), s.Env.SMTP)
		if err != nil {
			return
		}
		defer sess.close()
		t.Add(1)
		sess.cmd("EHLO junk.example")
		sess.cmd("MAIL FROM:<forged%d-%s@victim%d.example>", i, runID(), i%7)
		switch code, _, _ := sess.cmd("RCPT TO:<%s>", rcpt); {
		case code == 250:
			a.Add(1)
		case code >= 400:
			r.Add(1)
		}
	})
	return t.Load(), a.Load(), r.Load()
}
