package checkreport

import (
	"slices"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/colour"
)

// versions builds the answers to TLS 1.0 … 1.3 offered alone: results[i]
// for the i-th version.
func versions(results ...string) []VersionProbe {
	names := []string{"TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"}
	out := make([]VersionProbe, len(results))
	for i, res := range results {
		out[i] = VersionProbe{Version: names[i], Result: res}
	}
	return out
}

const (
	acc = ProbeAccepted
	ref = ProbeRefused
	unk = ProbeUnknown
)

// TestTLSVersionsAndWeakCiphers grades what the extra sessions of the
// probe saw: the legacy versions and weak suites accepted, and when the
// report may say "none" (every probe answered). The colour never moves:
// these are findings, not colour rules (docs/inbound.md).
func TestTLSVersionsAndWeakCiphers(t *testing.T) {
	const (
		legacySentence = "Domain does still accept TLS 1.0 or 1.1 (warning)."
		modernSentence = "Domain does not accept TLS 1.0 or 1.1 (good)."
		weakSentence   = "Domain does accept weak cipher suites (bad)."
		strongSentence = "Domain does not accept weak cipher suites (good)."
	)
	tests := []struct {
		name      string
		tls       TLSInfo
		second    *TLSInfo // a second address of the host, if any
		want      []string
		absent    []string
		sentences []string // present
		silent    []string // absent
		inText    string   // in the legacy or weak finding's text
	}{
		{"not probed: nothing said", TLSInfo{Version: "TLS 1.3", Cipher: "TLS_AES_128_GCM_SHA256"}, nil,
			nil, []string{CodeLegacyAccepted, CodeCipherWeak}, nil,
			[]string{legacySentence, modernSentence, weakSentence, strongSentence}, ""},
		{"TLS 1.2 and 1.3 only, no weak suite", TLSInfo{Version: "TLS 1.3", Versions: versions(ref, ref, acc, acc), WeakProbe: ref}, nil,
			nil, []string{CodeLegacyAccepted, CodeCipherWeak, CodeProtocolOld}, []string{modernSentence, strongSentence},
			[]string{legacySentence, weakSentence}, ""},
		{"TLS 1.3 only: no weak-suite session needed", TLSInfo{Version: "TLS 1.3", Versions: versions(ref, ref, ref, acc)}, nil,
			nil, []string{CodeLegacyAccepted, CodeCipherWeak}, []string{modernSentence, strongSentence}, nil, ""},
		{"TLS 1.0 accepted besides 1.3", TLSInfo{Version: "TLS 1.3", Versions: versions(acc, ref, acc, acc), WeakProbe: ref}, nil,
			[]string{CodeLegacyAccepted}, []string{CodeProtocolOld, CodeCipherWeak}, []string{legacySentence, strongSentence},
			[]string{modernSentence}, "accepts TLS 1.0,"},
		{"TLS 1.0 and 1.1", TLSInfo{Version: "TLS 1.2", Versions: versions(acc, acc, acc, ref), WeakProbe: ref}, nil,
			[]string{CodeLegacyAccepted}, nil, []string{legacySentence}, nil, "TLS 1.0 and TLS 1.1"},
		{"a version probe unanswered: no claim of none", TLSInfo{Version: "TLS 1.3", Versions: versions(unk, ref, acc, acc), WeakProbe: ref}, nil,
			nil, []string{CodeLegacyAccepted}, nil, []string{legacySentence, modernSentence, strongSentence}, ""},
		{"weak-suite session unanswered: no claim of none", TLSInfo{Version: "TLS 1.3", Versions: versions(ref, ref, acc, acc), WeakProbe: unk}, nil,
			nil, []string{CodeCipherWeak}, []string{modernSentence}, []string{weakSentence, strongSentence}, ""},
		{"weak-suite session not made though TLS 1.2 accepted: no claim", TLSInfo{Version: "TLS 1.3", Versions: versions(ref, ref, acc, acc)}, nil,
			nil, []string{CodeCipherWeak}, nil, []string{weakSentence, strongSentence}, ""},
		{"3DES accepted", TLSInfo{Version: "TLS 1.2", Versions: versions(ref, ref, acc, ref), WeakProbe: acc,
			WeakCiphers: []WeakCipher{{Version: "TLS 1.2", Cipher: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", Class: "3DES"}}}, nil,
			[]string{CodeCipherWeak}, []string{CodeLegacyAccepted}, []string{weakSentence}, []string{strongSentence},
			"TLS_RSA_WITH_3DES_EDE_CBC_SHA (TLS 1.2, 3DES)"},
		{"negotiated RC4 counts even unprobed", TLSInfo{Version: "TLS 1.0", Cipher: "TLS_RSA_WITH_RC4_128_SHA"}, nil,
			[]string{CodeCipherWeak, CodeLegacyAccepted, CodeProtocolOld}, nil, []string{weakSentence, legacySentence}, nil,
			"TLS_RSA_WITH_RC4_128_SHA (TLS 1.0, RC4)"},
		{"one good and one legacy address: the legacy one decides the sentence",
			TLSInfo{Version: "TLS 1.3", Versions: versions(ref, ref, acc, acc), WeakProbe: ref},
			&TLSInfo{Version: "TLS 1.3", Versions: versions(ref, acc, acc, acc), WeakProbe: ref},
			[]string{CodeLegacyAccepted}, nil, []string{legacySentence, strongSentence}, []string{modernSentence}, "192.0.2.2"},
		{"one probed and one unprobed address: no claim of none",
			TLSInfo{Version: "TLS 1.3", Versions: versions(ref, ref, acc, acc), WeakProbe: ref},
			&TLSInfo{Version: "TLS 1.3"},
			nil, []string{CodeLegacyAccepted}, nil, []string{modernSentence, strongSentence}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := obs(func(r *Report) {
				*addr0(r).TLS = tc.tls
				if tc.second != nil {
					b := goodAddr("192.0.2.2")
					*b.TLS = *tc.second
					host0(r).Addresses = append(host0(r).Addresses, b)
				}
			})
			Evaluate(r)
			if r.Colour != colour.Green {
				t.Errorf("colour %s (%s): versions and suites must not move it", r.Colour, r.ColourReason)
			}
			checkCodes(t, r, tc.want, tc.absent)
			for _, s := range tc.sentences {
				if !slices.Contains(r.Sentences, s) {
					t.Errorf("missing sentence %q in %q", s, r.Sentences)
				}
			}
			for _, s := range tc.silent {
				if slices.Contains(r.Sentences, s) {
					t.Errorf("unexpected sentence %q", s)
				}
			}
			if tc.inText != "" {
				found := false
				for _, f := range r.Findings {
					if (f.Code == CodeLegacyAccepted || f.Code == CodeCipherWeak) && strings.Contains(f.Text+" "+f.Address, tc.inText) {
						found = true
					}
				}
				if !found {
					t.Errorf("no legacy/weak finding mentions %q: %v", tc.inText, r.Findings)
				}
			}
		})
	}
}

func TestWeakSuiteClass(t *testing.T) {
	tests := []struct{ name, class string }{
		{"TLS_RSA_WITH_RC4_128_SHA", "RC4"},
		{"TLS_ECDHE_RSA_WITH_RC4_128_SHA", "RC4"},
		{"TLS_RSA_WITH_3DES_EDE_CBC_SHA", "3DES"},
		{"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA", "3DES"},
		{"TLS_RSA_WITH_NULL_SHA256", "NULL"},
		{"TLS_NULL_WITH_NULL_NULL", "NULL"},
		{"TLS_DH_anon_WITH_AES_128_CBC_SHA", "anonymous"},
		{"TLS_RSA_EXPORT_WITH_RC4_40_MD5", "EXPORT"},
		{"TLS_RSA_WITH_DES_CBC_SHA", "DES"},
		{"TLS_RSA_EXPORT_WITH_RC2_CBC_40_MD5", "EXPORT"},
		{"TLS_RSA_WITH_IDEA_CBC_SHA", "IDEA"},
		{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", ""},
		{"TLS_RSA_WITH_AES_128_GCM_SHA256", ""},
		{"TLS_AES_128_GCM_SHA256", ""},
		{"TLS_CHACHA20_POLY1305_SHA256", ""},
		{"", ""},
	}
	for _, tc := range tests {
		if got := WeakSuiteClass(tc.name); got != tc.class {
			t.Errorf("WeakSuiteClass(%q) = %q, want %q", tc.name, got, tc.class)
		}
	}
}

// TestDMARCOrgDomain: a record found only at the organizational domain
// (RFC 7489 §6.6.3) is valid DMARC for the domain, names where it came
// from, and says so in the sentence.
func TestDMARCOrgDomain(t *testing.T) {
	r := obs(func(r *Report) {
		r.Domain = "sub.example.org"
		r.DMARC = DMARCInfo{Present: true, Valid: true, Policy: "quarantine", Record: "v=DMARC1; p=reject; sp=quarantine", OrgDomain: "example.org"}
	})
	Evaluate(r)
	checkCodes(t, r, []string{CodeDMARCValid, CodeDMARCOrgDomain}, []string{CodeDMARCNone})
	for _, f := range r.Findings {
		if f.Code == CodeDMARCOrgDomain && !strings.Contains(f.Text, "example.org applies") {
			t.Errorf("dmarc.org_domain text %q does not name the organizational domain", f.Text)
		}
		if f.Code == CodeDMARCValid && !strings.Contains(f.Text, "quarantine") {
			t.Errorf("dmarc.valid text %q does not give the policy", f.Text)
		}
	}
	want := "Domain does inherit the DMARC policy quarantine of its organizational domain example.org (good)."
	if !slices.Contains(r.Sentences, want) {
		t.Errorf("missing %q in %q", want, r.Sentences)
	}
	own := obs()
	Evaluate(own)
	if own.Has(CodeDMARCOrgDomain) {
		t.Errorf("dmarc.org_domain for the domain's own record")
	}
	invalid := obs(func(r *Report) {
		r.DMARC = DMARCInfo{Present: true, Error: "bad p", OrgDomain: "example.org"}
	})
	Evaluate(invalid)
	if !invalid.Has(CodeDMARCOrgDomain) || !invalid.Has(CodeDMARCInvalid) || invalid.Has(CodeDMARCValid) {
		t.Errorf("an invalid organizational record: %v", invalid.Findings)
	}
}

// TestTextShowsVersionsAndOmitted: the text report shows the versions an
// address accepted (an unanswered one with "?") and the hosts and
// addresses left out by the limits.
func TestTextShowsVersionsAndOmitted(t *testing.T) {
	r := obs(func(r *Report) {
		addr0(r).TLS.Versions = versions(acc, unk, acc, acc)
		r.MX.Omitted = 3
		host0(r).OmittedAddresses = 2
	})
	Evaluate(r)
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"TLS 1.3 X25519 (accepts 1.0 1.1? 1.2 1.3)", "3 more MX hosts not tested", "mx.example.org: 2 more addresses not tested"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, b.String())
		}
	}
}
