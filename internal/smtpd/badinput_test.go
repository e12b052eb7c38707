package smtpd

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// TestBadInput: garbage, overlong lines, 8-bit and NUL bytes, pipelined
// floods, a connection flood and a slow client get clean SMTP errors or
// disconnects; the server stays up and every connection is recorded with
// Ended set.
func TestBadInput(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) {
		o.DowngradeWindow = 0
		o.MaxConnectionsPerClient = 5
		o.CommandTimeout = time.Second
		o.DataTimeout = 2 * time.Second
		o.MaxMessageBytes = 64 << 10
	})
	ts.newTest(t, "tok1")
	rcpt := "t-tok1@" + zoneA

	// lines reads the replies until the server closes.
	lines := func(c *client) []string {
		t.Helper()
		out, err := c.readAll(10 * time.Second)
		if err != nil {
			t.Fatalf("reading until close: %v (got %q)", err, out)
		}
		return strings.Split(strings.TrimSpace(out), "\r\n")
	}
	type want struct {
		err   string // recorded Error
		reply string // recorded Reply prefix
	}
	var expected []want

	t.Run("garbage commands", func(t *testing.T) {
		c := dial(t, ts.addr())
		for _, g := range []string{"\x00\x01\x02", "HELO", "FOO BAR", "MAIL FROM:<x>", "\xff\xfe\xfd\xfc garbage", "ab", "XYZW", "QUIT"} {
			fmt.Fprintf(c.conn, "%s\r\n", g)
		}
		got := lines(c)
		for _, l := range got {
			if !strings.HasPrefix(l, "5") {
				t.Errorf("reply %q, want 5xx", l)
			}
		}
		if last := got[len(got)-1]; !strings.Contains(last, "Too many errors") {
			t.Errorf("last reply %q, want the error limit", last)
		}
		expected = append(expected, want{err: "too many errors"})
	})

	t.Run("10 KB line", func(t *testing.T) {
		c := dial(t, ts.addr())
		fmt.Fprintf(c.conn, "EHLO %s\r\n", strings.Repeat("a", 10<<10))
		got := lines(c)
		if !strings.HasPrefix(got[len(got)-1], "500 5.4.0") {
			t.Errorf("replies %q, want 500 5.4.0 last", got)
		}
		expected = append(expected, want{err: "line too long"})
	})

	t.Run("8-bit and NUL data", func(t *testing.T) {
		c := dial(t, ts.addr())
		c.ehlo()
		c.ok(250, "MAIL FROM:<a@example.org>")
		c.ok(250, "RCPT TO:<%s>", rcpt)
		c.ok(354, "DATA")
		code, _ := c.data("Subject: \xff\xfe\r\n\r\n\x00\x00 body \x80\x81\xc0\r\n..leading dot\r\n")
		// Plain text although STARTTLS was offered: acknowledged.
		if code != 250 {
			t.Errorf("8-bit mail: %d, want 250", code)
		}
		c.ok(250, "NOOP")
		c.quit()
		expected = append(expected, want{reply: "250 2.0.0 accepted: "})
	})

	t.Run("message over the size limit", func(t *testing.T) {
		c := dial(t, ts.addr())
		c.ehlo()
		c.ok(552, "MAIL FROM:<a@example.org> SIZE=%d", 1<<20)
		c.ok(250, "MAIL FROM:<a@example.org>")
		c.ok(250, "RCPT TO:<%s>", rcpt)
		c.ok(354, "DATA")
		code, msg := c.data(strings.Repeat(strings.Repeat("y", 99)+"\r\n", 1000))
		if code != 552 {
			t.Errorf("oversized message: %d %s, want 552", code, msg)
		}
		c.quit()
		expected = append(expected, want{reply: "552 5.3.4"})
	})

	t.Run("1000 pipelined commands", func(t *testing.T) {
		c := dial(t, ts.addr())
		c.ehlo()
		var b strings.Builder
		for range 1000 {
			b.WriteString("NOOP\r\n")
		}
		go io.WriteString(c.conn, b.String())
		for i := range 1000 {
			if code, msg := c.read(); code != 250 {
				t.Fatalf("NOOP %d: %d %s", i, code, msg)
			}
		}
		// A RCPT flood: relaying refused, then the connection closed.
		b.Reset()
		b.WriteString("MAIL FROM:<a@example.org>\r\n")
		for i := range 1000 {
			fmt.Fprintf(&b, "RCPT TO:<r%d@example.org>\r\n", i)
		}
		go io.WriteString(c.conn, b.String())
		got := lines(c)
		if len(got) < 10 || len(got) > 200 || !strings.HasPrefix(got[len(got)-1], "421 4.7.0 too many rejected recipients") {
			t.Errorf("%d replies to the RCPT flood, last %q", len(got), got[len(got)-1])
		}
		expected = append(expected, want{err: "too many rejected recipients", reply: "421 4.7.0"})
	})

	t.Run("connection flood", func(t *testing.T) {
		// Earlier connections may still linger (closeGracefully) and hold
		// their slots.
		ts.waitEnded(t, len(expected))
		var open []*client
		for range 5 {
			open = append(open, dial(t, ts.addr()))
			expected = append(expected, want{})
		}
		over := dialNoGreeting(t, "", ts.addr())
		if got := lines(over); len(got) != 1 || got[0] != "421 4.7.0 too many connections" {
			t.Errorf("over the cap: %q", got)
		}
		expected = append(expected, want{err: "too many connections", reply: "421 4.7.0"})
		for _, c := range open {
			c.quit()
		}
		// The slots are free again.
		waitFor(t, func() bool {
			ts.srv.clients.mu.Lock()
			defer ts.srv.clients.mu.Unlock()
			return ts.srv.clients.n["127.0.0.0/24"] == 0
		})
	})

	t.Run("slow client", func(t *testing.T) {
		c := dial(t, ts.addr())
		start := time.Now()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for _, b := range []byte("EHLO slow.example.org\r\n") {
				if _, err := c.conn.Write([]byte{b}); err != nil {
					return
				}
				time.Sleep(300 * time.Millisecond)
			}
		}()
		// The fragment read before the deadline may be answered as a
		// line (go-smtp reads lines with bufio); then the timeout.
		got := lines(c)
		if last := got[len(got)-1]; !strings.HasPrefix(last, "421 4.4.2") || len(got) > 2 {
			t.Errorf("slow client got %q, want 421 4.4.2 (timeout) last", got)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("timeout after %s, want about 1s", d)
		}
		c.conn.Close()
		<-done
		expected = append(expected, want{err: "timeout"})
	})

	t.Run("client gone mid-message", func(t *testing.T) {
		c := dial(t, ts.addr())
		c.ehlo()
		c.ok(250, "MAIL FROM:<a@example.org>")
		c.ok(250, "RCPT TO:<%s>", rcpt)
		c.ok(354, "DATA")
		io.WriteString(c.conn, "Subject: cut\r\n\r\nhalf a mess")
		c.conn.(*net.TCPConn).CloseWrite()
		lines(c)
		expected = append(expected, want{err: "client closed"})
	})

	t.Run("BDAT", func(t *testing.T) {
		// CHUNKING (RFC 3030), which go-smtp always offers: a mail in
		// two chunks, then go-smtp's "BDAT 0 and gone" case.
		c := dial(t, ts.addr())
		c.ehlo()
		c.ok(250, "MAIL FROM:<a@example.org>")
		c.ok(250, "RCPT TO:<%s>", rcpt)
		io.WriteString(c.conn, "BDAT 18\r\nSubject: x\r\n\r\nhi\r\n")
		c.expect(250)
		io.WriteString(c.conn, "BDAT 0 LAST\r\n")
		if msg := c.expect(250); !strings.HasPrefix(msg, "2.0.0 accepted") {
			t.Errorf("BDAT mail: %s", msg)
		}
		c.ok(250, "MAIL FROM:<a@example.org>")
		c.ok(250, "RCPT TO:<%s>", rcpt)
		io.WriteString(c.conn, "BDAT 0\r\n")
		c.expect(250)
		c.conn.(*net.TCPConn).CloseWrite()
		lines(c)
		expected = append(expected, want{err: "client closed"})
	})

	// Still serving.
	c := dial(t, ts.addr())
	c.ehlo()
	c.quit()
	expected = append(expected, want{})

	cs := ts.waitEnded(t, len(expected))
	if len(cs) != len(expected) {
		t.Fatalf("%d records for %d connections:\n%s", len(cs), len(expected), fmtConns(cs))
	}
	for i, c := range cs {
		w := expected[i]
		if c.Error != w.err || !strings.HasPrefix(c.Reply, w.reply) {
			t.Errorf("connection %d: error %q reply %q, want %q %q...\n%s", i, c.Error, c.Reply, w.err, w.reply, fmtConns([]store.SMTPConnection{c}))
		}
	}
}
