package sender_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/mailsec/mailsec/internal/sender"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/mtasts"
)

// hostWant is what one host of an attempt must show.
type hostWant struct {
	mx      int            // persona number of the MX host
	outcome sender.Outcome // delivered, deferred, skipped, bounced
	err     error          // sentinel the host's Err must wrap (nil: none)
	tls     bool           // a TLS session was established
	sni     bool           // the MX host name was sent as SNI
}

type matrixCase struct {
	name    string
	level   sender.Level
	mtaSTS  bool
	sendSNI bool
	window  bool   // persona server inside the downgrade window (no STARTTLS)
	rcpt    string // local part @ zone ("A" or "B")
	only    []int  // MX hosts to try, in order
	tweak   func(*sender.Options)
	status  sender.Status
	err     error // sentinel the Result's Err must wrap
	hosts   []hostWant
}

// TestPolicyMatrix drives the sender at every level against personas 3–7
// of the real receiving side (DESIGN.md §2) and checks, host by host, what
// it did: deliver, refuse (and why), or never contact.
func TestPolicyMatrix(t *testing.T) {
	l := startLab(t, labOptions{signB: true})
	del := func(mx int, tls, sni bool) hostWant {
		return hostWant{mx: mx, outcome: sender.OutcomeDelivered, tls: tls, sni: sni}
	}
	refuse := func(mx int, err error, tls, sni bool) hostWant {
		return hostWant{mx: mx, outcome: sender.OutcomeDeferred, err: err, tls: tls, sni: sni}
	}
	skip := func(mx int, err error) hostWant { return hostWant{mx: mx, outcome: sender.OutcomeSkipped, err: err} }
	one := func(name string, level sender.Level, mta bool, mx int, want hostWant) matrixCase {
		status := sender.Delivered
		if want.outcome != sender.OutcomeDelivered {
			status = sender.Deferred
		}
		rcpt := "user@A"
		if mx == 7 {
			rcpt = "user@B"
		}
		return matrixCase{name: fmt.Sprintf("%s/mx%d", name, mx), level: level, mtaSTS: mta, rcpt: rcpt, only: []int{mx}, status: status, hosts: []hostWant{want}}
	}

	var cases []matrixCase
	// One host at a time: the columns 3..7 of DESIGN.md §2.
	for _, mx := range []int{3, 4, 5, 6, 7} {
		cases = append(cases,
			one("none", sender.LevelNone, false, mx, del(mx, false, false)),
			one("may", sender.LevelMay, false, mx, del(mx, true, false)),
			one("encrypt", sender.LevelEncrypt, false, mx, del(mx, true, false)),
		)
	}
	cases = append(cases,
		one("verify", sender.LevelVerify, false, 3, refuse(3, sender.ErrCertificate, true, false)),
		one("verify", sender.LevelVerify, false, 4, refuse(4, sender.ErrCertificate, true, false)),
		one("verify", sender.LevelVerify, false, 5, del(5, true, false)),
		one("verify", sender.LevelVerify, false, 6, del(6, true, false)),
		one("verify", sender.LevelVerify, false, 7, del(7, true, false)),

		one("dane", sender.LevelDANE, false, 3, refuse(3, sender.ErrDANE, true, true)),
		one("dane", sender.LevelDANE, false, 4, del(4, true, true)),
		one("dane", sender.LevelDANE, false, 5, refuse(5, sender.ErrDANE, true, true)),
		one("dane", sender.LevelDANE, false, 6, del(6, true, true)),
		one("dane", sender.LevelDANE, false, 7, del(7, true, false)), // B: secure, no TLSA → may

		one("dane-only", sender.LevelDANEOnly, false, 3, refuse(3, sender.ErrDANE, true, true)),
		one("dane-only", sender.LevelDANEOnly, false, 4, del(4, true, true)),
		one("dane-only", sender.LevelDANEOnly, false, 5, refuse(5, sender.ErrDANE, true, true)),
		one("dane-only", sender.LevelDANEOnly, false, 6, del(6, true, true)),
		one("dane-only", sender.LevelDANEOnly, false, 7, skip(7, sender.ErrNoDANE)),

		one("mta-sts", sender.LevelMay, true, 3, skip(3, sender.ErrSTSMismatch)), // never contacted
		one("mta-sts", sender.LevelMay, true, 4, refuse(4, sender.ErrCertificate, true, true)),
		one("mta-sts", sender.LevelMay, true, 5, del(5, true, true)),
		one("mta-sts", sender.LevelMay, true, 6, del(6, true, true)),
		one("mta-sts", sender.LevelMay, true, 7, del(7, true, false)), // B has no policy: may

		// RFC 8461 §2: with usable TLSA, DANE decides; MTA-STS cannot
		// rescue mx5 (CA-signed, wrong TLSA).
		one("dane+mta-sts", sender.LevelDANE, true, 3, refuse(3, sender.ErrDANE, true, true)),
		one("dane+mta-sts", sender.LevelDANE, true, 4, del(4, true, true)),
		one("dane+mta-sts", sender.LevelDANE, true, 5, refuse(5, sender.ErrDANE, true, true)),
		one("dane+mta-sts", sender.LevelDANE, true, 6, del(6, true, true)),
		one("dane+mta-sts", sender.LevelDANE, true, 7, del(7, true, false)),
	)
	// SNI on request (Postfix smtp_tls_servername = hostname).
	sni := one("may+SendSNI", sender.LevelMay, false, 3, del(3, true, true))
	sni.sendSNI = true
	cases = append(cases, sni)

	// Persona 1: inside the downgrade window STARTTLS is not offered.
	// The window server answers 451 at the end of DATA (the test is not
	// settled), so "delivers in plaintext" shows as a deferral after DATA.
	for _, lv := range []sender.Level{sender.LevelEncrypt, sender.LevelVerify, sender.LevelDANE, sender.LevelDANEOnly} {
		cases = append(cases, matrixCase{name: string(lv) + "/persona1", level: lv, window: true, rcpt: "test@A", only: []int{4},
			status: sender.Deferred, err: sender.ErrTLSRequired, hosts: []hostWant{refuse(4, sender.ErrTLSRequired, false, false)}})
	}
	cases = append(cases, matrixCase{name: "mta-sts/persona1", level: sender.LevelMay, mtaSTS: true, window: true, rcpt: "test@A", only: []int{5},
		status: sender.Deferred, err: sender.ErrTLSRequired, hosts: []hostWant{refuse(5, sender.ErrTLSRequired, false, false)}})
	for _, lv := range []sender.Level{sender.LevelNone, sender.LevelMay} {
		cases = append(cases, matrixCase{name: string(lv) + "/persona1", level: lv, window: true, rcpt: "test@A", only: []int{4},
			status: sender.Deferred, err: sender.ErrTemporary, hosts: []hostWant{refuse(4, sender.ErrTemporary, false, false)}})
	}

	// Walking the MX list (lab-recipes §7).
	cases = append(cases,
		matrixCase{name: "verify stops after two sessions", level: sender.LevelVerify, rcpt: "user@A", only: []int{3, 4, 5, 6},
			status: sender.Deferred, err: sender.ErrLimit,
			hosts: []hostWant{refuse(3, sender.ErrCertificate, true, false), refuse(4, sender.ErrCertificate, true, false)}},
		matrixCase{name: "verify with three sessions reaches mx5", level: sender.LevelVerify, rcpt: "user@A", only: []int{3, 4, 5, 6},
			tweak: func(o *sender.Options) { o.MaxSessions = 3 }, status: sender.Delivered,
			hosts: []hostWant{refuse(3, sender.ErrCertificate, true, false), refuse(4, sender.ErrCertificate, true, false), del(5, true, false)}},
		matrixCase{name: "mta-sts skips mx3, refuses mx4, delivers to mx5", level: sender.LevelMay, mtaSTS: true, rcpt: "user@A", only: []int{3, 4, 5},
			status: sender.Delivered,
			hosts:  []hostWant{skip(3, sender.ErrSTSMismatch), refuse(4, sender.ErrCertificate, true, true), del(5, true, true)}},
		matrixCase{name: "dane+mta-sts refuses mx5, delivers to mx6", level: sender.LevelDANE, mtaSTS: true, rcpt: "user@A", only: []int{5, 6},
			status: sender.Delivered, hosts: []hostWant{refuse(5, sender.ErrDANE, true, true), del(6, true, true)}},
		matrixCase{name: "address limit", level: sender.LevelDANE, rcpt: "user@A", only: []int{3, 5, 4},
			tweak: func(o *sender.Options) { o.MaxAddresses = 1 }, status: sender.Deferred, err: sender.ErrLimit,
			hosts: []hostWant{refuse(3, sender.ErrDANE, true, true)}},
		matrixCase{name: "dane-only defers zone B", level: sender.LevelDANEOnly, rcpt: "user@B",
			status: sender.Deferred, err: sender.ErrNoMX, hosts: []hostWant{skip(7, sender.ErrNoDANE)}},
		matrixCase{name: "5xx on RCPT bounces", level: sender.LevelMay, window: true, rcpt: "nobody@A", only: []int{4, 6},
			status: sender.Bounced, err: sender.ErrPermanent, hosts: []hostWant{{mx: 4, outcome: sender.OutcomeBounced, err: sender.ErrPermanent}}},
	)

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := l.newSender(t, tc.level, tc.window, func(o *sender.Options) {
				o.MTASTS, o.SendSNI = tc.mtaSTS, tc.sendSNI
				if tc.tweak != nil {
					tc.tweak(o)
				}
			})
			local, zone, _ := strings.Cut(tc.rcpt, "@")
			domain := l.zoneA
			if zone == "B" {
				domain = l.zoneB
			}
			var only []string
			for _, n := range tc.only {
				only = append(only, l.mx(n))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res := s.Attempt(ctx, l.message(local+"@"+domain, only...))
			checkResult(t, l, s, tc, res)
		})
	}
}

