package hardening

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// mailbox is the suite's stand-in for the lab mailbox (lab/run's Postfix
// on LAB_MAILBOX): an SMTP server that counts the mails it receives per
// recipient — where the service's result mails go (every
// NAME.sender.lab.internal has it as MX), counted per recipient.
type mailbox struct {
	mu     sync.Mutex
	byRcpt map[string]int
	server *smtp.Server
}

func startMailbox(addr netip.AddrPort) (*mailbox, error) {
	mb := &mailbox{byRcpt: map[string]int{}}
	s := smtp.NewServer(mb)
	s.Domain = "mbox.lab.internal"
	s.ReadTimeout, s.WriteTimeout = 30*time.Second, 30*time.Second
	s.MaxMessageBytes = 1 << 20
	l, err := net.Listen("tcp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("the suite's mailbox on %s: %w", addr, err)
	}
	mb.server = s
	go func() { _ = s.Serve(l) }()
	return mb, nil
}

func (mb *mailbox) close() { mb.server.Close() }
func (mb *mailbox) count(rcpt string) int {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return mb.byRcpt[strings.ToLower(rcpt)]
}

// NewSession implements smtp.Backend.
func (mb *mailbox) NewSession(*smtp.Conn) (smtp.Session, error) { return &mailboxSession{mb: mb}, nil }

type mailboxSession struct {
	mb    *mailbox
	rcpts []string
}

func (s *mailboxSession) Mail(string, *smtp.MailOptions) error { return nil }
func (s *mailboxSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *mailboxSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.mb.mu.Lock()
	defer s.mb.mu.Unlock()
	for _, to := range s.rcpts {
		s.mb.byRcpt[strings.ToLower(to)]++
	}
	return nil
}
func (s *mailboxSession) Reset()        { s.rcpts = nil }
func (s *mailboxSession) Logout() error { return nil }

// apiTest is what the suite reads of GET /api/v1/tests/{id}.
type apiTest struct {
	Report struct {
		Final   bool   `json:"final"`
		Policy  string `json:"policy"`
		History []struct {
			State string `json:"state"`
		} `json:"history"`
		Mail *struct {
			State  string `json:"state"`
			Reason string `json:"reason"`
		} `json:"mail"`
	} `json:"report"`
}

// createdTest is a test made through the API, with its owner key (the
// test's routes answer only to it).
type createdTest struct {
	ID, A, Key string
}

// httpFrom is an HTTP client whose connections come from src: the web's
// start limit counts per client network, and the suite makes many tests.
func httpFrom(src netip.Addr) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
}

// createTest makes a test through the web API from src, as a user does.
func (s *Suite) createTest(ctx context.Context, src netip.Addr) (createdTest, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(s.Env.Web, "/")+"/api/v1/tests", nil)
	if err != nil {
		return createdTest{}, err
	}
	resp, err := httpFrom(src).Do(req)
	if err != nil {
		return createdTest{}, err
	}
	defer resp.Body.Close()
	var t struct {
		ID  string `json:"id"`
		A   string `json:"address_a"`
		Key string `json:"owner_key"`
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &t) != nil || t.A == "" {
		return createdTest{}, fmt.Errorf("POST /api/v1/tests: %s %.200s", resp.Status, body)
	}
	return createdTest{ID: t.ID, A: t.A, Key: t.Key}, nil
}

// readTest reads a test through the API, with its owner key.
func (s *Suite) readTest(ctx context.Context, ct createdTest) (apiTest, error) {
	var t apiTest
	id := ct.ID
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(s.Env.Web, "/")+"/api/v1/tests/"+id, nil)
	if err != nil {
		return t, err
	}
	req.Header.Set("Authorization", "Bearer "+ct.Key)
	resp, err := httpFrom(source(81, 1, 1)).Do(req)
	if err != nil {
		return t, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return t, fmt.Errorf("GET /api/v1/tests/%s: %s", id, resp.Status)
	}
	return t, json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&t)
}

// sendTestMail delivers one plain-text test mail from src as an MTA with
// policy "none" would: the service answers 451 until it has seen what the
// sender does once STARTTLS is offered (docs/smtp.md, acknowledgement), so
// after a 4xx it tries again once the downgrade window is over, at most
// three times. It returns the last reply to DATA (0: the session broke).
func (s *Suite) sendTestMail(ctx context.Context, src netip.Addr, from, rcpt string) int {
	code := 0
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return code
			case <-time.After(s.Env.Downgrade + time.Second):
			}
		}
		code = s.sendOnce(ctx, src, from, rcpt)
		if code == 250 || code >= 500 {
			return code
		}
	}
	return code
}

// sendOnce is one SMTP session of sendTestMail.
func (s *Suite) sendOnce(ctx context.Context, src netip.Addr, from, rcpt string) int {
	sess, err := dialSMTP(ctx, src, s.Env.SMTP)
	if err != nil {
		return 0
	}
	defer sess.close()
	_ = sess.c.SetDeadline(time.Now().Add(30 * time.Second))
	if code, _, err := sess.cmd("EHLO %s", strings.SplitN(from, "@", 2)[1]); err != nil || code != 250 {
		return 0
	}
	if code, _, err := sess.cmd("MAIL FROM:<%s>", from); err != nil || code != 250 {
		return 0
	}
	if code, _, err := sess.cmd("RCPT TO:<%s>", rcpt); err != nil || code != 250 {
		return code
	}
	if code, _, err := sess.cmd("DATA"); err != nil || code != 354 {
		return code
	}
	w := sess.tp.DotWriter()
	fmt.Fprintf(w, "From: <%s>\r\nTo: <%s>\r\nSubject: lab/hardening\r\nMessage-ID: <%s@hardening.lab.internal>\r\n\r\nA test mail of lab/hardening.\r\n", from, rcpt, runID())
	if err := w.Close(); err != nil {
		return 0
	}
	code, _, _ := sess.tp.ReadResponse(0)
	return code
}

func runID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// waitFinal polls a test until it is final and its result mail is no
// longer pending, or the deadline; it returns the last reading.
func (s *Suite) waitFinal(ctx context.Context, ct createdTest, deadline time.Time) (apiTest, error) {
	id := ct.ID
	for {
		t, err := s.readTest(ctx, ct)
		if err == nil && t.Report.Final && t.Report.Mail != nil && t.Report.Mail.State != "pending" && t.Report.Mail.State != "" {
			return t, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			if err == nil {
				err = fmt.Errorf("test %s not final with its result mail settled (final %v)", id, t.Report.Final)
			}
			return t, err
		}
		time.Sleep(time.Second)
	}
}
