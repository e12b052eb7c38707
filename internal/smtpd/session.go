package smtpd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/tlsrptintake"
	"github.com/mailsec/mailsec/internal/untrusted"
	"github.com/mailsec/mailsec/internal/verdict"
)

// backend creates go-smtp sessions. go-smtp starts a session at EHLO/HELO
// and a new one after STARTTLS; both belong to one trackedConn and record.
type backend struct{ s *Server }

// Replies (RFC 5321 §4.2, enhanced codes RFC 3463).
var (
	errTempFailure = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "temporary failure, try again later"}
	errClosing     = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "closing connection"}
)

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	tc := trackedOf(c.Conn())
	if tc == nil {
		return nil, errors.New("internal error: untracked connection")
	}
	sess := &session{s: b.s, conn: c, tc: tc, rec: tc.rec}
	tc.rec.mu.Lock()
	tc.rec.c.EHLO = untrusted.Truncate(c.Hostname(), 255) // written with the next update
	tc.rec.mu.Unlock()
	if err := sess.noteTLS(); err != nil {
		return nil, errTempFailure
	}
	return sess, nil
}

// session is one go-smtp session: from EHLO to STARTTLS, or to the end.
type session struct {
	s    *Server
	conn *smtp.Conn
	tc   *trackedConn
	rec  *record
	tx   transaction
}

// transaction is the mail in progress (RFC 5321 §3.3).
type transaction struct {
	from       string
	size       int64      // the SIZE parameter of MAIL (RFC 1870); 0 if none
	test       store.Test // ID "" while no recipient named a test
	tlsrpt     bool
	hasA, hasB bool
}

// noteTLS records a completed STARTTLS handshake: go-smtp logs out the
// session that issued STARTTLS right after the handshake and opens the
// next one at the following EHLO, both before any reply on the encrypted
// stream.
func (ss *session) noteTLS() error {
	cs, ok := ss.conn.TLSConnectionState()
	if !ok || !cs.HandshakeComplete {
		return nil
	}
	r := ss.rec
	r.mu.Lock()
	r.markTLS(cs)
	r.mu.Unlock()
	if err := ss.s.save(r); err != nil {
		r.log.Error("smtp: recording the TLS handshake", "err", err)
		return err
	}
	return nil
}

func (ss *session) Reset() {
	ss.tx = transaction{}
	ss.rec.mu.Lock()
	ss.rec.inTx = false
	ss.rec.dataLimit = 0
	ss.rec.mu.Unlock()
}

func (ss *session) Logout() error {
	_ = ss.noteTLS()
	ss.Reset()
	return nil
}

// Mail starts a transaction: state Mail, the sender recorded.
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	if ss.tc.closing() {
		return errClosing
	}
	ss.tx = transaction{from: from}
	if opts != nil {
		ss.tx.size = opts.Size
	}
	r := ss.rec
	r.mu.Lock()
	r.mails++
	if r.mails > maxMailsPerConnection {
		r.mu.Unlock()
		ss.tc.setCloseAfterWrite("too many mails in one connection")
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many mails in one connection"}
	}
	r.inTx = true
	r.dataLimit = 0
	r.c.MailFrom = untrusted.Truncate(from, 1024)
	r.c.RcptTo = nil
	r.c.Reply = ""
	r.c.MessageBytes = 0
	r.c.Signatures = nil
	r.c.Authentication = nil
	r.raise(store.StateMail)
	if !r.tlsDone && r.base == 0 {
		// A plain-text session (RFC 3207 not used): persona 1, or 7 on
		// zone B's own address; recipients in B may still make it 7.
		r.base = ss.s.plainPersona(r)
		r.byDefault = r.base != ss.s.zoneBPersona
		r.c.Persona = r.base
	}
	r.dirty = true
	r.mu.Unlock()
	if err := ss.s.save(r); err != nil {
		r.log.Error("smtp: recording MAIL FROM", "err", err)
		return errTempFailure
	}
	return nil
}