func checkResult(t *testing.T, l *lab, s *labSender, tc matrixCase, res sender.Result) {
	t.Helper()
	defer func() {
		if t.Failed() {
			sender.DumpResult(t, res)
		}
	}()
	if res.Status != tc.status {
		t.Errorf("status %v, want %v: %s", res.Status, tc.status, res.Reason)
	}
	if tc.err != nil && !errors.Is(res.Err, tc.err) {
		t.Errorf("error %v, want %v", res.Err, tc.err)
	}
	if res.Status == sender.Delivered && res.Err != nil {
		t.Errorf("delivered with error %v", res.Err)
	}
	if len(res.Hosts) != len(tc.hosts) {
		t.Fatalf("%d hosts in the transcript, want %d", len(res.Hosts), len(tc.hosts))
	}
	var contacted []netip.Addr
	for i, want := range tc.hosts {
		h := res.Hosts[i]
		name := l.mx(want.mx)
		if h.MX != name || h.Outcome != want.outcome {
			t.Errorf("host %d: %s %s, want %s %s (%s)", i, h.MX, h.Outcome, name, want.outcome, h.Reply)
		}
		if want.err != nil && !errors.Is(h.Err, want.err) {
			t.Errorf("host %d (%s): error %v, want %v", i, h.MX, h.Err, want.err)
		}
		if want.err == nil && h.Err != nil {
			t.Errorf("host %d (%s): unexpected error %v", i, h.MX, h.Err)
		}
		if h.TLS != want.tls {
			t.Errorf("host %d (%s): TLS %v, want %v", i, h.MX, h.TLS, want.tls)
		}
		if (h.SNI == name) != want.sni || (!want.sni && h.SNI != "") {
			t.Errorf("host %d (%s): SNI %q, want sent=%v", i, h.MX, h.SNI, want.sni)
		}
		if want.outcome == sender.OutcomeSkipped {
			if h.Addr.IsValid() || h.Greeting != 0 {
				t.Errorf("host %d (%s): skipped but contacted %v", i, h.MX, h.Addr)
			}
			continue
		}
		contacted = append(contacted, hostAddr[fmt.Sprintf("mx%d", want.mx)])
		if h.Greeting != 220 {
			t.Errorf("host %d (%s): greeting %d", i, h.MX, h.Greeting)
		}
		if h.TLS && (!strings.HasPrefix(h.TLSVersion, "TLS 1.") || !h.STARTTLSOffered) {
			t.Errorf("host %d (%s): TLS %q, offered %v", i, h.MX, h.TLSVersion, h.STARTTLSOffered)
		}
		if tc.level == sender.LevelNone && !tc.mtaSTS && h.TLS {
			t.Errorf("level none started TLS with %s", h.MX)
		}
	}
	// The sender connected exactly to the hosts of the transcript: a
	// skipped host was never contacted.
	if got := s.dialed(); !slices.Equal(got, contacted) {
		t.Errorf("dialed %v, want %v", got, contacted)
	}
	// The receiving side saw the same: persona by address, TLS, SNI.
	servers := l.accept
	if tc.window {
		servers = l.window
	}
	conns := servers.connections(t, s.local)
	if len(conns) != len(contacted) {
		t.Fatalf("persona server recorded %d connections, want %d", len(conns), len(contacted))
	}
	for i, c := range conns {
		h := res.Hosts[len(res.Hosts)-len(conns)+i]
		if !h.Addr.IsValid() {
			continue
		}
		wantTLS := h.TLS
		if (c.TLSVersion != "") != wantTLS {
			t.Errorf("connection %d (%s): server saw TLS %q, sender says %v", i, h.MX, c.TLSVersion, wantTLS)
		}
		if c.SNI != h.SNI {
			t.Errorf("connection %d (%s): server saw SNI %q, sender sent %q", i, h.MX, c.SNI, h.SNI)
		}
		if c.STARTTLSOffered != h.STARTTLSOffered {
			t.Errorf("connection %d (%s): STARTTLS offered %v vs %v", i, h.MX, c.STARTTLSOffered, h.STARTTLSOffered)
		}
		if h.Outcome == sender.OutcomeDelivered && !strings.HasPrefix(c.Reply, "250") {
			t.Errorf("connection %d (%s): delivered, but the server's reply was %q", i, h.MX, c.Reply)
		}
	}
}

