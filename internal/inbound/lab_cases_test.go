package inbound_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"net/smtp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/inbound"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/store"
)

// labCase is one domain of the lab with what its check must show.
type labCase struct {
	domain string
	colour colour.Colour
	want   []string // finding codes that must be present
	absent []string // codes that must not be
	check  func(t *testing.T, r *checkreport.Report)
	tweak  func(o *inbound.Options)
}

func TestCheckLab(t *testing.T) {
	l := startLab(t)
	mx := func(n string) string { return n + "." + labZoneA }
	cases := []labCase{
		{domain: labZoneA, colour: colour.Grey, // mx3 and mx5: wrong TLSA
			want: []string{checkreport.CodeMXPresent, checkreport.CodeDNSSECMXSecure, checkreport.CodeDNSSECAddressSecure, checkreport.CodeDNSSECTLSASecure, checkreport.CodeSTARTTLSOffered,
				checkreport.CodeDANEValid, checkreport.CodeDANEMismatch, checkreport.CodeCertSelfSigned, checkreport.CodeCertTrusted, checkreport.CodeCertUntrusted, checkreport.CodeDANENoRollover,
				checkreport.CodeMTASTSEnforce, checkreport.CodeMTASTSMXMismatch, checkreport.CodeTLSRPTValid, checkreport.CodeSPFValid, checkreport.CodeNotQualified},
			absent: []string{checkreport.CodeSTARTTLSMissing, checkreport.CodeNotTestable, checkreport.CodeMTASTSFetchFailed, checkreport.CodeDANENotSecure},
			check: func(t *testing.T, r *checkreport.Report) {
				want := map[string]string{mx("mx3"): checkreport.DANEMismatch, mx("mx4"): checkreport.DANEValid, mx("mx5"): checkreport.DANEMismatch, mx("mx6"): checkreport.DANEValid}
				if len(r.MX.Hosts) != 4 {
					t.Fatalf("hosts %+v", r.MX.Hosts)
				}
				for _, h := range r.MX.Hosts {
					if len(h.Addresses) != 1 {
						t.Fatalf("%s: addresses %+v", h.Name, h.Addresses)
					}
					a := h.Addresses[0]
					if a.DANE.State != want[h.Name] {
						t.Errorf("%s: DANE %s (%s), want %s", h.Name, a.DANE.State, a.DANE.Detail, want[h.Name])
					}
					selfSigned := h.Name == mx("mx3") || h.Name == mx("mx4")
					if a.Cert == nil || a.Cert.SelfSigned != selfSigned || a.Cert.PKIXValid == selfSigned || !a.Cert.NameMatch == !selfSigned && !selfSigned {
						t.Errorf("%s: certificate %+v", h.Name, a.Cert)
					}
					if a.TLS == nil || a.TLS.Version != "TLS 1.3" || a.TLS.KeyExchange == "" || a.TLS.Cipher == "" {
						t.Errorf("%s: TLS %+v", h.Name, a.TLS)
					}
					if h.TLSA.DNSSEC != checkreport.Secure || len(h.TLSA.Records) != 1 || h.TLSA.Usable != 1 {
						t.Errorf("%s: TLSA %+v", h.Name, h.TLSA)
					}
					if a.Timings.Connect <= 0 || a.Timings.Handshake <= 0 {
						t.Errorf("%s: timings %+v", h.Name, a.Timings)
					}
				}
				if !slices.Equal(r.MTASTS.UnmatchedMX, []string{mx("mx3")}) {
					t.Errorf("unmatched MX %v", r.MTASTS.UnmatchedMX)
				}
			}},
		{domain: labZoneB, colour: colour.Green,
			want:   []string{checkreport.CodeDNSSECMXSecure, checkreport.CodeDNSSECAddressSecure, checkreport.CodeCertTrusted, checkreport.CodeDANENone, checkreport.CodeQualified, checkreport.CodeMTASTSNone, checkreport.CodeTLSRPTNone},
			absent: []string{checkreport.CodeDANEValid, checkreport.CodeCertNameMismatch}},
		{domain: "good.user.example", colour: colour.Green,
			want: []string{checkreport.CodeDNSSECMXSecure, checkreport.CodeDNSSECAddressSecure, checkreport.CodeDNSSECTLSASecure, checkreport.CodeDANEValid, checkreport.CodeCertTrusted,
				checkreport.CodeQualified, checkreport.CodeMTASTSEnforce, checkreport.CodeMTASTSMXMatch, checkreport.CodeTLSRPTValid, checkreport.CodeSPFValid, checkreport.CodeDMARCValid},
			absent: []string{checkreport.CodeCertUntrusted, checkreport.CodeDANEMismatch, checkreport.CodeMTASTSMXMismatch},
			check: func(t *testing.T, r *checkreport.Report) {
				for _, s := range []string{"Domain does use DNSSEC with MX-Records (good).", "Domain does support RFC 7672 SMTP-DANE (good).",
					"Domain does support qualified transport encryption (good).", "Domain does support RFC 8461 MTA-STS (good)."} {
					if !slices.Contains(r.Sentences, s) {
						t.Errorf("missing sentence %q", s)
					}
				}
				if r.DMARC.Policy != "reject" || r.DMARC.OrgDomain != "" || !slices.Equal(r.TLSRPT.RUA, []string{"mailto:tlsrpt@good.user.example"}) {
					t.Errorf("records %+v %+v", r.DMARC, r.TLSRPT)
				}
			}},
		{domain: "daneee.user.example", colour: colour.Green,
			want: []string{checkreport.CodeDANEValid, checkreport.CodeCertSelfSigned, checkreport.CodeNotQualified, checkreport.CodeMTASTSNone,
				checkreport.CodeDMARCValid, checkreport.CodeDMARCOrgDomain},
			absent: []string{checkreport.CodeQualified, checkreport.CodeDMARCNone},
			check: func(t *testing.T, r *checkreport.Report) {
				// No _dmarc.daneee.user.example: user.example's record
				// applies with its sp= (RFC 7489 §6.6.3, §6.3).
				if r.DMARC.OrgDomain != "user.example" || r.DMARC.Policy != "quarantine" || !r.DMARC.Valid {
					t.Errorf("DMARC %+v", r.DMARC)
				}
				// The personas take any sender (internal/smtpd: TLS 1.0
				// and up, Go's default suites): old versions, no weak
				// suite.
				a := r.MX.Hosts[0].Addresses[0]
				var got []string
				for _, v := range a.TLS.Versions {
					got = append(got, v.Version+" "+v.Result)
				}
				if want := []string{"TLS 1.0 accepted", "TLS 1.1 accepted", "TLS 1.2 accepted", "TLS 1.3 accepted"}; !slices.Equal(got, want) {
					t.Errorf("versions %v, want %v", got, want)
				}
				if a.TLS.WeakProbe != checkreport.ProbeRefused || !r.Has(checkreport.CodeLegacyAccepted) || r.Has(checkreport.CodeCipherWeak) ||
					!slices.Contains(r.Sentences, "Domain does not accept weak cipher suites (good).") {
					t.Errorf("weak probe %q, findings %+v, sentences %q", a.TLS.WeakProbe, r.Findings, r.Sentences)
				}
			}},
		{domain: "multi.user.example", colour: colour.Yellow, // the certificates name the personas, not mx1/mx2
			want: []string{checkreport.CodeSTARTTLSOffered, checkreport.CodeCertNameMismatch},
			check: func(t *testing.T, r *checkreport.Report) {
				var got []string
				for _, h := range r.MX.Hosts {
					for _, a := range h.Addresses {
						got = append(got, h.Name+" "+a.IP+" "+a.Status)
					}
				}
				slices.Sort(got) // the resolver's order of the A records varies
				want := []string{"mx1.multi.user.example 127.0.3.6 ok", "mx1.multi.user.example 127.0.3.7 ok", "mx2.multi.user.example 127.0.3.2 ok"}
				if !slices.Equal(got, want) {
					t.Errorf("tested %q, want every host and address %q", got, want)
				}
				var text strings.Builder
				if err := r.WriteText(&text); err != nil {
					t.Fatal(err)
				}
				for _, ip := range []string{"127.0.3.6", "127.0.3.7", "127.0.3.2"} {
					if !strings.Contains(text.String(), ip) {
						t.Errorf("the text report does not show %s:\n%s", ip, text.String())
					}
				}
			}},
		{domain: "multi.user.example", colour: colour.Yellow,
			tweak: func(o *inbound.Options) { o.MaxHosts, o.MaxAddresses = 1, 1 },
			check: func(t *testing.T, r *checkreport.Report) {
				if len(r.MX.Hosts) != 1 || r.MX.Omitted != 1 || len(r.MX.Hosts[0].Addresses) != 1 || r.MX.Hosts[0].OmittedAddresses != 1 {
					t.Errorf("limits 1/1: hosts %+v, omitted %d", r.MX.Hosts, r.MX.Omitted)
				}
			}},
		{domain: "roll.user.example", colour: colour.Green,
			want: []string{checkreport.CodeDANEValid, checkreport.CodeDANERolloverReady, checkreport.CodeCertNameMismatch}},
		{domain: "pkix.user.example", colour: colour.Yellow,
			want: []string{checkreport.CodeDANEUnusable, checkreport.CodeCertSelfSigned, checkreport.CodeDNSSECTLSASecure}, absent: []string{checkreport.CodeDANEValid, checkreport.CodeDANEMismatch}},
		{domain: "bogus.user.example", colour: colour.Grey,
			want: []string{checkreport.CodeDNSSECMXSecure, checkreport.CodeDNSSECAddressBogus}, absent: []string{checkreport.CodeSTARTTLSMissing, checkreport.CodeSTARTTLSOffered},
			check: func(t *testing.T, r *checkreport.Report) {
				if r.MX.Hosts[0].AddressDNSSEC != checkreport.Bogus {
					t.Errorf("address DNSSEC %s (%s)", r.MX.Hosts[0].AddressDNSSEC, r.MX.Hosts[0].AddressError)
				}
			}},
		{domain: "plain.example", colour: colour.White,
			want:   []string{checkreport.CodeDNSSECMXInsecure, checkreport.CodeDNSSECAddressSecure, checkreport.CodeCertTrusted, checkreport.CodeNotQualified, checkreport.CodeSPFNone},
			absent: []string{checkreport.CodeDNSSECMXSecure, checkreport.CodeQualified}},
		{domain: "selfsigned.plain.example", colour: colour.Yellow,
			want:   []string{checkreport.CodeDNSSECMXInsecure, checkreport.CodeSTARTTLSOffered, checkreport.CodeCertSelfSigned, checkreport.CodeCertUntrusted, checkreport.CodeCertNameMismatch, checkreport.CodeDANENone},
			absent: []string{checkreport.CodeCertTrusted}},
		{domain: "nostarttls.plain.example", colour: colour.Red,
			want:   []string{checkreport.CodeSTARTTLSMissing},
			absent: []string{checkreport.CodeSTARTTLSOffered, checkreport.CodeNotTestable, checkreport.CodeHandshakeFailed}},
		{domain: "null.plain.example", colour: colour.Grey, want: []string{checkreport.CodeMXNull}, absent: []string{checkreport.CodeMXPresent, checkreport.CodeSTARTTLSMissing}},
		{domain: "nomx.plain.example", colour: colour.Yellow, want: []string{checkreport.CodeMXImplicit, checkreport.CodeCertSelfSigned}},
		{domain: "empty.plain.example", colour: colour.Grey, want: []string{checkreport.CodeMXNone}},
		{domain: "missing.plain.example", colour: colour.Grey, want: []string{checkreport.CodeMXNone},
			check: func(t *testing.T, r *checkreport.Report) {
				if !strings.Contains(r.MX.Error, "NXDOMAIN") {
					t.Errorf("MX error %q", r.MX.Error)
				}
			}},
		// The alias is insecure: the certificate must name the MX host
		// itself, and mx7's does not.
		{domain: "cname.plain.example", colour: colour.Yellow, want: []string{checkreport.CodeMXCNAME, checkreport.CodeCertTrusted, checkreport.CodeCertNameMismatch},
			check: func(t *testing.T, r *checkreport.Report) {
				if got := r.MX.Hosts[0].CNAMETarget; got != "mx7."+labZoneB {
					t.Errorf("CNAME target %q", got)
				}
			}},
		{domain: "loop.plain.example", colour: colour.Grey, want: []string{checkreport.CodeUnreachable},
			check: func(t *testing.T, r *checkreport.Report) {
				if !strings.Contains(r.MX.Hosts[0].AddressError, "loop") {
					t.Errorf("address error %q", r.MX.Hosts[0].AddressError)
				}
			}},
		{domain: "tarpit.plain.example", colour: colour.Grey, want: []string{checkreport.CodeNotTestable}, absent: []string{checkreport.CodeSTARTTLSMissing},
			tweak: func(o *inbound.Options) { o.StepTimeout = 500 * time.Millisecond }},
		{domain: "busy.plain.example", colour: colour.Grey, want: []string{checkreport.CodeNotTestable}, absent: []string{checkreport.CodeSTARTTLSMissing},
			check: func(t *testing.T, r *checkreport.Report) {
				if a := r.MX.Hosts[0].Addresses[0]; !strings.HasPrefix(a.Reply, "421") {
					t.Errorf("reply %q", a.Reply)
				}
			}},
		{domain: "brokentls.plain.example", colour: colour.Red, want: []string{checkreport.CodeSTARTTLSOffered, checkreport.CodeHandshakeFailed}},
		{domain: "closed.plain.example", colour: colour.Grey, want: []string{checkreport.CodeUnreachable}, absent: []string{checkreport.CodeNotTestable}},
		{domain: "notsmtp.plain.example", colour: colour.Grey, want: []string{checkreport.CodeNotTestable}, absent: []string{checkreport.CodeSTARTTLSMissing}},
		{domain: "insecuretlsa.plain.example", colour: colour.Yellow, want: []string{checkreport.CodeDANENotSecure, checkreport.CodeDNSSECTLSAInsecure}},
		{domain: "servfail.plain.example", colour: colour.Grey, want: []string{checkreport.CodeUnreachable},
			check: func(t *testing.T, r *checkreport.Report) {
				h := r.MX.Hosts[0]
				if h.AddressDNSSEC != checkreport.Indeterminate || !strings.Contains(h.AddressError, "SERVFAIL") {
					t.Errorf("address %s %q", h.AddressDNSSEC, h.AddressError)
				}
			}},
		{domain: "fail.example", colour: colour.Grey, want: []string{checkreport.CodeMXNone},
			check: func(t *testing.T, r *checkreport.Report) {
				if !strings.Contains(r.MX.Error, "SERVFAIL") {
					t.Errorf("MX error %q", r.MX.Error)
				}
			}},
		{domain: "Bücher.Plain.Example.", colour: colour.White, want: []string{checkreport.CodeCertTrusted},
			check: func(t *testing.T, r *checkreport.Report) {
				if r.Domain != "xn--bcher-kva.plain.example" || r.Input != "Bücher.Plain.Example." {
					t.Errorf("domain %q input %q", r.Domain, r.Input)
				}
			}},
		{domain: "bigtxt.plain.example", colour: colour.White, want: []string{checkreport.CodeSPFTooManyLookups},
			check: func(t *testing.T, r *checkreport.Report) {
				if r.SPF.Lookups != 11 || !strings.HasPrefix(r.SPF.Record, "v=spf1 include:i0.plain.example") {
					t.Errorf("SPF %+v", r.SPF)
				}
			}},
		{domain: "stsbad.plain.example", colour: colour.White, want: []string{checkreport.CodeMTASTSRecordInvalid}},
		{domain: "good.user.example", colour: colour.Grey, want: []string{checkreport.CodePrivateRefused}, absent: []string{checkreport.CodeSTARTTLSOffered},
			tweak: func(o *inbound.Options) { o.AllowPrivate = false },
			check: func(t *testing.T, r *checkreport.Report) {
				for _, d := range l.dialedAddrs() {
					if strings.HasPrefix(d, "127.0.3.6:") || strings.HasPrefix(d, labPolicyU.String()) {
						t.Errorf("dialed %s although private addresses are refused", d)
					}
				}
				if !slices.Equal(r.MTASTS.Policy.RefusedAddresses, []string{labPolicyU.String()}) {
					t.Errorf("policy host refused %v", r.MTASTS.Policy.RefusedAddresses)
				}
			}},
		// network.allow_destinations: the lab's loopback ranges are
		// contacted without AllowPrivate, the same as with it.
		{domain: "good.user.example", colour: colour.Green, want: []string{checkreport.CodeSTARTTLSOffered}, absent: []string{checkreport.CodePrivateRefused},
			tweak: func(o *inbound.Options) {
				o.AllowPrivate = false
				o.AllowDestinations = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
			}},
	}
	for _, tc := range cases {
		name := tc.domain
		if tc.tweak != nil {
			name += "/tweaked"
		}
		t.Run(name, func(t *testing.T) {
			o := l.options()
			if tc.tweak != nil {
				tc.tweak(&o)
				l.mu.Lock()
				l.dialed = nil
				l.mu.Unlock()
			}
			r, err := inbound.Check(context.Background(), tc.domain, o)
			if err != nil {
				t.Fatalf("check: %v", err)
			}
			if r.Colour != tc.colour {
				t.Errorf("colour %s (%s), want %s", r.Colour, r.ColourReason, tc.colour)
			}
			for _, c := range tc.want {
				if !r.Has(c) {
					t.Errorf("missing %s", c)
				}
			}
			for _, c := range tc.absent {
				if r.Has(c) {
					t.Errorf("unexpected %s", c)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Errorf("JSON: %v", err)
			}
			var b strings.Builder
			if err := r.WriteText(&b); err != nil || b.Len() == 0 {
				t.Errorf("text: %v", err)
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("%.3f s\n%s", r.Seconds, b.String())
			}
		})
	}

	t.Run("sender domain of a test", func(t *testing.T) {
		ctx := context.Background()
		now := time.Now().UTC()
		id, err := store.NewTestID()
		if err != nil {
			t.Fatal(err)
		}
		if err := l.window.CreateTest(ctx, store.Test{ID: id, Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen}); err != nil {
			t.Fatal(err)
		}
		c, err := smtp.Dial(l.smtp[netip.MustParseAddr("127.0.3.40")])
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("sender.lab.example"); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("someone@Good.User.Example"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rcpt("t-" + id + "@" + labZoneA); err != nil {
			t.Fatal(err)
		}
		_ = c.Quit()
		var got store.InboundCheck
		for range 300 {
			if got, err = l.window.InboundCheckOfTest(ctx, id); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("no inbound check stored with the test: %v", err)
		}
		var r checkreport.Report
		if err := json.Unmarshal(got.Report, &r); err != nil {
			t.Fatal(err)
		}
		if got.Domain != "good.user.example" || got.Colour != "green" || r.Schema != checkreport.Schema || r.Colour != colour.Green {
			t.Fatalf("stored %s %s: %s %s", got.Domain, got.Colour, r.Schema, r.Colour)
		}
	})
	t.Run("signed zone without trust anchor", func(t *testing.T) {
		// A resolver that lacks user.example's anchor sees the signed zone
		// as insecure: the check says the answers were not validated.
		u := peertest.StartUnbound(t, peertest.UnboundOptions{Stubs: l.stubs, TrustAnchors: l.anchors[:2]})
		o := l.options()
		o.Resolver = u.Addr.String()
		r, err := inbound.Check(context.Background(), "good.user.example", o)
		if err != nil {
			t.Fatal(err)
		}
		if !r.Resolver.ZoneSigned || r.MX.DNSSEC != checkreport.Insecure || !r.Has(checkreport.CodeDNSSECUnvalidated) || r.Has(checkreport.CodeDANEValid) {
			t.Fatalf("signed %v, MX %s, findings %+v", r.Resolver.ZoneSigned, r.MX.DNSSEC, r.Findings)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		o := l.options()
		o.Timeout, o.StepTimeout = time.Second, 10*time.Second
		start := time.Now()
		r, err := inbound.Check(context.Background(), "tarpit.plain.example", o)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		// Bounded: one deadline for everything (plus scheduling slack).
		if took > 3*time.Second {
			t.Errorf("took %s with a 1s deadline", took)
		}
		if !r.Incomplete || !r.Has(checkreport.CodeDeadline) || r.Colour != colour.Grey || r.Has(checkreport.CodeSTARTTLSMissing) {
			t.Errorf("incomplete %v colour %s findings %+v", r.Incomplete, r.Colour, r.Findings)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, in := range []string{"", "a..b", "user@example.org", "192.0.2.1", strings.Repeat("x", 300)} {
			if _, err := inbound.Check(context.Background(), in, l.options()); !errors.Is(err, dnsname.ErrBadDomain) {
				t.Errorf("%q: %v", in, err)
			}
		}
	})
	t.Run("resolver down", func(t *testing.T) {
		o := l.options()
		o.Resolver = peertest.FreeAddr(t).String() // nothing answers there
		o.Timeout = 3 * time.Second
		r, err := inbound.Check(context.Background(), "plain.example", o)
		if !errors.Is(err, inbound.ErrResolver) || r == nil || r.Colour != colour.Grey {
			t.Fatalf("%v, %+v", err, r)
		}
	})
}

// BenchmarkCheck times a whole check of a domain with one MX host on
// loopback (DNS through Unbound, SMTP, STARTTLS, TLS 1.3, DANE, MTA-STS
// fetch, records): go test -run '^$' -bench Check ./internal/inbound.
func BenchmarkCheck(b *testing.B) {
	l := startLab(b)
	o := l.options()
	for b.Loop() {
		r, err := inbound.Check(context.Background(), "good.user.example", o)
		if err != nil || r.Colour != colour.Green {
			b.Fatalf("%v %v", err, r)
		}
	}
}