// Rcpt accepts test addresses only: never a relay (RFC 5321 §3.6.2).
func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.tc.closing() {
		return errClosing
	}
	cls := ss.s.classify(to)
	switch {
	case cls.kind == rcptForeign:
		return ss.reject(550, smtp.EnhancedCode{5, 7, 1}, "relay access denied: not a test address")
	case ss.s.opts.AcceptAll:
		return ss.accept(to, cls, store.Test{})
	case cls.kind == rcptUnknown:
		return ss.reject(550, smtp.EnhancedCode{5, 1, 1}, "no such test address")
	case cls.kind == rcptTLSRPT:
		if ss.tx.test.ID != "" {
			return separately()
		}
		if ss.tx.size > ss.s.opts.TLSRPTMaxBytes {
			return ss.reject(552, smtp.EnhancedCode{5, 3, 4}, tlsrptTooLarge(ss.s.opts.TLSRPTMaxBytes))
		}
		if !ss.tx.tlsrpt && !ss.s.tlsrptRate.Allow(ss.rec.snapshot().ClientKey) {
			// RFC 5321 §4.2.5: 450 asks the reporter to retry later.
			return ss.reject(450, smtp.EnhancedCode{4, 7, 1}, "too many TLS-RPT reports from your network, try again later")
		}
		ss.tx.tlsrpt = true
		ss.rec.mu.Lock()
		ss.rec.dataLimit = ss.s.opts.TLSRPTMaxBytes
		ss.rec.mu.Unlock()
		return ss.accept(to, cls, store.Test{})
	}

	ctx, cancel := context.WithTimeout(context.Background(), ss.s.opts.StoreTimeout)
	defer cancel()
	var test store.Test
	var err error
	if cls.kind == rcptToken {
		test, err = ss.s.opts.Store.Test(ctx, cls.token)
		if errors.Is(err, store.ErrNotFound) || err == nil && test.State == store.TestFinal {
			return ss.reject(550, smtp.EnhancedCode{5, 1, 1}, "unknown or finished test")
		}
		if err == nil && cls.slot != 0 && cls.slot != test.Slot {
			// A slot's names are its test's evidence: another test's
			// token there would mix two tests' look-ups.
			return ss.reject(550, smtp.EnhancedCode{5, 1, 1}, "this test does not use this domain; use the addresses of its page")
		}
	} else { // rcptFixed: the test is keyed by the envelope sender
		if ss.tx.from == "" {
			return ss.reject(550, smtp.EnhancedCode{5, 7, 1}, "a fixed test address needs a sender address")
		}
		test, err = ss.s.fixedTest(ctx, canonSender(ss.tx.from), ss.rec.snapshot().ClientKey, ss.s.now())
		if errors.Is(err, store.ErrFixedTestsPerClient) || errors.Is(err, store.ErrFixedTestsFull) {
			ss.rec.log.Warn("smtp: fixed-address test refused", "err", err)
			// RFC 5321 §4.5.3.1.10: 452, the client may retry later, when
			// open tests have become final.
			return ss.reject(452, smtp.EnhancedCode{4, 5, 3}, fixedTestsFull(err))
		}
	}
	if err != nil {
		ss.rec.log.Error("smtp: looking up the test", "err", err)
		return errTempFailure
	}
	if ss.tx.tlsrpt || (ss.tx.test.ID != "" && ss.tx.test.ID != test.ID) {
		return separately()
	}
	return ss.accept(to, cls, test)
}

// fixedTestsFull is the text of the 452 past a cap of the open
// fixed-address tests.
func fixedTestsFull(err error) string {
	if errors.Is(err, store.ErrFixedTestsPerClient) {
		return "too many open tests of the fixed address from your network; use a t-<token> address from the web page, or try again later"
	}
	return "too many open tests of the fixed address; use a t-<token> address from the web page, or try again later"
}

// separately answers 452 for a recipient that belongs to another test (or
// is the TLS-RPT address): the client sends it in a later transaction
// (RFC 5321 §4.5.3.1.10), so each mail has one test.
func separately() error {
	return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 5, 3}, Message: "one test per mail: send this recipient separately"}
}

// canonSender is the key of fixed-address tests: the envelope sender with
// its domain lower-case (the local part is the sender's, RFC 5321 §2.4).
func canonSender(from string) string {
	at := strings.LastIndexByte(from, '@')
	if at < 0 {
		return from
	}
	return from[:at] + "@" + dnsname.Canonical(from[at+1:])
}