// TestDANEWalksNaturalMXOrder: with the zone's own MX order (whatever the
// rotation step), a dane sender delivers within two sessions, to mx4 or
// mx6, and every host before refuses by DANE.
func TestDANEWalksNaturalMXOrder(t *testing.T) {
	l := startLab(t, labOptions{signB: true})
	s := l.newSender(t, sender.LevelDANE, false, nil)
	res := s.Attempt(context.Background(), l.message("user@"+l.zoneA))
	if res.Status != sender.Delivered || !res.MX.Secure || len(res.MX.Hosts) != 4 {
		sender.DumpResult(t, res)
		t.Fatalf("status %v, MX %+v", res.Status, res.MX)
	}
	last := res.Hosts[len(res.Hosts)-1]
	if last.MX != l.mx(4) && last.MX != l.mx(6) || !last.DANE.OK {
		t.Fatalf("delivered to %s (DANE %s)", last.MX, last.DANE)
	}
	for _, h := range res.Hosts[:len(res.Hosts)-1] {
		if h.MX != l.mx(3) && h.MX != l.mx(5) || !errors.Is(h.Err, sender.ErrDANE) {
			sender.DumpResult(t, res)
			t.Fatalf("host %s before the delivery: %v", h.MX, h.Err)
		}
	}
	if res.Sessions > 2 {
		t.Fatalf("%d sessions", res.Sessions)
	}
}

