package service

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/resolver"
)

// TestBuiltinValidatorAgreesWithUnbound asks the same questions of Unbound
// (validating with the zones' DS) and of mailsec's own validating stub
// (resolver.WithTrustAnchors, asking the authoritative server directly, as
// `mailsec demo` does). They must agree on secure, insecure and bogus.
func TestBuiltinValidatorAgreesWithUnbound(t *testing.T) {
	zs := startZoneServer(t, nil)
	u := zs.unbound(t)
	direct, err := resolver.New(zs.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	v := direct.WithTrustAnchors(zs.zones.KeyA.DS(), zs.zones.KeyB.DS())
	a, b := zs.cfg.Zones.A, zs.cfg.Zones.B
	questions := []struct {
		name  string
		qtype uint16
	}{
		{a, dns.TypeMX}, {a, dns.TypeSOA}, {a, dns.TypeAAAA}, {"mx4." + a, dns.TypeA}, {"mx4." + a, dns.TypeTLSA},
		{"_25._tcp.mx4." + a, dns.TypeTLSA}, {"_25._tcp.mx3." + a, dns.TypeTLSA}, {"_tcp.mx4." + a, dns.TypeTLSA},
		{"_mta-sts." + a, dns.TypeTXT}, {"_smtp._tls." + a, dns.TypeTXT}, {"_tls." + a, dns.TypeTXT},
		{"nope." + a, dns.TypeA}, {"c." + a, dns.TypeA}, {"zzz." + a, dns.TypeMX}, {"x.y._tcp.mx5." + a, dns.TypeTLSA},
		{"broken." + a, dns.TypeA}, {b, dns.TypeMX}, {"_25._tcp.mx7." + b, dns.TypeTLSA}, {"_mta-sts." + b, dns.TypeTXT},
	}
	ctx := context.Background()
	for _, q := range questions {
		t.Run(q.name+"/"+dns.TypeToString[q.qtype], func(t *testing.T) {
			ur := u.Query(t, q.name, q.qtype)
			ans, err := v.Query(ctx, q.name, q.qtype)
			bogus := errors.Is(err, resolver.ErrBogus)
			if err != nil && !bogus && !errors.Is(err, resolver.ErrNXDomain) {
				t.Fatalf("validator: %v", err)
			}
			switch {
			case ur.Rcode == dns.RcodeServerFailure:
				if !bogus {
					t.Fatalf("Unbound says bogus (SERVFAIL), the validator says secure=%v err=%v", ans.Secure, err)
				}
			case bogus:
				t.Fatalf("validator says bogus (%v), Unbound answers %s AD=%v", err, dns.RcodeToString[ur.Rcode], ur.AuthenticatedData)
			case ur.AuthenticatedData != ans.Secure:
				t.Fatalf("Unbound AD=%v, validator secure=%v (rcode %s)", ur.AuthenticatedData, ans.Secure, dns.RcodeToString[ur.Rcode])
			}
		})
	}
	// A name outside the anchors is never secure.
	if ans, err := direct.WithTrustAnchors(zs.zones.KeyB.DS()).Query(ctx, a, dns.TypeMX); err != nil || ans.Secure {
		t.Fatalf("zone A without its anchor: secure=%v err=%v", ans.Secure, err)
	}
	// A wrong anchor makes everything bogus.
	wrong := *zs.zones.KeyA.DS()
	wrong.Digest = "00" + wrong.Digest[2:]
	if _, err := direct.WithTrustAnchors(&wrong).Query(ctx, a, dns.TypeMX); !errors.Is(err, resolver.ErrBogus) {
		t.Fatalf("wrong trust anchor: %v", err)
	}
}

// TestBuiltinValidatorRejectsForgeries puts a tampering proxy between the
// validator and the real server: stripped signatures, missing or wrong
// denial proofs and altered data must all be bogus.
func TestBuiltinValidatorRejectsForgeries(t *testing.T) {
	zs := startZoneServer(t, nil)
	a := zs.cfg.Zones.A
	tamper := func(mutate func(q dns.Question, m *dns.Msg)) string {
		t.Helper()
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
			in, err := dns.Exchange(r, zs.addr.String())
			if err != nil {
				return
			}
			if r.Question[0].Qtype != dns.TypeDNSKEY {
				mutate(r.Question[0], in)
			}
			_ = w.WriteMsg(in)
		})}
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
		return pc.LocalAddr().String()
	}
	withoutType := func(rrs []dns.RR, t uint16) []dns.RR {
		var out []dns.RR
		for _, rr := range rrs {
			if rr.Header().Rrtype != t {
				out = append(out, rr)
			}
		}
		return out
	}
	tests := []struct {
		name   string
		qname  string
		qtype  uint16
		mutate func(q dns.Question, m *dns.Msg)
	}{
		{"answer signature stripped", a, dns.TypeMX, func(_ dns.Question, m *dns.Msg) { m.Answer = withoutType(m.Answer, dns.TypeRRSIG) }},
		{"MX data altered", a, dns.TypeMX, func(_ dns.Question, m *dns.Msg) { m.Answer[0].(*dns.MX).Preference = 1 }},
		{"TLSA data altered", "_25._tcp.mx4." + a, dns.TypeTLSA, func(_ dns.Question, m *dns.Msg) {
			// Flip the first octet: replacing it by a constant changes
			// nothing when the hash already starts with it (1 in 256).
			c := m.Answer[0].(*dns.TLSA).Certificate
			first := "00"
			if strings.HasPrefix(c, first) {
				first = "ff"
			}
			m.Answer[0].(*dns.TLSA).Certificate = first + c[2:]
		}},
		{"TLSA removed, NOERROR without proof", "_25._tcp.mx4." + a, dns.TypeTLSA, func(_ dns.Question, m *dns.Msg) { m.Answer = nil }},
		{"NXDOMAIN without NSEC", "nope." + a, dns.TypeA, func(_ dns.Question, m *dns.Msg) { m.Ns = withoutType(withoutType(m.Ns, dns.TypeNSEC), dns.TypeRRSIG) }},
		{"forged NXDOMAIN for an existing name", "mx4." + a, dns.TypeA, func(_ dns.Question, m *dns.Msg) { m.Answer, m.Rcode = nil, dns.RcodeNameError }},
		{"NODATA claimed at a name that has the type", "mx4." + a, dns.TypeA, func(_ dns.Question, m *dns.Msg) {
			in, _ := dns.Exchange(func() *dns.Msg {
				q := new(dns.Msg)
				q.SetQuestion("mx4."+a, dns.TypeAAAA)
				q.SetEdns0(1232, true)
				return q
			}(), zs.addr.String())
			m.Answer, m.Ns = nil, in.Ns // mx4's own NSEC lists A
		}},
	}
	ctx := context.Background()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := resolver.New(tamper(tc.mutate))
			if err != nil {
				t.Fatal(err)
			}
			v := r.WithTrustAnchors(zs.zones.KeyA.DS())
			ans, err := v.Query(ctx, tc.qname, tc.qtype)
			if !errors.Is(err, resolver.ErrBogus) {
				t.Fatalf("forgery accepted: secure=%v err=%v\n%s", ans.Secure, err, ans.Msg)
			}
		})
	}
}
