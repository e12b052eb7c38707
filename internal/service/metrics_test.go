package service

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/peertest"
)

// TestMetricsEndpoint: with metrics.listen set, GET /metrics shows the
// runtime and the listeners' figures; an open SMTP connection is counted.
func TestMetricsEndpoint(t *testing.T) {
	cfg := loopbackConfig(t)
	addr := peertest.FreeAddr(t).String()
	cfg.Metrics.Listen = []string{addr}
	run := startLoopback(t, cfg)
	c, err := net.Dial("tcp", run.SMTPAddrs[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(make([]byte, 512)); err != nil { // the greeting: the session is open
		t.Fatal(err)
	}
	open := regexp.MustCompile(`(?m)^mailsec_smtp_connections_open 1$`)
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if open.Match(body) {
			break
		}
	}
	for _, want := range []*regexp.Regexp{open, regexp.MustCompile(`(?m)^go_goroutines \d+`), regexp.MustCompile(`(?m)^mailsec_dns_rrl_dropped_total 0$`),
		regexp.MustCompile(`(?m)^mailsec_smtp_data_bytes_held 0$`)} {
		if !want.Match(body) {
			t.Errorf("/metrics lacks %s:\n%.3000s", want, body)
		}
	}
}