// accept records an accepted recipient, decides the persona again, gives
// the connection its test and ties earlier connections of the client.
func (ss *session) accept(to string, cls rcptClass, test store.Test) error {
	now := ss.s.now()
	switch cls.zone {
	case persona.ZoneA:
		ss.tx.hasA = true
	case persona.ZoneB:
		ss.tx.hasB = true
	}
	r := ss.rec
	r.mu.Lock()
	r.c.RcptTo = append(r.c.RcptTo, untrusted.Truncate(to, 1024))
	if test.ID != "" {
		ss.tx.test = test
		if r.c.TestID == "" {
			r.c.TestID = test.ID
		}
	}
	// DESIGN.md §2: without STARTTLS or without a name for the persona,
	// mail for B only makes the connection persona 7.
	if r.base != 0 {
		p := r.base
		if r.byDefault && ss.tx.hasB && !ss.tx.hasA {
			p = ss.s.zoneBPersona
		}
		r.c.Persona = p
	}
	r.dirty = true
	client := r.c.Client.Addr()
	r.mu.Unlock()
	if err := ss.s.save(r); err != nil {
		r.log.Error("smtp: recording RCPT TO", "err", err)
		return errTempFailure
	}
	if test.ID == "" {
		return nil
	}
	err := ss.s.storeOp(func(ctx context.Context) error {
		if test.Sender == "" && ss.tx.from != "" {
			test.Sender = canonSender(ss.tx.from)
			test.Updated = now
			if err := ss.s.opts.Store.UpdateTest(ctx, test); err != nil {
				return err
			}
			ss.tx.test = test
		}
		// The tie rule (evidence.Tie, docs/smtp.md): connections of this
		// client address that ended before naming a test.
		n, err := ss.s.evidence.Tie(ctx, test, client, now)
		if n > 0 {
			r.log.Debug("smtp: tied connections to test", "test", test.ID, "n", n)
		}
		return err
	})
	if err != nil {
		r.log.Error("smtp: tying connections to the test", "test", test.ID, "err", err)
		return errTempFailure
	}
	if hook := ss.s.opts.TestSender; hook != nil && ss.tx.from != "" {
		hook(test.ID, ss.tx.from) // the inbound check of the sender's domain; never blocks
	}
	return nil
}

// reject records and returns a refusal of a recipient. Past the limit of
// rejected recipients the connection is answered 421 and closed.
func (ss *session) reject(code int, ec smtp.EnhancedCode, msg string) error {
	limit := max(2*ss.s.opts.MaxRecipients, minRejectedRecipients)
	err := &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
	r := ss.rec
	r.mu.Lock()
	r.rejected++
	if r.rejected > limit {
		err = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "too many rejected recipients"}
	}
	if reply := replyText(err); r.c.Reply != reply {
		r.c.Reply = reply
		r.dirty = true
	}
	r.mu.Unlock()
	if err.Code == 421 {
		ss.tc.setCloseAfterWrite("too many rejected recipients")
	}
	if serr := ss.s.save(r); serr != nil {
		r.log.Error("smtp: recording a rejected recipient", "err", serr)
		return errTempFailure
	}
	return err
}

// replyText is a reply as it goes on the wire (without CRLF).
func replyText(e *smtp.SMTPError) string {
	return fmt.Sprintf("%d %d.%d.%d %s", e.Code, e.EnhancedCode[0], e.EnhancedCode[1], e.EnhancedCode[2], e.Message)
}

