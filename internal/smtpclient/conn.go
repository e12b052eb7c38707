package smtpclient

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"time"
)

// DialFunc opens a TCP connection, as net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Errors of a session besides the reply parser's; errors.Is tells them
// apart.
var (
	// ErrLineBreak: a command to send contains CR or LF, which would
	// smuggle a second command onto the wire.
	ErrLineBreak = errors.New("line break in command")
	// ErrCleartextAfterSTARTTLS: the server sent more after its 220 to
	// STARTTLS; see *CleartextError.
	ErrCleartextAfterSTARTTLS = errors.New("data in the clear after the 220 reply to STARTTLS")
	// ErrNoSTARTTLS: Handshake was called without a 220 reply to
	// STARTTLS just before.
	ErrNoSTARTTLS = errors.New("handshake without a 220 reply to STARTTLS")
)

// CleartextError says how many octets the server sent in the clear after
// its 220 reply to STARTTLS. RFC 3207 §4.2 forbids using anything from
// before TLS, and such data could be an attacker's injected response
// (CVE-2011-0411 is the same on the server side): the session must end.
type CleartextError struct{ Octets int }

func (e *CleartextError) Error() string {
	return fmt.Sprintf("%d octets in the clear after the 220 reply to STARTTLS", e.Octets)
}

// Unwrap makes errors.Is(err, ErrCleartextAfterSTARTTLS) hold.
func (e *CleartextError) Unwrap() error { return ErrCleartextAfterSTARTTLS }

// IOError is a failed read or write on the connection (a timeout, a reset,
// the end of the connection, or the context's end closing it). Op names
// what was under way: "reading reply", "sending MAIL", "sending the
// message".
type IOError struct {
	Op  string
	Err error
}

func (e *IOError) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *IOError) Unwrap() error { return e.Err }

// Options configures a Conn.
type Options struct {
	Limits // what one reply may be
	// Trace, if set, receives the dialogue: "C: EHLO …", "S: 250-…", one
	// call per line, each cut to maxTraceLine octets, and the caller's
	// Notes. The message itself appears as "C: <message, N octets>".
	Trace func(line string)
}

// maxTraceLine bounds one transcript line.
const maxTraceLine = 512

// Conn is one SMTP session as a client (RFC 5321). Its methods are not
// safe for concurrent use. Every step sets its own deadline; ending the
// context given to Dial or NewConn interrupts whatever is under way by
// closing the connection.
type Conn struct {
	ctx  context.Context
	raw  net.Conn // the TCP connection
	nc   net.Conn // raw, or the TLS connection over it
	br   *bufio.Reader
	tw   *textproto.Writer
	opts Options
	stop func() bool
	// broken is the error that ended the reply stream (malformed, too
	// long): no later reply can be trusted.
	broken error
	// ready220: the last exchange was STARTTLS answered with 220.
	ready220 bool
}

// Dial connects to addr ("ip:port") with dial, the connect bounded by
// timeout, and returns the session before the greeting (read it with
// ReadReply). The error is dial's own.
func Dial(ctx context.Context, dial DialFunc, addr string, timeout time.Duration, opts Options) (*Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, timeout)
	nc, err := dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		return nil, err
	}
	return NewConn(ctx, nc, opts), nil
}

// NewConn starts a session on an open connection; ctx ends it.
func NewConn(ctx context.Context, nc net.Conn, opts Options) *Conn {
	opts.Limits = opts.Limits.withDefaults()
	c := &Conn{ctx: ctx, raw: nc, opts: opts}
	c.setConn(nc)
	// Closing the TCP connection ends TLS over it too.
	c.stop = context.AfterFunc(ctx, func() { _ = nc.Close() })
	return c
}

// setConn (re)builds the reader and writer on nc, after STARTTLS too:
// nothing read before TLS survives (RFC 3207 §4.2).
func (c *Conn) setConn(nc net.Conn) {
	c.nc = nc
	c.br = bufio.NewReaderSize(nc, 4096)
	c.tw = textproto.NewWriter(bufio.NewWriter(nc))
}

// Close ends the session without QUIT and closes the connection.
func (c *Conn) Close() error {
	c.stop()
	err := c.nc.Close()
	if c.raw != c.nc {
		_ = c.raw.Close()
	}
	return err
}

// Note adds a line of the caller's to the transcript (Options.Trace).
func (c *Conn) Note(line string) {
	if c.opts.Trace == nil {
		return
	}
	if len(line) > maxTraceLine {
		line = line[:maxTraceLine] + "…"
	}
	c.opts.Trace(line)
}

// ReadReply reads one reply within timeout (see the function ReadReply).
// Transport failures come back as *IOError.
func (c *Conn) ReadReply(timeout time.Duration) (Reply, error) {
	c.ready220 = false
	if c.broken != nil {
		return Reply{}, c.broken
	}
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	r, err := ReadReply(c.br, c.opts.Limits)
	switch {
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrTooLong):
		c.broken = err
		return Reply{}, err
	case err != nil:
		return Reply{}, &IOError{Op: "reading reply", Err: err}
	}
	for i, l := range r.Lines {
		sep := "-"
		if i == len(r.Lines)-1 {
			sep = " "
		}
		c.Note(fmt.Sprintf("S: %d%s%s", r.Code, sep, l))
	}
	return r, nil
}

