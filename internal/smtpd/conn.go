package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// record is the in-memory state of one connection's history row. Its
// fields are guarded by mu: the session, the TLS callback, the connection
// wrapper and a shutting-down server all touch it.
type record struct {
	// saveMu orders the store writes of the row (snapshot and write), so
	// an older snapshot never overwrites a newer one.
	saveMu sync.Mutex
	mu     sync.Mutex
	c      store.SMTPConnection
	log    *slog.Logger

	dirty    bool // c changed since the last successful save
	inWindow bool // inside the client's downgrade window (no STARTTLS)
	// dataLimit is the size limit of the mail in progress when it is
	// smaller than MaxMessageBytes (TLS-RPT mail); 0 otherwise. It lives
	// here, under mu, because go-smtp may call Data from its BDAT
	// goroutine while the connection is being closed.
	dataLimit int64
	local     int // persona of the local address, 0 if none

	// base is the persona before the recipients are known: plain text,
	// or the one chosen from SNI or the local address. byDefault tells
	// that nothing named it (no or unknown SNI, no own address), so
	// recipients in B make it persona 7.
	base      int
	byDefault bool

	tlsStarting bool   // "220 Ready to start TLS" was sent
	tlsDone     bool   // the handshake completed
	hsFailed    bool   // the handshake failed (go-smtp answered in plain text)
	certErr     string // the persona had no certificate to serve
	alert       string // a plain-text TLS alert the client sent
	readErr     error  // first error reading from the client
	closeReason string // why the server ended the connection

	eof         bool  // the server ended the session: reads return EOF
	timedOut    error // a read timed out: later reads fail the same way
	sessionOver bool  // the read timed out at the end of Options.SessionMax
	hardClosed  bool  // the socket was closed at once (shutdown)

	inTx     bool // inside a mail transaction (MAIL given, not finished)
	mails    int
	rejected int
}

// setCloseReason records why the server ends the connection. The first
// reason stays: it is the cause, what follows is its consequence. The
// caller holds r.mu.
func (r *record) setCloseReason(reason string) {
	if reason != "" && r.closeReason == "" {
		r.closeReason = reason
	}
}

func (r *record) busy() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inTx
}

// raise moves the state up; states never move down (store.ConnState.Rank).
// The caller holds r.mu.
func (r *record) raise(st store.ConnState) {
	if st.Rank() > r.c.State.Rank() {
		r.c.State = st
		r.dirty = true
	}
}

// markTLS records a completed handshake. The caller holds r.mu.
func (r *record) markTLS(cs tls.ConnectionState) {
	if r.tlsDone {
		return
	}
	r.tlsDone = true
	r.raise(store.StateTLSStarted)
	r.c.TLSVersion = tls.VersionName(cs.Version)
	r.c.TLSCipher = tls.CipherSuiteName(cs.CipherSuite)
	r.dirty = true
}

// snapshot returns a copy of the connection row.
func (r *record) snapshot() store.SMTPConnection {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.c
	c.RcptTo = append([]string(nil), c.RcptTo...)
	c.Signatures = append([]store.Signature(nil), c.Signatures...)
	return c
}

// save commits the row if it changed. The store write happens outside
// r.mu on a copy; a concurrent change marks the record dirty again.
func (s *Server) save(r *record) error {
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	r.mu.Lock()
	if !r.dirty {
		r.mu.Unlock()
		return nil
	}
	c := r.c
	c.RcptTo = append([]string(nil), c.RcptTo...)
	c.Signatures = append([]store.Signature(nil), c.Signatures...)
	r.dirty = false
	r.mu.Unlock()
	err := s.storeOp(func(ctx context.Context) error { return s.recorder.Update(ctx, &c) })
	if err != nil {
		r.mu.Lock()
		r.dirty = true
		r.mu.Unlock()
	}
	return err
}

// trackedConn wraps the accepted TCP connection. It is the net.Conn go-smtp
// serves and the one a TLS handshake runs over (ClientHelloInfo.Conn), so
// it ties the handshake, the sessions before and after STARTTLS and the
// close to one record. It watches the byte stream only for what go-smtp
// does not report: read errors, a failed handshake, plain-text TLS alerts.
type trackedConn struct {
	net.Conn
	srv      *Server
	rec      *record
	acquired bool // holds a slot in the client table
	// sessionEnd caps every read deadline (Options.SessionMax); wall
	// clock, as the socket's deadlines are.
	sessionEnd time.Time

	closeOnce       sync.Once
	closeAfterWrite bool // guarded by rec.mu
}

// trackedOf returns the trackedConn under a go-smtp connection.
func trackedOf(nc net.Conn) *trackedConn {
	switch v := nc.(type) {
	case *trackedConn:
		return v
	case *tls.Conn:
		t, _ := v.NetConn().(*trackedConn)
		return t
	}
	return nil
}