// Data reads the message, records its signatures and answers the mail.
// For test mail the answer is verdict.Acknowledge's: 250 (state Acked) or
// 451 4.7.1 with the reason. The reply is recorded before it is sent.
func (ss *session) Data(rd io.Reader) error {
	// RFC 5321 §4.5.3.2.6: the data phase has its own, longer timeout
	// (go-smtp only sets the per-command one).
	_ = ss.conn.Conn().SetReadDeadline(time.Now().Add(ss.s.opts.DataTimeout))
	limit := ss.s.opts.MaxMessageBytes
	tooLarge := smtp.ErrDataTooLarge
	ss.rec.mu.Lock()
	small := ss.rec.dataLimit
	ss.rec.mu.Unlock()
	if small > 0 && small < limit {
		// TLS-RPT reports are small (RFC 8460 §5.3); the rest of a
		// larger mail is discarded by go-smtp as it arrives, never held.
		limit = small
		tooLarge = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: tlsrptTooLarge(limit)}
	}
	body, release, err := ss.s.dataBudget.readData(rd, limit)
	defer release()
	if err == nil && int64(len(body)) > limit {
		err = tooLarge
	}
	if errors.Is(err, errOverBudget) {
		ss.s.log.Warn("smtpd: DATA memory budget exhausted; answered 452", "budget", ss.s.dataBudget.limit)
		return ss.answer(&smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "insufficient system storage: try again later"}, false)
	}
	if err != nil {
		var serr *smtp.SMTPError
		if errors.As(err, &serr) {
			// Message too large (RFC 1870 §6.3: 552).
			return ss.answer(serr, false)
		}
		// The client went away or timed out mid-message; the close
		// records why.
		return err
	}
	sigs := ss.s.signatures(body)
	var auth *store.Authentication
	if ss.tx.test.ID != "" && !ss.s.opts.AcceptAll {
		a := ss.s.authenticate(ss.rec.snapshot(), ss.tx.from, body, sigs)
		auth = &a
	}
	r := ss.rec
	r.mu.Lock()
	r.c.MessageBytes = int64(len(body))
	r.c.Signatures = sigs
	r.c.Authentication = auth
	r.dirty = true
	r.mu.Unlock()

	switch {
	case ss.s.opts.AcceptAll:
		return ss.answer(&smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "accepted (bench mode)"}, true)
	case ss.tx.tlsrpt:
		return ss.tlsrptReport(body)
	case ss.tx.test.ID == "":
		// go-smtp allows DATA only after an accepted recipient, and each
		// accepted recipient is the TLS-RPT address or names a test.
		return ss.answer(&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "no valid recipients"}, false)
	}
	if t := ss.tx.test; t.AddressedB.IsZero() && ss.s.headerNamesB(body, t) {
		now := ss.s.now()
		if err := ss.s.storeOp(func(ctx context.Context) error { return ss.s.opts.Store.MarkAddressedB(ctx, t.ID, now) }); err != nil {
			// Evidence lost, mail not: the verdict then waits for the
			// sender to finish instead.
			r.log.Error("smtp: recording that the mail names B", "test", t.ID, "err", err)
		}
	}
	return ss.acknowledge()
}

// tlsrptTooLarge is the text of the 552 for a TLS-RPT mail over limit.
func tlsrptTooLarge(limit int64) string {
	return fmt.Sprintf("TLS-RPT report larger than %d octets", limit)
}

// tlsrptReport takes in a TLS-RPT report mail (RFC 8460 §5.3): parsed,
// tied to its test and stored within the quota (TLSRPTQuota); a mail that
// is not a valid report is refused with the reason, and nothing is kept.
func (ss *session) tlsrptReport(body []byte) error {
	c := ss.rec.snapshot()
	var res tlsrptintake.Result
	err := ss.s.storeOp(func(ctx context.Context) error {
		var err error
		res, err = ss.s.intake.Accept(ctx, tlsrptintake.Submission{Source: store.TLSRPTByMail, Client: c.Client.Addr(), MailFrom: ss.tx.from, Raw: body})
		return err
	})
	switch {
	case errors.Is(err, tlsrptintake.ErrBadReport):
		// RFC 3463 5.6.0: the content is wrong; retrying will not help.
		return ss.answer(&smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "TLS-RPT report refused: " + untrusted.Printable(err.Error(), 300)}, false)
	case errors.Is(err, store.ErrTLSRPTFull):
		ss.rec.log.Warn("smtp: TLS-RPT report refused, storage full", "err", err)
		// RFC 3463 4.3.1: mail system full; the reporter retries later.
		return ss.answer(&smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "TLS-RPT report storage full, try again later"}, false)
	case err != nil:
		ss.rec.log.Error("smtp: storing a TLS-RPT report", "err", err)
		return ss.answer(errTempFailure, false)
	case res.Duplicate:
		return ss.answer(&smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "TLS-RPT report received already"}, false)
	}
	return ss.answer(&smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "TLS-RPT report received"}, false)
}