// TestImplicitMXAndBounce: a name without MX records is its own MX (RFC
// 5321 §5.1) — here mx4 itself, DANE-verified — and the personas refuse
// a domain they do not serve with 550: a bounce, no further host.
func TestImplicitMXAndBounce(t *testing.T) {
	l := startLab(t, labOptions{signB: true})
	s := l.newSender(t, sender.LevelDANE, false, nil)
	res := s.Attempt(context.Background(), l.message("user@"+l.mx(4)))
	if res.Status != sender.Bounced || !res.MX.Implicit || !res.MX.Secure || len(res.Hosts) != 1 {
		sender.DumpResult(t, res)
		t.Fatalf("status %v, MX %+v", res.Status, res.MX)
	}
	h := res.Hosts[0]
	if h.Outcome != sender.OutcomeBounced || !h.DANE.OK || !strings.HasPrefix(h.Reply, "550") || !errors.Is(res.Err, sender.ErrPermanent) {
		sender.DumpResult(t, res)
		t.Fatalf("host %+v", h)
	}
	if r := res.Recipients[0]; r.Status != sender.Bounced || r.Host != l.mx(4) {
		t.Fatalf("recipient %+v", r)
	}

	res = s.Attempt(context.Background(), l.message("user@nonexistent."+l.zoneA))
	if res.Status != sender.Bounced || !errors.Is(res.Err, sender.ErrNoSuchDomain) || len(res.Hosts) != 0 {
		sender.DumpResult(t, res)
		t.Fatalf("NXDOMAIN: status %v, err %v", res.Status, res.Err)
	}
}

