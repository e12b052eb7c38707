package resolver

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
)

// startServer runs a tiny DNS server with fixed answers (a unit-test
// stand-in; the real resolver is exercised through the lab).
func startServer(t *testing.T, ad bool) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.AuthenticatedData = ad
		switch r.Question[0].Name {
		case "sel._domainkey.example.org.":
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
				Txt: []string{"v=DKIM1; k=ed25519; ", "p=abc"}})
		case "bogus.example.org.":
			m.Rcode = dns.RcodeServerFailure
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestLookupTXTAndErrors(t *testing.T) {
	r, err := New(startServer(t, true))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	txt, err := r.LookupTXT(ctx, "sel._domainkey.example.org")
	if err != nil || len(txt) != 1 || txt[0] != "v=DKIM1; k=ed25519; p=abc" {
		t.Fatalf("TXT %q, %v: want the strings joined", txt, err)
	}
	if _, err := r.LookupTXT(ctx, "missing.example.org"); !errors.Is(err, ErrNXDomain) {
		t.Fatalf("missing name: %v", err)
	}
	if _, err := r.LookupTXT(ctx, "bogus.example.org"); !errors.Is(err, ErrServFail) {
		t.Fatalf("SERVFAIL: %v", err)
	}
	a, err := r.Query(ctx, "sel._domainkey.example.org", dns.TypeTXT)
	if err != nil || !a.Secure {
		t.Fatalf("AD from a loopback resolver must count: %+v %v", a, err)
	}
}

func TestADNotTrustedOffLoopback(t *testing.T) {
	r, err := New("192.0.2.53:53") // never contacted
	if err != nil {
		t.Fatal(err)
	}
	if r.TrustsAD() {
		t.Fatal("AD from a remote resolver must not be trusted")
	}
}

func TestSystemNameserver(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("# comment\nsearch example\nnameserver not-an-address\nnameserver 127.0.0.53\nnameserver ::1\n"), 0o600)
	got, err := systemNameserver(p)
	if err != nil || got != "127.0.0.53:53" {
		t.Fatalf("got %q, %v", got, err)
	}
	os.WriteFile(p, []byte("search example\n"), 0o600)
	if _, err := systemNameserver(p); !errors.Is(err, ErrNoResolver) {
		t.Fatalf("no nameserver: %v", err)
	}
}
