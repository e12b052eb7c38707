package delivery_test

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/delivery"
	"github.com/mailsec/mailsec/internal/peertest"
)

// TestSenderFromConfigGuard: the service's result-mail sender does not
// connect to a tester's MX on a non-public address (here loopback) and
// says so in the attempt's reason; network.allow_destinations lets the
// lab's range through.
func TestSenderFromConfigGuard(t *testing.T) {
	m := startMTA(t)
	_, port, _ := net.SplitHostPort(m.addr)
	dns := peertest.StartDNS(t)
	dns.Set(t, "user.example. 60 IN MX 10 mx.user.example.", "mx.user.example. 60 IN A 127.0.0.1")
	msg := []byte("From: <results@a.mailtest.example>\r\nSubject: result\r\n\r\nbody\r\n")
	for _, tc := range []struct {
		name   string
		allow  []string
		status string
		reason string
	}{
		{"public only", nil, delivery.Deferred, "destination 127.0.0.1 is not a public address"},
		{"loopback allowed", []string{"127.0.0.0/8"}, delivery.Delivered, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Resolver.Address = dns.Addr
			cfg.ResultMail.Port, _ = strconv.Atoi(port)
			cfg.Network.AllowDestinations = tc.allow
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			send, err := delivery.SenderFromConfig(&cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			before := len(m.received())
			o := send(context.Background(), "results@a.mailtest.example", "jane@user.example", msg)
			if o.Status != tc.status || !strings.Contains(o.Reason, tc.reason) {
				t.Errorf("status %s reason %q, want %s with %q", o.Status, o.Reason, tc.status, tc.reason)
			}
			if got := len(m.received()) - before; (got == 1) != (tc.status == delivery.Delivered) {
				t.Errorf("%d mails received", got)
			}
		})
	}
}