// TestInsecureZoneB: with zone B unsigned, its MX is insecure; dane falls
// back to may (RFC 7672 §2.2), dane-only defers.
func TestInsecureZoneB(t *testing.T) {
	l := startLab(t, labOptions{signB: false})
	dane := l.newSender(t, sender.LevelDANE, false, nil)
	res := dane.Attempt(context.Background(), l.message("user@"+l.zoneB))
	if res.Status != sender.Delivered || res.MX.Secure || len(res.Hosts) != 1 || res.Hosts[0].Policy != "may (dane)" ||
		!res.Hosts[0].TLS || res.Hosts[0].SNI != "" || !strings.Contains(res.Hosts[0].PolicyReason, "MX RRset is not DNSSEC-secure") {
		sender.DumpResult(t, res)
		t.Fatal("dane on an insecure zone: want may")
	}
	only := l.newSender(t, sender.LevelDANEOnly, false, nil)
	res = only.Attempt(context.Background(), l.message("user@"+l.zoneB))
	if res.Status != sender.Deferred || !errors.Is(res.Err, sender.ErrNoDANE) || len(only.dialed()) != 0 {
		sender.DumpResult(t, res)
		t.Fatal("dane-only on an insecure zone: want deferred without a connection")
	}
	// Zone A stays secure.
	res = dane.Attempt(context.Background(), l.message("user@"+l.zoneA, l.mx(4)))
	if res.Status != sender.Delivered || !res.Hosts[0].DANE.OK {
		sender.DumpResult(t, res)
		t.Fatal("zone A must still be DANE-verified")
	}
}

// TestMTASTSFetchAndCache: the policy is fetched once over HTTPS (the
// policy host records it) and then taken from the cache while the record's
// id stays the same (RFC 8461 §5.1).
func TestMTASTSFetchAndCache(t *testing.T) {
	l := startLab(t, labOptions{signB: true})
	s := l.newSender(t, sender.LevelMay, false, func(o *sender.Options) { o.MTASTS = true })
	for i, want := range []string{"fetched", "cache"} {
		res := s.Attempt(context.Background(), l.message("user@"+l.zoneA, l.mx(6)))
		if res.Status != sender.Delivered || res.STS == nil || res.STS.Source != want || res.STS.Mode != "enforce" ||
			len(res.STS.MX) != 3 || !res.Hosts[0].STS.OK {
			sender.DumpResult(t, res)
			t.Fatalf("attempt %d: STS %+v, want source %s", i, res.STS, want)
		}
	}
	fetches, err := l.policyStore.PolicyFetches(context.Background(), time.Time{}, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(fetches) != 1 || fetches[0].Status != 200 || fetches[0].SNI != "mta-sts."+l.zoneA || fetches[0].Client.Addr() != s.local {
		t.Fatalf("policy host saw %+v, want one fetch from %s with SNI", fetches, s.local)
	}
	// Zone B has no record: no policy, no fetch.
	res := s.Attempt(context.Background(), l.message("user@"+l.zoneB))
	if res.Status != sender.Delivered || res.STS.Source != "none" || !strings.Contains(res.STS.Error, "no MTA-STS record") {
		sender.DumpResult(t, res)
		t.Fatalf("zone B: STS %+v", res.STS)
	}
}

// TestMTASTSTesting: in mode testing the sender delivers to hosts that
// fail the policy and reports the failure.
func TestMTASTSTesting(t *testing.T) {
	l := startLab(t, labOptions{signB: true, policy: "version: STSv1\r\nmode: testing\r\nmx: mx4.a.mailtest.example\r\nmx: mx5.a.mailtest.example\r\nmx: mx6.a.mailtest.example\r\nmax_age: 600\r\n"})
	s := l.newSender(t, sender.LevelMay, false, func(o *sender.Options) { o.MTASTS = true })
	for _, tc := range []struct {
		mx     int
		stsOK  bool
		detail string
	}{
		{3, false, "not in the policy"},
		{4, false, "not PKIX-valid"},
		{5, true, "certificate valid"},
	} {
		res := s.Attempt(context.Background(), l.message("user@"+l.zoneA, l.mx(tc.mx)))
		h := res.Hosts[0]
		if res.Status != sender.Delivered || res.STS.Mode != string(mtasts.ModeTesting) || !h.STS.Checked || h.STS.OK != tc.stsOK ||
			!strings.Contains(h.STS.Detail, tc.detail) || h.SNI != l.mx(tc.mx) || !strings.Contains(h.Policy, "mta-sts testing") {
			sender.DumpResult(t, res)
			t.Fatalf("mx%d: status %v, STS verdict %s", tc.mx, res.Status, h.STS)
		}
	}
}
