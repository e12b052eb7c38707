package service

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/dnsserver"
	"github.com/mailsec/mailsec/internal/peertest"
)

// zoneServer is our DNS server for the test zones, on a free loopback port.
type zoneServer struct {
	cfg   config.Config
	zones *Zones
	addr  netip.AddrPort
}

func startZoneServer(t *testing.T, mutate func(*config.Config)) *zoneServer {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Zones.NSAddresses = []string{"127.0.0.10"}
	cfg.Zones.MXAddresses = []string{"127.0.0.20"}
	cfg.DNSSEC.BrokenHosts = []string{"broken"}
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	zones, err := BuildZones(&cfg, time.Now(), CreateZoneKeys)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ls, err := dnsserver.Listen(ctx, []string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	srv := dnsserver.New(zones.Authority, dnsserver.Options{UDPSize: cfg.DNS.UDPSize})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ls) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &zoneServer{cfg: cfg, zones: zones, addr: ls[0].Addr().(*net.UDPAddr).AddrPort()}
}

func (z *zoneServer) unbound(t *testing.T) *peertest.Unbound {
	t.Helper()
	anchors := []string{z.zones.KeyA.DS().String()}
	if z.zones.KeyB != nil {
		anchors = append(anchors, z.zones.KeyB.DS().String())
	}
	return peertest.StartUnbound(t, peertest.UnboundOptions{
		Stubs:        map[string]netip.AddrPort{z.cfg.Zones.A: z.addr, z.cfg.Zones.B: z.addr},
		TrustAnchors: anchors,
	})
}

