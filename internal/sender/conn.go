package sender

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// Limits on what a server may send.
const (
	// maxLineLength bounds a reply line (RFC 5321 §4.5.3.1.5: 512 octets
	// with CRLF; generous for servers that exceed it).
	maxLineLength = 4096
	// maxReplyBytes bounds one reply, all lines together.
	maxReplyBytes = 64 << 10
	// quitTimeout bounds the wait for the reply to QUIT.
	quitTimeout = 5 * time.Second
)

// limitReader fails a read once the current reply has exceeded its limits
// (a line longer than maxLineLength, or more than maxReplyBytes), so a
// hostile server cannot make the client buffer without bound.
type limitReader struct {
	r        io.Reader
	line     int // octets since the last LF
	reply    int // octets since reset
	exceeded bool
}

var errTooLong = fmt.Errorf("%w: reply line or reply too long", ErrProtocol)

func (l *limitReader) Read(b []byte) (int, error) {
	if l.exceeded {
		return 0, errTooLong
	}
	n, err := l.r.Read(b)
	for _, c := range b[:n] {
		l.reply++
		if c == '\n' {
			l.line = 0
			continue
		}
		l.line++
		if l.line > maxLineLength || l.reply > maxReplyBytes {
			l.exceeded = true
		}
	}
	return n, err
}

// conn is one SMTP connection with deadlines and a dialogue log.
type conn struct {
	raw  net.Conn // the TCP connection
	nc   net.Conn // raw, or the TLS connection over it
	lr   *limitReader
	tp   *textproto.Conn // its R is the only read buffer
	log  *[]string
	stop func() bool // stops the context watcher
	ctx  context.Context
}

func newConn(ctx context.Context, nc net.Conn, log *[]string) *conn {
	c := &conn{ctx: ctx, log: log, raw: nc}
	c.setNetConn(nc)
	// Cancelling ctx interrupts any read or write in progress: closing
	// the TCP connection ends TLS over it too.
	c.stop = context.AfterFunc(ctx, func() { _ = nc.Close() })
	return c
}

// setNetConn (re)builds the reader and writer on nc, after STARTTLS too.
func (c *conn) setNetConn(nc net.Conn) {
	c.nc = nc
	c.lr = &limitReader{r: nc}
	c.tp = textproto.NewConn(struct {
		io.Reader
		io.Writer
		io.Closer
	}{c.lr, nc, nc})
}

func (c *conn) close() {
	c.stop()
	_ = c.nc.Close()
	_ = c.raw.Close()
}

// err maps an I/O error to ErrConnect, preferring the context's reason.
func (c *conn) err(what string, err error) error {
	if ce := c.ctx.Err(); ce != nil {
		return fmt.Errorf("%w: %s: %w", ErrConnect, what, ce)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%w: %s: timeout: %w", ErrConnect, what, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrConnect, what, err)
}

// reply reads one reply (RFC 5321 §4.2): all lines must carry the same
// code; the text comes back with lines joined by "\n".
func (c *conn) reply(timeout time.Duration) (int, string, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(timeout))
	c.lr.reply, c.lr.line = 0, 0
	code, text, err := c.tp.ReadResponse(0)
	if err != nil {
		var perr textproto.ProtocolError
		if errors.As(err, &perr) {
			return 0, "", fmt.Errorf("%w: %v", ErrProtocol, perr)
		}
		if errors.Is(err, errTooLong) {
			return 0, "", err
		}
		return 0, "", c.err("reading reply", err)
	}
	if code < 200 || code > 599 {
		return 0, "", fmt.Errorf("%w: reply code %d", ErrProtocol, code)
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		c.note("S: " + strconv.Itoa(code) + sep + l)
	}
	return code, text, nil
}

// cmd sends one command line and reads its reply.
func (c *conn) cmd(timeout time.Duration, line string) (int, string, error) {
	if err := c.send(timeout, line); err != nil {
		return 0, "", err
	}
	return c.reply(timeout)
}

// send writes one command line.
func (c *conn) send(timeout time.Duration, line string) error {
	if strings.ContainsAny(line, "\r\n") {
		return fmt.Errorf("%w: line break in command %q", ErrMessage, line)
	}
	c.note("C: " + line)
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	if err := c.tp.PrintfLine("%s", line); err != nil {
		return c.err("sending "+firstWord(line), err)
	}
	return nil
}

// data sends the message with dot-stuffing and CRLF line ends (RFC 5321
// §4.5.2) and the final ".".
func (c *conn) data(timeout time.Duration, msg []byte) error {
	c.note(fmt.Sprintf("C: <message, %d octets>", len(msg)))
	c.note("C: .")
	_ = c.nc.SetWriteDeadline(time.Now().Add(timeout))
	w := c.tp.DotWriter()
	if _, err := w.Write(msg); err != nil {
		_ = w.Close()
		return c.err("sending the message", err)
	}
	if err := w.Close(); err != nil {
		return c.err("sending the message", err)
	}
	return nil
}

// quit says goodbye, best effort (RFC 5321 §4.1.1.10).
func (c *conn) quit() {
	if err := c.send(quitTimeout, "QUIT"); err == nil {
		_, _, _ = c.reply(quitTimeout)
	}
}

func (c *conn) note(line string) {
	if len(line) > 512 {
		line = line[:512] + "…"
	}
	*c.log = append(*c.log, line)
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

// oneLine joins a reply's lines for transcripts.
func oneLine(code int, text string) string {
	return strconv.Itoa(code) + " " + strings.ReplaceAll(text, "\n", " / ")
}