// Send writes one command line within timeout.
func (c *Conn) Send(timeout time.Duration, line string) error {
	c.ready220 = false
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("%w %q", ErrLineBreak, line)
	}
	c.Note("C: " + line)
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	if err := c.tw.PrintfLine("%s", line); err != nil {
		verb, _, _ := strings.Cut(line, " ")
		return &IOError{Op: "sending " + verb, Err: err}
	}
	return nil
}

// Cmd sends one command line and reads its reply, each within timeout.
func (c *Conn) Cmd(timeout time.Duration, line string) (Reply, error) {
	if err := c.Send(timeout, line); err != nil {
		return Reply{}, err
	}
	return c.ReadReply(timeout)
}

// Ehlo sends EHLO name (RFC 5321 §4.1.1.1) and, on a 250, parses the
// extensions. Any other reply comes back as it is, with an empty EHLO:
// falling back to HELO, or giving up, is the caller's decision.
func (c *Conn) Ehlo(timeout time.Duration, name string) (Reply, EHLO, error) {
	r, err := c.Cmd(timeout, "EHLO "+name)
	if err != nil || r.Code != 250 {
		return r, EHLO{}, err
	}
	return r, ParseEHLO(r), nil
}

// Helo sends HELO name (RFC 5321 §4.1.1.1), for servers that refuse EHLO.
func (c *Conn) Helo(timeout time.Duration, name string) (Reply, error) {
	return c.Cmd(timeout, "HELO "+name)
}

// StartTLS sends STARTTLS and reads the reply (RFC 3207 §4). On a 220 the
// caller goes on with Handshake; 454 means "TLS not available due to
// temporary reason", and whether to go on in plaintext is the caller's
// policy (RFC 3207 §4.1).
func (c *Conn) StartTLS(timeout time.Duration) (Reply, error) {
	r, err := c.Cmd(timeout, "STARTTLS")
	c.ready220 = err == nil && r.Code == 220
	return r, err
}

// Handshake runs the TLS handshake after a 220 reply to StartTLS, bounded
// by timeout and the session's context, with cfg as given: its ServerName
// is the SNI, and verification is the caller's (InsecureSkipVerify with a
// check of the returned state, for DANE). Anything the server sent after
// its 220 is a *CleartextError and no handshake is started (RFC 3207
// §4.2). On success the session goes on over TLS, with nothing kept from
// before it; the server's EHLO must be asked again (RFC 3207 §4.2). A
// failed handshake returns crypto/tls's error and the session is over.
func (c *Conn) Handshake(timeout time.Duration, cfg *tls.Config) (tls.ConnectionState, error) {
	if !c.ready220 {
		return tls.ConnectionState{}, ErrNoSTARTTLS
	}
	c.ready220 = false
	if n := c.br.Buffered(); n > 0 {
		c.broken = &CleartextError{Octets: n}
		return tls.ConnectionState{}, c.broken
	}
	tc := tls.Client(c.nc, cfg)
	hctx, cancel := context.WithTimeout(c.ctx, timeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		return tls.ConnectionState{}, err
	}
	c.setConn(tc)
	return tc.ConnectionState(), nil
}

// Mail sends MAIL FROM:<from> with the parameters given ("SIZE=1234",
// "BODY=8BITMIME") and reads the reply (RFC 5321 §4.1.1.2). from is ""
// for the null reverse-path.
func (c *Conn) Mail(timeout time.Duration, from string, params ...string) (Reply, error) {
	line := "MAIL FROM:<" + from + ">"
	for _, p := range params {
		line += " " + p
	}
	return c.Cmd(timeout, line)
}

// Rcpt sends RCPT TO:<to> and reads the reply (RFC 5321 §4.1.1.3).
func (c *Conn) Rcpt(timeout time.Duration, to string) (Reply, error) {
	return c.Cmd(timeout, "RCPT TO:<"+to+">")
}

// Data sends DATA and reads the reply, 354 to go on (RFC 5321 §4.1.1.4).
func (c *Conn) Data(timeout time.Duration) (Reply, error) {
	return c.Cmd(timeout, "DATA")
}

// WriteMessage sends msg after a 354 with CRLF line ends and dot-stuffing,
// and the final "." (RFC 5321 §4.5.2), within timeout. The reply comes
// with ReadReply (RFC 5321 §4.5.3.2.6: wait up to 10 minutes for it).
func (c *Conn) WriteMessage(timeout time.Duration, msg []byte) error {
	c.ready220 = false
	c.Note(fmt.Sprintf("C: <message, %d octets>", len(msg)))
	c.Note("C: .")
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	w := c.tw.DotWriter()
	if _, err := w.Write(msg); err != nil {
		_ = w.Close()
		return &IOError{Op: "sending the message", Err: err}
	}
	if err := w.Close(); err != nil {
		return &IOError{Op: "sending the message", Err: err}
	}
	return nil
}

// Quit says goodbye and waits for the reply, best effort, each step
// within timeout (RFC 5321 §4.1.1.10).
func (c *Conn) Quit(timeout time.Duration) {
	if err := c.Send(timeout, "QUIT"); err == nil {
		_, _ = c.ReadReply(timeout)
	}
}

// SendQuit sends QUIT without waiting for the 221, for a client that only
// looks (the inbound probe): one write within timeout, then the caller
// closes.
func (c *Conn) SendQuit(timeout time.Duration) {
	_ = c.Send(timeout, "QUIT")
}
