package inbound

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/peertest"
)

// labCase is one domain of the lab with what its check must show.
type labCase struct {
	domain string
	colour Colour
	want   []string // finding codes that must be present
	absent []string // codes that must not be
	check  func(t *testing.T, r *Report)
	tweak  func(o *Options)
}

func TestCheckLab(t *testing.T) {
	l := startLab(t)
	mx := func(n string) string { return n + "." + labZoneA }
	cases := []labCase{
		{domain: labZoneA, colour: Yellow,
			want: []string{CodeMXPresent, CodeDNSSECMXSecure, CodeDNSSECAddressSecure, CodeDNSSECTLSASecure, CodeSTARTTLSOffered,
				CodeDANEValid, CodeDANEMismatch, CodeCertSelfSigned, CodeCertTrusted, CodeCertUntrusted, CodeDANENoRollover,
				CodeMTASTSEnforce, CodeMTASTSMXMismatch, CodeTLSRPTValid, CodeSPFValid, CodeNotQualified},
			absent: []string{CodeSTARTTLSMissing, CodeNotTestable, CodeMTASTSFetchFailed, CodeDANENotSecure},
			check: func(t *testing.T, r *Report) {
				want := map[string]string{mx("mx3"): DANEMismatch, mx("mx4"): DANEValid, mx("mx5"): DANEMismatch, mx("mx6"): DANEValid}
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
					if h.TLSA.DNSSEC != Secure || len(h.TLSA.Records) != 1 || h.TLSA.Usable != 1 {
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
		{domain: labZoneB, colour: Green,
			want:   []string{CodeDNSSECMXSecure, CodeDNSSECAddressSecure, CodeCertTrusted, CodeDANENone, CodeQualified, CodeMTASTSNone, CodeTLSRPTNone},
			absent: []string{CodeDANEValid, CodeCertNameMismatch}},
		{domain: "good.user.example", colour: Green,
			want: []string{CodeDNSSECMXSecure, CodeDNSSECAddressSecure, CodeDNSSECTLSASecure, CodeDANEValid, CodeCertTrusted,
				CodeQualified, CodeMTASTSEnforce, CodeMTASTSMXMatch, CodeTLSRPTValid, CodeSPFValid, CodeDMARCValid},
			absent: []string{CodeCertUntrusted, CodeDANEMismatch, CodeMTASTSMXMismatch},
			check: func(t *testing.T, r *Report) {
				for _, s := range []string{"Domain does use DNSSEC with MX-Records (good).", "Domain does support RFC 7672 SMTP-DANE (good).",
					"Domain does support qualified transport encryption (good).", "Domain does support RFC 8461 MTA-STS (good)."} {
					if !slices.Contains(r.Sentences, s) {
						t.Errorf("missing sentence %q", s)
					}
				}
				if r.DMARC.Policy != "reject" || !slices.Equal(r.TLSRPT.RUA, []string{"mailto:tlsrpt@good.user.example"}) {
					t.Errorf("records %+v %+v", r.DMARC, r.TLSRPT)
				}
			}},
		{domain: "daneee.user.example", colour: Green,
			want:   []string{CodeDANEValid, CodeCertSelfSigned, CodeNotQualified, CodeMTASTSNone},
			absent: []string{CodeQualified}},
		{domain: "roll.user.example", colour: Green,
			want: []string{CodeDANEValid, CodeDANERolloverReady, CodeCertNameMismatch}},
		{domain: "pkix.user.example", colour: Yellow,
			want: []string{CodeDANEUnusable, CodeCertSelfSigned, CodeDNSSECTLSASecure}, absent: []string{CodeDANEValid, CodeDANEMismatch}},
		{domain: "bogus.user.example", colour: Grey,
			want: []string{CodeDNSSECMXSecure, CodeDNSSECAddressBogus}, absent: []string{CodeSTARTTLSMissing, CodeSTARTTLSOffered},
			check: func(t *testing.T, r *Report) {
				if r.MX.Hosts[0].AddressDNSSEC != Bogus {
					t.Errorf("address DNSSEC %s (%s)", r.MX.Hosts[0].AddressDNSSEC, r.MX.Hosts[0].AddressError)
				}
			}},
		{domain: "plain.example", colour: White,
			want:   []string{CodeDNSSECMXInsecure, CodeDNSSECAddressSecure, CodeCertTrusted, CodeNotQualified, CodeSPFNone},
			absent: []string{CodeDNSSECMXSecure, CodeQualified}},
		{domain: "selfsigned.plain.example", colour: Yellow,
			want:   []string{CodeDNSSECMXInsecure, CodeSTARTTLSOffered, CodeCertSelfSigned, CodeCertUntrusted, CodeCertNameMismatch, CodeDANENone},
			absent: []string{CodeCertTrusted}},
		{domain: "nostarttls.plain.example", colour: Red,
			want:   []string{CodeSTARTTLSMissing},
			absent: []string{CodeSTARTTLSOffered, CodeNotTestable, CodeHandshakeFailed}},
		{domain: "null.plain.example", colour: Grey, want: []string{CodeMXNull}, absent: []string{CodeMXPresent, CodeSTARTTLSMissing}},
		{domain: "nomx.plain.example", colour: Yellow, want: []string{CodeMXImplicit, CodeCertSelfSigned}},
		{domain: "empty.plain.example", colour: Grey, want: []string{CodeMXNone}},
		{domain: "missing.plain.example", colour: Grey, want: []string{CodeMXNone},
			check: func(t *testing.T, r *Report) {
				if !strings.Contains(r.MX.Error, "NXDOMAIN") {
					t.Errorf("MX error %q", r.MX.Error)
				}
			}},
		// The alias is insecure: the certificate must name the MX host
		// itself, and mx7's does not.
		{domain: "cname.plain.example", colour: Yellow, want: []string{CodeMXCNAME, CodeCertTrusted, CodeCertNameMismatch},
			check: func(t *testing.T, r *Report) {
				if got := r.MX.Hosts[0].CNAMETarget; got != "mx7."+labZoneB {
					t.Errorf("CNAME target %q", got)
				}
			}},
		{domain: "loop.plain.example", colour: Grey, want: []string{CodeUnreachable},
			check: func(t *testing.T, r *Report) {
				if !strings.Contains(r.MX.Hosts[0].AddressError, "loop") {
					t.Errorf("address error %q", r.MX.Hosts[0].AddressError)
				}
			}},
		{domain: "tarpit.plain.example", colour: Grey, want: []string{CodeNotTestable}, absent: []string{CodeSTARTTLSMissing},
			tweak: func(o *Options) { o.StepTimeout = 500 * time.Millisecond }},
		{domain: "busy.plain.example", colour: Grey, want: []string{CodeNotTestable}, absent: []string{CodeSTARTTLSMissing},
			check: func(t *testing.T, r *Report) {
				if a := r.MX.Hosts[0].Addresses[0]; !strings.HasPrefix(a.Reply, "421") {
					t.Errorf("reply %q", a.Reply)
				}
			}},
		{domain: "brokentls.plain.example", colour: Red, want: []string{CodeSTARTTLSOffered, CodeHandshakeFailed}},
		{domain: "closed.plain.example", colour: Grey, want: []string{CodeUnreachable}, absent: []string{CodeNotTestable}},
		{domain: "notsmtp.plain.example", colour: Grey, want: []string{CodeNotTestable}, absent: []string{CodeSTARTTLSMissing}},
		{domain: "insecuretlsa.plain.example", colour: Yellow, want: []string{CodeDANENotSecure, CodeDNSSECTLSAInsecure}},
		{domain: "servfail.plain.example", colour: Grey, want: []string{CodeUnreachable},
			check: func(t *testing.T, r *Report) {
				h := r.MX.Hosts[0]
				if h.AddressDNSSEC != Indeterminate || !strings.Contains(h.AddressError, "SERVFAIL") {
					t.Errorf("address %s %q", h.AddressDNSSEC, h.AddressError)
				}
			}},
		{domain: "fail.example", colour: Grey, want: []string{CodeMXNone},
			check: func(t *testing.T, r *Report) {
				if !strings.Contains(r.MX.Error, "SERVFAIL") {
					t.Errorf("MX error %q", r.MX.Error)
				}
			}},
		{domain: "Bücher.Plain.Example.", colour: White, want: []string{CodeCertTrusted},
			check: func(t *testing.T, r *Report) {
				if r.Domain != "xn--bcher-kva.plain.example" || r.Input != "Bücher.Plain.Example." {
					t.Errorf("domain %q input %q", r.Domain, r.Input)
				}
			}},
		{domain: "bigtxt.plain.example", colour: White, want: []string{CodeSPFTooManyLookups},
			check: func(t *testing.T, r *Report) {
				if r.SPF.Lookups != 11 || !strings.HasPrefix(r.SPF.Record, "v=spf1 include:i0.plain.example") {
					t.Errorf("SPF %+v", r.SPF)
				}
			}},
		{domain: "stsbad.plain.example", colour: White, want: []string{CodeMTASTSRecordInvalid}},
		{domain: "good.user.example", colour: Grey, want: []string{CodePrivateRefused}, absent: []string{CodeSTARTTLSOffered},
			tweak: func(o *Options) { o.AllowPrivate = false },
			check: func(t *testing.T, r *Report) {
				for _, d := range l.dialedAddrs() {
					if strings.HasPrefix(d, "127.0.3.6:") || strings.HasPrefix(d, labPolicyU.String()) {
						t.Errorf("dialed %s although private addresses are refused", d)
					}
				}
				if !slices.Equal(r.MTASTS.Policy.RefusedAddresses, []string{labPolicyU.String()}) {
					t.Errorf("policy host refused %v", r.MTASTS.Policy.RefusedAddresses)
				}
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
			r, err := Check(context.Background(), tc.domain, o)
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

	t.Run("deadline", func(t *testing.T) {
		o := l.options()
		o.Timeout, o.StepTimeout = time.Second, 10*time.Second
		start := time.Now()
		r, err := Check(context.Background(), "tarpit.plain.example", o)
		took := time.Since(start)
		if err != nil {
			t.Fatal(err)
		}
		// Bounded: one deadline for everything (plus scheduling slack).
		if took > 3*time.Second {
			t.Errorf("took %s with a 1s deadline", took)
		}
		if !r.Incomplete || !r.Has(CodeDeadline) || r.Colour != Grey || r.Has(CodeSTARTTLSMissing) {
			t.Errorf("incomplete %v colour %s findings %+v", r.Incomplete, r.Colour, r.Findings)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, in := range []string{"", "a..b", "user@example.org", "192.0.2.1", strings.Repeat("x", 300)} {
			if _, err := Check(context.Background(), in, l.options()); !errors.Is(err, ErrBadDomain) {
				t.Errorf("%q: %v", in, err)
			}
		}
	})
	t.Run("resolver down", func(t *testing.T) {
		o := l.options()
		o.Resolver = peertest.FreeAddr(t).String() // nothing answers there
		o.Timeout = 3 * time.Second
		r, err := Check(context.Background(), "plain.example", o)
		if !errors.Is(err, ErrResolver) || r == nil || r.Colour != Grey {
			t.Fatalf("%v, %+v", err, r)
		}
	})
}
