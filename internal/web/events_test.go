package web

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

func TestReloadAfter(t *testing.T) {
	base, maxWait := time.Second, 10*time.Second
	for _, tc := range []struct {
		last    time.Duration
		changed bool
		want    time.Duration
	}{
		{0, false, base},
		{base, true, base},
		{base, false, 2 * base},
		{4 * base, false, 8 * base},
		{8 * base, false, maxWait},
		{maxWait, false, maxWait},
		{maxWait, true, base},
	} {
		if got := reloadAfter(tc.last, base, maxWait, tc.changed); got != tc.want {
			t.Errorf("reloadAfter(%s, changed %v) = %s, want %s", tc.last, tc.changed, got, tc.want)
		}
	}
}

// openStream starts the event stream of the test ownerKey opens; the
// caller closes the body.
func openStream(t *testing.T, ctx context.Context, base, ownerKey string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/t/"+ownerKey+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// openTest stores an open test id, created an hour ago, and returns its
// owner key.
func (e *env) openTest(t *testing.T, id string) string {
	t.Helper()
	created := e.now.Add(-time.Hour)
	return e.ownedTest(t, store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen})
}

// TestEventStreamLimits: past MaxStreamsPerClient a client's stream gets
// 429, past MaxStreams anyone's 503, both with Retry-After; a closed
// stream frees its slot.
func TestEventStreamLimits(t *testing.T) {
	for _, tc := range []struct {
		name             string
		total, perClient int
		want             int
	}{
		{"per client", 10, 2, http.StatusTooManyRequests},
		{"server", 2, 10, http.StatusServiceUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *Options) { o.MaxStreams, o.MaxStreamsPerClient = tc.total, tc.perClient })
			key := e.openTest(t, "limitsaaaaaaaaaa")
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var open []*http.Response
			for range 2 {
				resp := openStream(t, ctx, e.ts.URL, key)
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("stream %d: %d", len(open)+1, resp.StatusCode)
				}
				open = append(open, resp)
			}
			resp := openStream(t, ctx, e.ts.URL, key)
			resp.Body.Close()
			if resp.StatusCode != tc.want || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("third stream: %d, Retry-After %q; want %d", resp.StatusCode, resp.Header.Get("Retry-After"), tc.want)
			}
			open[0].Body.Close()
			// The server notices the close at its next write or reload:
			// bounded polling until the slot is free.
			for i := 0; ; i++ {
				resp := openStream(t, ctx, e.ts.URL, key)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				if i == 200 {
					t.Fatalf("slot not freed after the stream closed: %d", resp.StatusCode)
				}
				time.Sleep(25 * time.Millisecond)
			}
			open[1].Body.Close()
		})
	}
}

// TestServerTimeouts: Serve bounds reading a request (ReadTimeout: a body
// that never comes does not hold the connection), and an event stream
// outlives the ReadTimeout.
func TestServerTimeouts(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.ReadTimeout = 300 * time.Millisecond })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, []net.Listener{ln}) }()
	defer func() { cancel(); <-done }()
	base := "http://" + ln.Addr().String()

	// A form post whose body never arrives.
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /check HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\ndomain=")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the server still waits for the body: no ReadTimeout")
	}

	// The stream keeps going past the ReadTimeout.
	id := "timeoutsaaaaaaaa"
	key := e.openTest(t, id)
	sctx, scancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer scancel()
	resp := openStream(t, sctx, base, key)
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	nextEvent := func() {
		t.Helper()
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			if strings.HasPrefix(line, "data: ") {
				return
			}
		}
	}
	nextEvent()
	time.Sleep(1 * time.Second) // beyond the ReadTimeout: not an assertion, the stream must survive it
	e.addConn(t, id, store.SMTPConnection{Started: e.now, Ended: e.now, EHLO: "mx.example.org", Persona: 1, State: store.StateNone})
	nextEvent()
}