// TestZonesValidateInUnbound is the proof that our DNSSEC is right: a real
// validating resolver with zone A's trust anchor sets AD on positive and
// negative answers, and SERVFAILs the deliberately broken signature.
func TestZonesValidateInUnbound(t *testing.T) {
	zs := startZoneServer(t, nil)
	u := zs.unbound(t)
	a, b := zs.cfg.Zones.A, zs.cfg.Zones.B

	tests := []struct {
		name      string
		qname     string
		qtype     uint16
		rcode     int
		ad        bool
		answers   int // -1: at least one
		wantInAns string
	}{
		{"MX of A", a, dns.TypeMX, dns.RcodeSuccess, true, 4, "mx4." + a},
		{"A of mx4", "mx4." + a, dns.TypeA, dns.RcodeSuccess, true, 1, "127.0.0.20"},
		{"TLSA of mx4", "_25._tcp.mx4." + a, dns.TypeTLSA, dns.RcodeSuccess, true, 1, "3 1 1"},
		{"TLSA of mx3", "_25._tcp.mx3." + a, dns.TypeTLSA, dns.RcodeSuccess, true, 1, "3 1 1"},
		{"_mta-sts TXT", "_mta-sts." + a, dns.TypeTXT, dns.RcodeSuccess, true, 1, "v=STSv1; id="},
		{"TLS-RPT TXT", "_smtp._tls." + a, dns.TypeTXT, dns.RcodeSuccess, true, 1, "v=TLSRPTv1"},
		{"policy host", "mta-sts." + a, dns.TypeA, dns.RcodeSuccess, true, 1, "127.0.0.20"},
		{"missing name", "nope." + a, dns.TypeA, dns.RcodeNameError, true, 0, ""},
		{"missing deep name", "x.y.z.mx5." + a, dns.TypeTXT, dns.RcodeNameError, true, 0, ""},
		{"missing name before apex order", "0." + a, dns.TypeA, dns.RcodeNameError, true, 0, ""},
		{"missing name after last", "zzzz." + a, dns.TypeA, dns.RcodeNameError, true, 0, ""},
		{"ENT _tcp.mx4", "_tcp.mx4." + a, dns.TypeTLSA, dns.RcodeSuccess, true, 0, ""},
		{"ENT _tcp.mx6", "_tcp.mx6." + a, dns.TypeA, dns.RcodeSuccess, true, 0, ""},
		{"ENT _tls", "_tls." + a, dns.TypeTXT, dns.RcodeSuccess, true, 0, ""},
		{"NODATA at host", "mx4." + a, dns.TypeAAAA, dns.RcodeSuccess, true, 0, ""},
		{"NODATA TLSA at host", "mx4." + a, dns.TypeTLSA, dns.RcodeSuccess, true, 0, ""},
		{"NODATA at apex", a, dns.TypeAAAA, dns.RcodeSuccess, true, 0, ""},
		{"broken signature", "broken." + a, dns.TypeA, dns.RcodeServerFailure, false, 0, ""},
		// "c" sorts right after "broken": its NXDOMAIN proof is broken's
		// NSEC, which must stay valid.
		{"missing name after broken", "c." + a, dns.TypeA, dns.RcodeNameError, true, 0, ""},
		{"MX of B", b, dns.TypeMX, dns.RcodeSuccess, true, 1, "mx7." + b},
		{"no TLSA in B", "_25._tcp.mx7." + b, dns.TypeTLSA, dns.RcodeNameError, true, 0, ""},
		{"no MTA-STS in B", "_mta-sts." + b, dns.TypeTXT, dns.RcodeNameError, true, 0, ""},
		// The test slots (docs/dns.md "Test slots"): names of their own,
		// in the same signed zones and NSEC chains.
		{"MX of slot 1 in A", "s001." + a, dns.TypeMX, dns.RcodeSuccess, true, 4, "mx4.s001." + a},
		{"A of mx6 in the last slot", "mx6.s050." + a, dns.TypeA, dns.RcodeSuccess, true, 1, "127.0.0.20"},
		{"TLSA of mx4 in a slot", "_25._tcp.mx4.s001." + a, dns.TypeTLSA, dns.RcodeSuccess, true, 1, "3 1 1"},
		{"slot _mta-sts TXT", "_mta-sts.s002." + a, dns.TypeTXT, dns.RcodeSuccess, true, 1, "v=STSv1; id="},
		{"slot TLS-RPT TXT", "_smtp._tls.s002." + a, dns.TypeTXT, dns.RcodeSuccess, true, 1, "v=TLSRPTv1"},
		{"slot policy host", "mta-sts.s002." + a, dns.TypeA, dns.RcodeSuccess, true, 1, "127.0.0.20"},
		{"slot ENT _tcp.mx5", "_tcp.mx5.s003." + a, dns.TypeTLSA, dns.RcodeSuccess, true, 0, ""},
		{"NODATA at a slot", "s004." + a, dns.TypeA, dns.RcodeSuccess, true, 0, ""},
		{"slot beyond the pool", "s051." + a, dns.TypeMX, dns.RcodeNameError, true, 0, ""},
		{"missing name in a slot", "mx9.s001." + a, dns.TypeA, dns.RcodeNameError, true, 0, ""},
		{"MX of slot 1 in B", "s001." + b, dns.TypeMX, dns.RcodeSuccess, true, 1, "mx7.s001." + b},
		{"no TLSA in a slot of B", "_25._tcp.mx7.s001." + b, dns.TypeTLSA, dns.RcodeNameError, true, 0, ""},
		{"no MTA-STS in a slot of B", "_mta-sts.s001." + b, dns.TypeTXT, dns.RcodeNameError, true, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := u.Query(t, tc.qname, tc.qtype)
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode %s, want %s\n%s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode], r)
			}
			if r.AuthenticatedData != tc.ad {
				t.Fatalf("AD=%v, want %v\n%s", r.AuthenticatedData, tc.ad, r)
			}
			var ans []dns.RR
			for _, rr := range r.Answer {
				if rr.Header().Rrtype != dns.TypeRRSIG {
					ans = append(ans, rr)
				}
			}
			if tc.answers >= 0 && len(ans) != tc.answers {
				t.Fatalf("%d answers, want %d\n%s", len(ans), tc.answers, r)
			}
			if tc.wantInAns != "" && !strings.Contains(r.String(), tc.wantInAns) {
				t.Fatalf("answer lacks %q\n%s", tc.wantInAns, r)
			}
		})
	}
}

// TestUnsignedZoneBIsInsecure: with sign_b off, B's answers are insecure
// (no AD) but never bogus.
func TestUnsignedZoneBIsInsecure(t *testing.T) {
	zs := startZoneServer(t, func(c *config.Config) { c.Zones.SignB = false })
	u := zs.unbound(t)
	r := u.Query(t, zs.cfg.Zones.B, dns.TypeMX)
	if r.Rcode != dns.RcodeSuccess || r.AuthenticatedData || len(r.Answer) != 1 {
		t.Fatalf("MX of unsigned B: want NOERROR without AD\n%s", r)
	}
	if r := u.Query(t, zs.cfg.Zones.A, dns.TypeMX); !r.AuthenticatedData {
		t.Fatalf("A must stay secure\n%s", r)
	}
}

