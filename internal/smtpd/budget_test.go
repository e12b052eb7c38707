package smtpd

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestReadDataBudget(t *testing.T) {
	const limit = 300 << 10
	msg := strings.Repeat("x", 200<<10)
	t.Run("fits", func(t *testing.T) {
		b := &dataBudget{limit: 1 << 20}
		body, release, err := b.readData(iotest.OneByteReader(strings.NewReader(msg[:1000])), limit)
		if err != nil || string(body) != msg[:1000] {
			t.Fatalf("%d bytes, %v", len(body), err)
		}
		if b.used.Load() == 0 || b.used.Load() > dataChunk {
			t.Fatalf("holding %d bytes for a 1000-byte message", b.used.Load())
		}
		release()
		release() // twice is harmless
		if b.used.Load() != 0 {
			t.Fatalf("after release: %d", b.used.Load())
		}
	})
	t.Run("too large", func(t *testing.T) {
		b := &dataBudget{limit: 1 << 20}
		body, release, err := b.readData(strings.NewReader(msg+msg), limit)
		defer release()
		if err != nil || len(body) != limit+1 {
			t.Fatalf("%d bytes, %v; want limit+1 to tell too large", len(body), err)
		}
		if b.used.Load() > limit+1 {
			t.Fatalf("holding %d bytes for a limit of %d", b.used.Load(), limit)
		}
	})
	t.Run("over budget", func(t *testing.T) {
		b := &dataBudget{limit: 256 << 10}
		// Another message holds most of the budget.
		other, releaseOther, err := b.readData(strings.NewReader(msg[:100<<10]), limit)
		if err != nil || len(other) != 100<<10 {
			t.Fatal(len(other), err)
		}
		rest := bytes.NewReader([]byte(msg))
		body, release, err := b.readData(rest, limit)
		if !errors.Is(err, errOverBudget) || body != nil {
			t.Fatalf("%d bytes, %v; want errOverBudget", len(body), err)
		}
		if b.used.Load() != int64(cap(other)) {
			t.Fatalf("after a refusal, %d bytes held; only the other message's %d may be", b.used.Load(), cap(other))
		}
		if rest.Len() != 0 {
			t.Fatalf("%d bytes left unread: the rest of a refused message must be discarded", rest.Len())
		}
		release()
		if b.used.Load() > b.limit {
			t.Fatalf("holding %d of %d", b.used.Load(), b.limit)
		}
		releaseOther()
		if b.used.Load() != 0 {
			t.Fatalf("after both releases: %d", b.used.Load())
		}
		// Now it fits.
		if _, release, err := b.readData(strings.NewReader(msg), limit); err != nil {
			t.Fatalf("after the budget was freed: %v", err)
		} else {
			release()
		}
	})
	t.Run("no budget", func(t *testing.T) {
		b := &dataBudget{}
		body, release, err := b.readData(io.MultiReader(strings.NewReader(msg), strings.NewReader(msg)), limit)
		defer release()
		if err != nil || len(body) != limit+1 {
			t.Fatalf("%d, %v", len(body), err)
		}
	})
}

// TestDataMemoryBudget: while one sender's slow message holds the DATA
// memory budget, another message is answered 452 4.3.1 (try later), and
// once the first is done the next one is accepted.
func TestDataMemoryBudget(t *testing.T) {
	const limit = 200 << 10
	ts := startServer(t, func(o *Options) {
		o.DowngradeWindow = 0
		o.MaxMessageBytes = limit
		o.DataMemoryBudget = limit + 1
	})
	ts.newTest(t, "tok1")
	rcpt := "t-tok1@" + zoneA
	line := strings.Repeat("s", 99) + "\r\n"

	slow := dial(t, ts.addr())
	slow.ehlo()
	slow.ok(250, "MAIL FROM:<a@example.org>")
	slow.ok(250, "RCPT TO:<%s>", rcpt)
	slow.ok(354, "DATA")
	w := slow.text.DotWriter()
	io.WriteString(w, "Subject: slow\r\n\r\n"+strings.Repeat(line, 1500)) // 150 KiB, not ended
	// Wait (bounded) until the server holds it.
	for i := 0; ts.srv.dataBudget.used.Load() < limit+1; i++ {
		if i > 500 {
			t.Fatalf("the server holds %d bytes of the slow message", ts.srv.dataBudget.used.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	other := dial(t, ts.addr())
	other.ehlo()
	code, msg := other.mail("b@example.org", []string{rcpt}, "Subject: other\r\n\r\n"+strings.Repeat(line, 100))
	if code != 452 || !strings.HasPrefix(msg, "4.3.1") {
		t.Fatalf("a message while the budget is held: %d %s, want 452 4.3.1", code, msg)
	}
	other.ok(250, "NOOP") // the session goes on

	w.Close()
	if code, msg := slow.read(); code != 250 {
		t.Fatalf("the slow message: %d %s", code, msg)
	}
	if got := ts.srv.dataBudget.used.Load(); got != 0 {
		t.Fatalf("after the slow message: %d bytes still held", got)
	}
	if code, msg := other.mail("b@example.org", []string{rcpt}, "Subject: again\r\n\r\nx\r\n"); code != 250 {
		t.Fatalf("after the budget is free: %d %s", code, msg)
	}
	other.quit()
	slow.quit()
}

// TestGlobalConnectionCap: past smtp.max_connections, a new client (under
// its own per-client cap) is answered 421 4.3.2 instead of the greeting;
// a freed slot is usable again.
func TestGlobalConnectionCap(t *testing.T) {
	ts := startServer(t, func(o *Options) {
		o.MaxConnections = 2
		o.MaxConnectionsPerClient = 2
		o.ClientPrefixV4 = 32
	})
	a1, a2 := dialFrom(t, "127.0.0.1", ts.addr()), dialFrom(t, "127.0.0.2", ts.addr())
	a1.ehlo()
	a2.ehlo()
	b := dialNoGreeting(t, "127.0.0.3", ts.addr())
	if code, msg := b.read(); code != 421 || !strings.Contains(msg, "too busy") {
		t.Fatalf("a third connection past max 2: %d %s, want 421 too busy", code, msg)
	}
	if st := ts.srv.Stats(); st.Open != 2 || st.MaxOpenPerClient != 1 || st.Refused != 1 {
		t.Fatalf("Stats: %+v, want 2 open, at most 1 per client, 1 refused", st)
	}
	a1.quit()
	for i := 0; ; i++ {
		c := dialNoGreeting(t, "127.0.0.4", ts.addr())
		code, _ := c.read()
		if code == 220 {
			c.quit()
			break
		}
		if i > 100 {
			t.Fatalf("after a close, new connections still get %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a2.quit()
}
