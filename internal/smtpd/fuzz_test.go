package smtpd

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// FuzzSession feeds arbitrary bytes as a client's session, after the
// greeting, to a server on loopback. The server must not panic (go-smtp
// recovers panics in command handlers; those in this package's code are
// counted and fail the run; see errorLog for go-smtp's own BDAT panic),
// must not hang (each run is bounded by deadlines and the short command
// timeout) and must keep serving.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<t-fuzz@" + zoneA + ">\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<test@" + zoneB + ">\r\nDATA\r\nDKIM-Signature: v=1; d=x; s=y\r\n\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<>\r\nRCPT TO:<tlsrpt@" + zoneA + ">\r\nBDAT 5 LAST\r\nhello",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<t-fuzz@" + zoneA + ">\r\nBDAT 3\r\nabcBDAT 0 LAST\r\n",
		"EHLO x\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
		"STARTTLS\r\nQUIT\r\n",
		"HELO x\r\nRSET\r\nNOOP\r\nVRFY x\r\nHELP\r\nAUTH PLAIN AGFAYQ==\r\nQUIT\r\n",
		"\x00\xff\r\n\r\n\n\n....\r\n",
		"EHLO x\r\nMAIL FROM:<a@example.org> SIZE=99999999999 BODY=8BITMIME\r\nRCPT TO:<\"q\"@" + zoneA + "> NOTIFY=NEVER\r\n",
	} {
		f.Add([]byte(seed))
	}
	ts := startServer(f, func(o *Options) {
		o.DowngradeWindow = 0
		o.CommandTimeout = time.Second
		o.DataTimeout = time.Second
		o.MaxConnectionsPerClient = 0
		o.MaxMessageBytes = 64 << 10
	})
	ts.newTest(f, "fuzz")

	f.Fuzz(func(t *testing.T, in []byte) {
		conn, err := net.DialTimeout("tcp", ts.addr(), 5*time.Second)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.Close()
		// A run ends at the latest when the server's timeouts (1 s per
		// command, 1 s for data, 0.5 s linger) have passed.
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 512)
		if n, err := conn.Read(buf); err != nil || n < 4 || string(buf[:4]) != "220 " {
			t.Fatalf("greeting: %q, %v", buf[:n], err)
		}
		go func() {
			_, _ = conn.Write(in)
			_ = conn.(*net.TCPConn).CloseWrite()
		}()
		if _, err := io.Copy(io.Discard, conn); err != nil {
			if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
				t.Fatalf("server did not end the session within 10 s")
			}
		}
		if n := ts.srv.panics.Load(); n != 0 {
			t.Fatalf("%d panics in sessions; last:\n%s", n, *ts.srv.lastPanic.Load())
		}
	})
}