// TestRotationThroughUnbound watches the first MX through a real resolver
// over one rotation cycle: it changes at every step and each persona host is
// first exactly once.
func TestRotationThroughUnbound(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a full rotation cycle")
	}
	const interval = 2 * time.Second
	zs := startZoneServer(t, func(c *config.Config) {
		c.Timing.MXRotation = config.Duration{Duration: interval}
		c.Zones.MXTTL = config.Duration{Duration: time.Second}
	})
	u := zs.unbound(t)
	firstMX := func() string {
		r := u.Query(t, zs.cfg.Zones.A, dns.TypeMX)
		if !r.AuthenticatedData {
			t.Fatalf("MX without AD\n%s", r)
		}
		best, host := uint16(65535), ""
		for _, rr := range r.Answer {
			if mx, ok := rr.(*dns.MX); ok && mx.Preference < best {
				best, host = mx.Preference, mx.Mx
			}
		}
		return host
	}
	seen := map[string]int{}
	prev := ""
	for i := range 4 {
		// Sample in the middle of each step: Unbound caches for at most
		// cache-max-ttl (1 s), so by then it has the new order.
		step := time.Now().Unix() / int64(interval/time.Second)
		next := time.Unix((step+1)*int64(interval/time.Second), 0)
		time.Sleep(time.Until(next) + interval*3/4)
		h := firstMX()
		if i > 0 && h == prev {
			t.Fatalf("step %d: first MX %s did not change", i, h)
		}
		seen[h]++
		prev = h
	}
	for _, host := range []string{"mx3", "mx4", "mx5", "mx6"} {
		if seen[host+"."+zs.cfg.Zones.A] != 1 {
			t.Errorf("%s was first %d times in one cycle, want 1 (seen %v)", host, seen[host+"."+zs.cfg.Zones.A], seen)
		}
	}
}

// TestDumpVerifiesWithLdns: `mailsec dns dump` output passes an independent
// DNSSEC zone verifier.
func TestDumpVerifiesWithLdns(t *testing.T) {
	bin := peertest.Require(t, "ldns-verify-zone")
	verify := func(t *testing.T, zs *zoneServer, asServed bool) []string {
		t.Helper()
		now := time.Now()
		var problems []string
		for _, z := range zs.zones.Authority.Snapshot(now).Zones {
			path := filepath.Join(t.TempDir(), "zone")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := z.Dump(f, now, asServed); err != nil {
				t.Fatal(err)
			}
			f.Close()
			out, err := exec.Command(bin, path).CombinedOutput()
			if err == nil && strings.Contains(string(out), "Zone is verified and complete") {
				continue
			}
			for _, l := range peertest.Lines(string(out)) {
				if strings.HasPrefix(l, "Error:") {
					problems = append(problems, l)
				}
			}
			if len(problems) == 0 {
				t.Fatalf("ldns-verify-zone failed without an Error line: %v\n%s", err, out)
			}
		}
		return problems
	}
	t.Run("clean", func(t *testing.T) {
		zs := startZoneServer(t, func(c *config.Config) { c.DNSSEC.BrokenHosts = nil })
		if p := verify(t, zs, false); len(p) > 0 {
			t.Fatalf("ldns-verify-zone: %v", p)
		}
	})
	t.Run("published zone with a broken host is clean", func(t *testing.T) {
		zs := startZoneServer(t, nil)
		if p := verify(t, zs, false); len(p) > 0 {
			t.Fatalf("ldns-verify-zone: %v", p)
		}
	})
	t.Run("as served, the broken host is the only error", func(t *testing.T) {
		zs := startZoneServer(t, nil)
		p := verify(t, zs, true)
		if len(p) != 1 || !strings.Contains(p[0], "broken."+zs.cfg.Zones.A) || !strings.HasSuffix(p[0], "A") {
			t.Fatalf("want exactly the A RRset of broken.%s bogus, got %q", zs.cfg.Zones.A, p)
		}
	})
}