func (c *trackedConn) Read(b []byte) (int, error) {
	r := c.rec
	r.mu.Lock()
	eof, timedOut := r.eof, r.timedOut
	r.mu.Unlock()
	switch {
	case eof:
		// The server ended the session (halfClose): go-smtp sees the end
		// of input and closes, instead of serving pipelined leftovers.
		return 0, io.EOF
	case timedOut != nil:
		// A timeout is final. bufio hands go-smtp the part of a line
		// read before the deadline as if it were a whole line; without
		// this, a client sending a byte now and then would never time
		// out, only collect replies to line fragments.
		return 0, timedOut
	}
	n, err := c.Conn.Read(b)
	r.mu.Lock()
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		r.timedOut = err
		if !c.sessionEnd.IsZero() && !time.Now().Before(c.sessionEnd) {
			r.sessionOver = true
			r.setCloseReason("session lifetime exceeded")
		}
	}
	if n > 0 && r.tlsStarting && !r.tlsDone && r.alert == "" {
		r.alert = plainAlert(b[:n])
	}
	if err != nil && r.readErr == nil && r.closeReason == "" {
		r.readErr = err
	}
	r.mu.Unlock()
	return n, err
}

// Reply texts of go-smtp v0.25 that tell why it ends a connection; seen
// only on plain-text sessions (after STARTTLS the stream is encrypted).
var goSMTPEndings = []struct{ prefix, reason string }{
	{"500 5.4.0 Too long line", "line too long"},
	{"500 5.5.1 Too many errors", "too many errors"},
	{"421 4.0.0 Internal server error", "internal error"},
}

// SetReadDeadline caps t at the end of the session's lifetime. go-smtp
// sets a deadline before every command line (CommandTimeout) and the
// DATA handler one for the message; none reaches past sessionEnd.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.capped(t))
}

// SetDeadline is SetReadDeadline for reads; the write deadline stays t,
// so the closing 421 can still be written.
func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(c.capped(t)); err != nil {
		return err
	}
	return c.Conn.SetWriteDeadline(t)
}

func (c *trackedConn) capped(t time.Time) time.Time {
	if !c.sessionEnd.IsZero() && (t.IsZero() || t.After(c.sessionEnd)) {
		return c.sessionEnd
	}
	return t
}

// sessionOverReply replaces go-smtp's "421 4.4.2 Idle timeout" when the
// lifetime, not an idle client, ended the session (plain text only; after
// STARTTLS the client gets go-smtp's text, still a 421).
const sessionOverReply = "421 4.4.2 session time limit reached, closing connection\r\n"

func (c *trackedConn) Write(b []byte) (int, error) {
	r := c.rec
	r.mu.Lock()
	if r.sessionOver && !r.tlsStarting && bytes.HasPrefix(b, []byte("421 4.4.2 ")) {
		r.mu.Unlock()
		if _, err := c.Conn.Write([]byte(sessionOverReply)); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	switch {
	case !r.tlsStarting:
		if bytes.HasPrefix(b, []byte("220 2.0.0 Ready to start TLS")) {
			r.tlsStarting = true
		}
		for _, e := range goSMTPEndings {
			if bytes.HasPrefix(b, []byte(e.prefix)) {
				r.setCloseReason(e.reason)
			}
		}
	case !r.tlsDone && !r.hsFailed && len(b) > 0 && '0' <= b[0] && b[0] <= '9':
		// After "220 Ready to start TLS" the server writes TLS records
		// (first byte 20..23) until the handshake is done; plain text
		// means go-smtp's "550 Handshake error". The client is speaking
		// TLS, so that reply is noise to it: end the connection instead.
		r.hsFailed = true
		if r.c.Error == "" {
			r.c.Error = "handshake failed: " + r.handshakeCause()
			r.dirty = true
		}
		r.mu.Unlock()
		c.halfClose()
		return len(b), nil
	}
	closeAfter := c.closeAfterWrite
	r.mu.Unlock()
	n, err := c.Conn.Write(b)
	if closeAfter {
		c.halfClose()
	}
	return n, err
}

// handshakeCause explains a failed handshake from what was observed. The
// caller holds r.mu.
func (r *record) handshakeCause() string {
	switch {
	case r.closeReason != "":
		return r.closeReason
	case r.certErr != "":
		return r.certErr
	case r.alert != "":
		return "client sent alert: " + r.alert
	case r.c.State.Rank() < store.StateSniSeen.Rank():
		if r.readErr != nil {
			return "no ClientHello: " + readErrText(r.readErr)
		}
		return "no valid ClientHello"
	case r.readErr != nil:
		return readErrText(r.readErr)
	}
	// TLS 1.3 encrypts the client's alert (RFC 8446 §6): all we know is
	// that the client did not finish the handshake.
	return "client aborted the handshake"
}

// plainAlert returns the description of a plain-text TLS alert record in
// b (RFC 8446 §6; TLS 1.2 sends alerts before ChangeCipherSpec in the
// clear), or "".
func plainAlert(b []byte) string {
	for len(b) >= 5 && b[1] == 3 {
		n := int(b[3])<<8 | int(b[4])
		if len(b) < 5+n {
			return ""
		}
		if b[0] == 21 && n == 2 {
			return tls.AlertError(b[6]).Error()
		}
		b = b[5+n:]
	}
	return ""
}

// readErrText names a read error for the record.
func readErrText(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return "client closed"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "client closed (reset)"
	}
	return err.Error()
}

