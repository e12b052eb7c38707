package sender

import (
	"log/slog"
	"strings"
	"testing"
)

// Test helpers, exported to the lab tests (package sender_test, which
// build on internal/service, which imports this package).
var (
	TestLogger = testLogger
	DumpResult = dumpResult
)

// testLogger logs to the test at debug level with -v, else discards.
func testLogger(t testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func dumpResult(t *testing.T, res Result) {
	t.Helper()
	t.Logf("result: %s — %s (err %v), MX %+v, STS %+v", res.Status, res.Reason, res.Err, res.MX, res.STS)
	for _, h := range res.Hosts {
		t.Logf("  %s %s policy=%q (%s) outcome=%s tls=%q sni=%q pkix=%s dane=%s sts=%s reply=%q err=%v",
			h.MX, h.Addr, h.Policy, h.PolicyReason, h.Outcome, h.TLSVersion, h.SNI, h.PKIX, h.DANE, h.STS, h.Reply, h.Err)
		for _, line := range h.Log {
			t.Logf("    %s", line)
		}
	}
}
