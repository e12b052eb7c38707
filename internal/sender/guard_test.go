package sender

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/netguard"
)

// TestGuard: with Options.Guard the sender dials neither an MX address nor
// the MTA-STS policy host when they are not public, and says why in the
// result; addresses the guard allows are dialled.
func TestGuard(t *testing.T) {
	f, res := startFakeDNS(t)
	f.set(t, false, "ex.test. 60 IN MX 10 mx.ex.test.")
	f.host(t, "mx.ex.test", "127.0.2.1", false)
	f.set(t, false, `_mta-sts.ex.test. 60 IN TXT "v=STSv1; id=1"`)
	f.host(t, "mta-sts.ex.test", "10.0.0.5", false)
	f.setEmpty("_25._tcp.mx.ex.test", dns.TypeTLSA, dns.RcodeNameError, false)

	for _, tc := range []struct {
		name   string
		guard  *netguard.Guard
		dialed []string
	}{
		{"no guard", nil, []string{"https 10.0.0.5:443", "smtp 127.0.2.1:25"}},
		{"public only", &netguard.Guard{}, nil},
		{"loopback allowed", &netguard.Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, []string{"smtp 127.0.2.1:25"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var dialed []string
			hook := func(kind string) DialFunc {
				return func(_ context.Context, _, addr string) (net.Conn, error) {
					mu.Lock()
					dialed = append(dialed, kind+" "+addr)
					mu.Unlock()
					return nil, errors.New("test: no connection")
				}
			}
			s, err := New(Options{Hostname: "client.test", Resolver: res, Level: LevelDANE, MTASTS: true, Guard: tc.guard,
				Dial: hook("smtp"), DialHTTPS: hook("https")})
			if err != nil {
				t.Fatal(err)
			}
			r := s.Attempt(context.Background(), Message{From: "a@client.test", To: []string{"b@ex.test"}, Data: []byte("Subject: x\r\n\r\nx\r\n")})
			mu.Lock()
			got := strings.Join(dialed, ", ")
			mu.Unlock()
			if want := strings.Join(tc.dialed, ", "); got != want {
				t.Errorf("dialed %q, want %q", got, want)
			}
			if r.Status == Delivered {
				t.Fatalf("delivered: %+v", r)
			}
			if tc.guard != nil && len(tc.guard.Allow) == 0 && !strings.Contains(r.Reason, "destination 127.0.2.1 is not a public address") {
				t.Errorf("reason %q does not name the refused destination", r.Reason)
			}
		})
	}
}