// abort closes the socket at once (shutdown): go-smtp's next read fails
// and its deferred Close finalizes the record. reason, if not empty,
// becomes the record's Error.
func (c *trackedConn) abort(reason string) {
	r := c.rec
	r.mu.Lock()
	r.setCloseReason(reason)
	r.hardClosed = true
	r.mu.Unlock()
	_ = c.Conn.Close()
}

// halfClose ends the session from the server side after a final reply: it
// sends FIN after the queued replies and makes further reads return EOF,
// so go-smtp closes the connection; Close then lingers (closeGracefully).
// Why the session ends was recorded before the reply (setCloseAfterWrite,
// or the failed handshake).
func (c *trackedConn) halfClose() {
	c.rec.mu.Lock()
	c.rec.eof = true
	c.rec.mu.Unlock()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}

// Lingering close: a socket closed while the client's data is still
// unread sends a TCP reset, which can destroy the last reply before the
// client reads it. So the write side is shut first and the client's
// leftovers are read (bounded) before the close.
const (
	lingerTimeout = 500 * time.Millisecond
	lingerBytes   = 64 << 10
)

// closeGracefully closes nc after a lingering drain.
func closeGracefully(nc net.Conn) error {
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = nc.SetReadDeadline(time.Now().Add(lingerTimeout))
		_, _ = io.CopyN(io.Discard, nc, lingerBytes)
	}
	return nc.Close()
}

// setCloseAfterWrite makes the next reply the last one.
func (c *trackedConn) setCloseAfterWrite(reason string) {
	r := c.rec
	r.mu.Lock()
	c.closeAfterWrite = true
	r.setCloseReason(reason)
	r.mu.Unlock()
}

// closing tells whether the server is ending the connection, so pipelined
// commands still buffered in go-smtp cause no more store work.
func (c *trackedConn) closing() bool {
	r := c.rec
	r.mu.Lock()
	defer r.mu.Unlock()
	return c.closeAfterWrite || r.closeReason != "" || r.hsFailed
}

// Close closes the connection and makes its record final: Ended, the
// plain-text persona if no other was set, and Error if the connection
// ended abnormally. It runs once, in go-smtp's connection goroutine (or in
// the accept path for connections go-smtp never saw).
func (c *trackedConn) Close() error {
	var err error
	first := false
	c.closeOnce.Do(func() {
		first = true
		c.rec.mu.Lock()
		hard := c.rec.hardClosed
		c.rec.mu.Unlock()
		if hard {
			err = c.Conn.Close()
		} else {
			err = closeGracefully(c.Conn)
		}
	})
	if !first {
		return nil
	}
	c.srv.finish(c)
	return err
}

// finish writes the final record and releases the connection's slots.
func (s *Server) finish(c *trackedConn) {
	r := c.rec
	r.mu.Lock()
	r.c.Ended = s.now()
	if r.c.Persona == 0 {
		r.c.Persona = s.plainPersona(r)
	}
	if r.c.Error == "" {
		switch {
		case r.c.State == store.StateSniSeen || (r.tlsStarting && !r.tlsDone):
			r.c.Error = "handshake failed: " + r.handshakeCause()
		case r.closeReason != "":
			r.c.Error = r.closeReason
		case r.readErr != nil:
			r.c.Error = readErrText(r.readErr)
		}
	}
	r.dirty = true
	log := r.log
	final := r.c
	r.mu.Unlock()

	if err := s.save(r); err != nil && log != nil {
		log.Error("smtp: recording the end of a connection", "err", err)
	}
	if log != nil {
		log.Debug("smtp connection ended", "persona", final.Persona, "state", final.State, "error", final.Error)
	}
	s.activeMu.Lock()
	delete(s.active, c)
	s.activeMu.Unlock()
	if c.acquired {
		s.clients.release(final.ClientKey)
		s.clients.releaseGlobal(s.opts.MaxConnections)
	}
	s.activeWG.Done()
}
