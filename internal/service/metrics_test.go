package service

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/peertest"
)

// scrape GETs path on the metrics listener.
func scrape(t *testing.T, addr, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// TestMetricsEndpoint: with metrics.listen set, GET /metrics shows the
// runtime, the listeners' figures (an open SMTP connection, an answered
// DNS query), the store's write latency and held rows; promtool (when
// installed) finds the exposition valid.
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
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(cfg.Zones.A), dns.TypeSOA)
	if _, _, err := new(dns.Client).Exchange(q, run.DNSAddrs[0].String()); err != nil {
		t.Fatal(err)
	}
	open := regexp.MustCompile(`(?m)^mailsec_smtp_connections_open 1$`)
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, body = scrape(t, addr, "/metrics"); open.Match(body) {
			break
		}
	}
	for _, want := range []string{`^mailsec_smtp_connections_open 1$`, `^go_goroutines \d+`, `^mailsec_dns_rrl_dropped_total 0$`,
		`^mailsec_smtp_data_bytes_held 0$`, `^mailsec_dns_queries_total\{qtype="SOA",rcode="NOERROR"\} 1$`,
		`^mailsec_smtp_acknowledgements_total\{reply="250",zone="A"\} 0$`, `^mailsec_store_write_seconds_count [1-9]`,
		`^mailsec_store_counts_up 1$`, `^mailsec_tlsrpt_reports 0$`, `^mailsec_inbound_checks 0$`} {
		if !regexp.MustCompile(`(?m)` + want).Match(body) {
			t.Errorf("/metrics lacks %s:\n%.3000s", want, body)
		}
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; scripts/install-deps)")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestReadiness: GET /readyz names each check; a resolver that answers for
// zone A without validating it fails "resolver", and a persona key file
// removed under the running service fails "keys" with its path.
func TestReadiness(t *testing.T) {
	cfg := loopbackConfig(t)
	addr := peertest.FreeAddr(t).String()
	cfg.Metrics.Listen = []string{addr}
	// The service's own authoritative server as its resolver: on loopback
	// (AD trusted), answering zone A without AD, as a resolver without the
	// DS at the parent would.
	cfg.Resolver.Address = cfg.DNS.Listen[0]
	startLoopback(t, cfg)
	if code, body := scrape(t, addr, "/healthz"); code != http.StatusOK || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	code, body := scrape(t, addr, "/readyz")
	want := "ok store\nok keys\nok certificates\nfail resolver: zone A does not validate through the resolver " + cfg.DNS.Listen[0]
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(string(body), want) {
		t.Errorf("/readyz: %d\n%s\nwant 503 and\n%s", code, body, want)
	}
	key := filepath.Join(cfg.KeyDir(), "persona-4.key")
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	if code, body := scrape(t, addr, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "fail keys: open "+key) {
		t.Errorf("/readyz without %s: %d\n%s", key, code, body)
	}
}
