package report

import (
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/verdict"
)

// TestSummaries: every policy the verdict can settle on and every named
// behaviour has a summary line of its own in every language, and a
// DANE-only sender that provably skips MTA-STS is told so.
func TestSummaries(t *testing.T) {
	for _, l := range i18n.Supported {
		seen := map[string]verdict.Policy{}
		for _, p := range append(verdict.Candidates, verdict.PolicyInconsistent) {
			s := summary(l, verdict.Verdict{Policy: p}, true)
			if strings.HasPrefix(s, "report.") {
				t.Errorf("%s %s: no summary: %q", l, p, s)
			}
			if q, dup := seen[s]; dup {
				t.Errorf("%s: %s and %s share the summary %q", l, p, q, s)
			}
			seen[s] = p
		}
		for b := range behaviourRatings {
			v := verdict.Verdict{Policy: verdict.PolicyMay, Behaviours: []verdict.Behaviour{{Name: b}}}
			if s := summary(l, v, true); strings.HasPrefix(s, "report.") || s == summary(l, verdict.Verdict{Policy: verdict.PolicyMay}, true) {
				t.Errorf("%s %s: no summary of its own: %q", l, b, s)
			}
		}
	}
	noSTS := verdict.Verdict{Policy: verdict.PolicyDANEOnly, Facts: []verdict.Fact{{Name: verdict.FactAppliesMTASTS, Confidence: verdict.Likely}}}
	if got, want := summary(i18n.English, noSTS, true), "Your server insists on encryption and checks certificates with DANE. It does not use MTA-STS."; got != want {
		t.Errorf("dane-only without MTA-STS: %q, want %q", got, want)
	}
	noSTS.Facts[0].Confidence = verdict.Unknown
	if got := summary(i18n.English, noSTS, true); strings.Contains(got, "MTA-STS") {
		t.Errorf("MTA-STS unknown, yet the summary says %q", got)
	}
	if got := summary(i18n.German, noSTS, false); !strings.HasPrefix(got, "Bisher: ") {
		t.Errorf("not final: %q", got)
	}
}

// TestNoContradictions: under a final verdict, no fact reads against it.
// A sender that never encrypts is not asked whether it validates DANE;
// one whose behaviour shows it refused a certificate is not "still
// unknown whether it validates certificates".
func TestNoContradictions(t *testing.T) {
	for _, g := range goldenCases() {
		r := Build(g.in)
		for _, s := range r.StillOpen {
			switch {
			case r.Policy == string(verdict.PolicyNone) && r.Final && (strings.Contains(s.Text, "validates") || strings.Contains(s.Text, "SNI") || strings.Contains(s.Text, "MTA-STS")):
				t.Errorf("%s: final none, yet %q", g.name, s.Text)
			case checksCertificates(g.in.Verdict) && strings.Contains(s.Text, "whether your mail server validates"):
				t.Errorf("%s: it refused a certificate, yet %q", g.name, s.Text)
			}
		}
	}
}

// TestFindingsGroupedWithEvidenceAndAdvice: every finding is proven,
// likely or unknown; proven ones name their connections; a bad one says
// what to change, with the Postfix settings first.
func TestFindingsGroupedWithEvidenceAndAdvice(t *testing.T) {
	for _, g := range goldenCases() {
		r := Build(g.in)
		if len(r.Proven())+len(r.Likely()) != len(r.Outbound) {
			t.Errorf("%s: %d proven + %d likely of %d findings", g.name, len(r.Proven()), len(r.Likely()), len(r.Outbound))
		}
		for _, s := range r.Outbound {
			if (s.Rating == Bad || s.Rating == VeryBad) && s.Advice == nil && !strings.Contains(s.Text, "retry") {
				t.Errorf("%s: bad finding without advice: %q", g.name, s.Text)
			}
			if s.Advice != nil && (len(s.Advice.Fixes) == 0 || s.Advice.Fixes[0].MTA != "Postfix" || s.Advice.Fixes[0].Setting == "") {
				t.Errorf("%s: advice without Postfix settings: %+v", g.name, s.Advice)
			}
		}
	}
	r := Build(goldenCases()[0].in) // dane-only
	if p := r.Proven(); len(p) == 0 || len(p[0].Evidence) == 0 || p[0].EvidenceText() == "" {
		t.Errorf("dane-only: the first proven finding names no connection: %+v", p)
	}
}

// TestAdviceComplete: every advice has its words and a Postfix setting,
// and every MTA it names says something.
func TestAdviceComplete(t *testing.T) {
	for key := range adviceSettings {
		for _, l := range i18n.Supported {
			a := adviceFor(l, key)
			if a == nil || a.Text == "" || strings.HasPrefix(a.Text, "advice.") {
				t.Errorf("%s %s: %+v", l, key, a)
				continue
			}
			for _, f := range a.Fixes {
				if f.Note == "" && f.Setting == "" {
					t.Errorf("%s %s %s: neither note nor setting", l, key, f.MTA)
				}
			}
		}
		if adviceSettings[key]["postfix"] == "" {
			t.Errorf("%s: no Postfix setting", key)
		}
	}
}

// TestGerman: the German report has no English words of its own (the
// English technical reason is marked as such; the inbound check's
// sentences are English still), and stays as the golden file has it.
func TestGerman(t *testing.T) {
	english := []string{"Outbound diagnosis", "Outbound verdict", "Connection history", "Still unknown", "Proven", "What to change", "Your mail server", "Colours", "(good)", "(bad)"}
	for _, g := range goldenCases() {
		in := g.in
		in.Lang = i18n.German
		r := Build(in)
		if r.Lang != i18n.German {
			t.Errorf("%s: lang %q", g.name, r.Lang)
		}
		text, html := renderBoth(t, r)
		for _, w := range english {
			// The technical reason is the verdict's own, in English.
			for _, out := range []string{text, html} {
				rest := out
				if i := strings.Index(out, "Technische Begründung (englisch)"); i >= 0 {
					j := strings.Index(out[i:], "\n")
					rest = out[:i] + out[i+j:]
				}
				// The inbound check's sentences are its own
				// (internal/inbound/checkreport), in English.
				if i := strings.Index(rest, "Diagnose für eingehende Mail"); i >= 0 {
					rest = rest[:i]
				}
				if strings.Contains(rest, w) {
					t.Errorf("%s: German report says %q", g.name, w)
				}
			}
		}
		if !strings.Contains(html, `<html lang="de">`) {
			t.Errorf("%s: HTML not marked German", g.name)
		}
		if g.name == "dane-only" || g.name == "plain-fallback" {
			checkGolden(t, g.name+".de.txt", text)
		}
	}
}
