package smtpd

import (
	"strings"
	"testing"
	"time"
)

// TestSessionLifetime: a client that keeps its connection alive with NOOP
// (each well within CommandTimeout) is answered 421 and disconnected once
// SessionMax has passed, and the record says why.
func TestSessionLifetime(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) {
		o.DowngradeWindow = 0
		o.CommandTimeout = time.Minute
		o.SessionMax = time.Second
	})
	c := dial(t, ts.addr())
	c.ehlo()
	// Bounded: 200 NOOPs 50 ms apart are ten times the lifetime.
	code, msg := 0, ""
	for i := 0; i < 200; i++ {
		if code, msg = c.cmd("NOOP"); code != 250 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 421 || !strings.Contains(msg, "session time limit") {
		t.Fatalf("last reply %d %q, want 421 session time limit", code, msg)
	}
	if rest, err := c.readAll(5 * time.Second); err != nil || rest != "" {
		t.Fatalf("after the 421: %q, %v; want the connection closed", rest, err)
	}
	cs := ts.waitEnded(t, 1)
	if cs[0].Error != "session lifetime exceeded" {
		t.Errorf("recorded error %q, want session lifetime exceeded", cs[0].Error)
	}
}