// acknowledge asks the verdict whether the test mail is answered 250 or 451.
func (ss *session) acknowledge() error {
	now := ss.s.now()
	r := ss.rec
	var (
		test store.Test
		obs  verdict.Observations
	)
	// The history holds this connection as last saved; its current state
	// (signatures, recipients) is the evidence.
	self := r.snapshot()
	err := ss.s.storeOp(func(ctx context.Context) error {
		var err error
		if test, err = ss.s.opts.Store.Test(ctx, ss.tx.test.ID); err != nil {
			return err
		}
		obs, err = ss.s.evidence.Gather(ctx, test, now, evidence.InFlight(self))
		return err
	})
	if err != nil {
		r.log.Error("smtp: loading the test", "test", ss.tx.test.ID, "err", err)
		return ss.answer(errTempFailure, false)
	}
	history, fetches := obs.Connections, obs.PolicyFetches
	zone := persona.ZoneB
	if ss.tx.hasA {
		// One decision per mail; with recipients in A and B, A's rule.
		zone = persona.ZoneA
	}
	r.mu.Lock()
	inWindow := r.inWindow
	r.mu.Unlock()
	ack := verdict.Acknowledge(verdict.AckInput{
		Zone:              zone,
		Now:               now,
		InDowngradeWindow: inWindow,
		History:           history,
		AckAfter:          ss.s.opts.AckAfter,
		AlreadyAcked:      test.State == store.TestAcked || !test.Acked.IsZero(),
		Fetches:           fetches,
		DNSLookups:        obs.DNSLookups,
		BTLSANames:        obs.BTLSANames,
	})
	r.log.Info("smtp: acknowledgement", "test", test.ID, "zone", zone.String(), "accept", ack.Accept, "reason", ack.Reason,
		"detail", ack.Detail, "history", len(history), "fetches", len(fetches))
	ss.s.countAck(zone, ack.Accept)
	if !ack.Accept {
		// RFC 5321 §4.2.1: 451 asks the client to retry later.
		return ss.answer(&smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: ack.Reason}, false)
	}
	reply := &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "accepted: " + ack.Reason}
	// Only the acknowledgement of a mail for A ends the test's evidence
	// collection: B's mail is accepted once the downgrade window is over,
	// while A's may still need attempts to tell policies apart.
	if zone == persona.ZoneA {
		if test.State == store.TestOpen {
			test.State = store.TestAcked
		}
		if test.Acked.IsZero() {
			test.Acked = now
		}
	}
	if test.Sender == "" && ss.tx.from != "" {
		test.Sender = canonSender(ss.tx.from)
	}
	test.Updated = now
	r.saveMu.Lock()
	r.mu.Lock()
	r.raise(store.StateAcked)
	r.c.Reply = replyText(reply)
	c := r.c
	c.RcptTo = append([]string(nil), c.RcptTo...)
	c.Signatures = append([]store.Signature(nil), c.Signatures...)
	r.dirty = false
	r.mu.Unlock()
	// Test and connection are acknowledged together or not at all.
	err = ss.s.storeOp(func(ctx context.Context) error { return ss.s.opts.Store.AckConnection(ctx, test, &c) })
	r.saveMu.Unlock()
	if err != nil {
		r.log.Error("smtp: recording the acknowledgement", "err", err)
		r.mu.Lock()
		r.c.State = self.State
		r.mu.Unlock()
		return ss.answer(errTempFailure, false)
	}
	return reply
}

// answer records reply as the mail's reply (state Acked if acked) and
// returns it for go-smtp to send. go-smtp sends an *SMTPError's code as
// given, 250 included, so the text on the wire is the recorded one.
func (ss *session) answer(reply *smtp.SMTPError, acked bool) error {
	r := ss.rec
	r.mu.Lock()
	before := r.c.State
	r.c.Reply = replyText(reply)
	if acked {
		r.raise(store.StateAcked)
	}
	r.dirty = true
	r.mu.Unlock()
	if err := ss.s.save(r); err != nil {
		r.log.Error("smtp: recording the reply", "err", err)
		if reply.Code/100 == 2 {
			// Nothing is accepted off the record: the client retries.
			r.mu.Lock()
			r.c.State = before
			r.c.Reply = replyText(errTempFailure)
			r.dirty = true
			r.mu.Unlock()
			return errTempFailure
		}
	}
	return reply
}
