package report

import (
	"fmt"
	"strings"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// AuthSection is the authentication of the test's latest evaluated mail,
// as mailsec evaluated it when the mail arrived (internal/mailauth):
// every DKIM signature verified, SPF of MAIL FROM and HELO, DMARC, ARC.
// Its JSON is store.Authentication's fields, the connection and the
// lines the report prints.
type AuthSection struct {
	// Connection is the connection that carried the mail.
	Connection int64 `json:"connection"`
	store.Authentication
	// Lines are the results as the report and the result mail write
	// them: "DKIM: pass (d=example.org, s=sel1)", "SPF (MAIL FROM
	// example.org): pass", …
	Lines []string `json:"lines"`
}

// authSection is the section of the latest connection whose mail was
// evaluated, its lines in language l; nil while there is none.
func authSection(l i18n.Lang, conns []store.SMTPConnection) *AuthSection {
	var last *store.SMTPConnection
	for i := range conns {
		c := &conns[i]
		if c.Authentication != nil && (last == nil || !c.Started.Before(last.Started)) {
			last = c
		}
	}
	if last == nil {
		return nil
	}
	a := *last.Authentication
	lines := AuthLines(l, a)
	for i, line := range lines {
		lines[i] = redactText(line)
	}
	return &AuthSection{Connection: last.ID, Authentication: a, Lines: lines}
}

// AuthLines writes an evaluation as lines, one per result, in language l.
// The results themselves (pass, fail, none, …) are RFC 8601's names and
// stay as they are, like the reasons the verifiers give.
func AuthLines(l i18n.Lang, a store.Authentication) []string {
	var lines []string
	if len(a.DKIM) == 0 {
		lines = append(lines, i18n.T(l, "report.auth.dkim-none"))
	}
	for _, s := range a.DKIM {
		if s.Result == "" {
			s.Result = i18n.T(l, "report.auth.not-verified") // s is the loop's copy
		}
		lines = append(lines, "DKIM: "+s.Outcome())
	}
	lines = append(lines,
		spfLine("MAIL FROM", a.SPFMailFrom),
		spfLine("HELO", a.SPFHELO),
		dmarcLine(l, a.DMARC),
		arcLine(l, a.ARC))
	return lines
}

// withReason is line with ": reason" when there is one.
func withReason(line, reason string) string {
	if reason != "" {
		return line + ": " + reason
	}
	return line
}

func spfLine(identity string, c store.SPFCheck) string {
	name := identity
	if c.Domain != "" {
		name += " " + c.Domain
	}
	return withReason(fmt.Sprintf("SPF (%s): %s", name, c.Result), c.Reason)
}

func dmarcLine(l i18n.Lang, d store.DMARCCheck) string {
	var about []string
	if d.FromDomain != "" {
		about = append(about, d.FromDomain)
	}
	if d.Policy != "" {
		about = append(about, "p="+d.Policy)
	}
	line := "DMARC"
	if len(about) > 0 {
		line += " (" + strings.Join(about, ", ") + ")"
	}
	line += ": " + d.Result
	if d.Result == "pass" {
		var by []string
		if d.SPFAligned {
			by = append(by, i18n.T(l, "report.auth.spf-aligned", d.SPFAlignment))
		}
		if d.DKIMAligned {
			by = append(by, i18n.T(l, "report.auth.dkim-aligned", d.DKIMAlignment))
		}
		line += " " + i18n.T(l, "report.auth.by", strings.Join(by, i18n.T(l, "report.auth.and")))
	}
	return withReason(line, d.Reason)
}

func arcLine(l i18n.Lang, a store.ARCCheck) string {
	switch a.Instances {
	case 0:
		return "ARC: none"
	case 1:
		return withReason(i18n.T(l, "report.auth.arc-one", a.Result), a.Reason)
	}
	return withReason(i18n.T(l, "report.auth.arc", a.Result, fmt.Sprint(a.Instances)), a.Reason)
}

// Fact names of the authentication in Report.Facts.
const (
	FactDKIM    = "DKIM"
	FactSPF     = "SPF"
	FactSPFHELO = "SPF HELO"
	FactDMARC   = "DMARC"
	FactARC     = "ARC"
)

// factsOf is Report.Facts: each settled fact of the verdict (its name:
// true or false) and the results of the authentication (FactDKIM …: "pass",
// "fail", "none", …), for tables that compare senders (the lab's
// summary.json).
func factsOf(v verdict.Verdict, a *AuthSection) map[string]any {
	facts := map[string]any{}
	for _, f := range v.Facts {
		if f.Confidence != verdict.Unknown {
			facts[f.Name] = f.Value
		}
	}
	if a == nil {
		return facts
	}
	facts[FactDKIM] = dkimResult(a.DKIM)
	facts[FactSPF] = a.SPFMailFrom.Result
	facts[FactSPFHELO] = a.SPFHELO.Result
	facts[FactDMARC] = a.DMARC.Result
	facts[FactARC] = a.ARC.Result
	return facts
}

// dkimResult sums up a mail's DKIM signatures: "pass" if one verified,
// else the result of the first ("fail", "permerror", …), "none" unsigned.
func dkimResult(sigs []store.Signature) string {
	result := "none"
	for i, s := range sigs {
		switch {
		case s.Result == "pass":
			return "pass"
		case i == 0 && s.Result != "":
			result = s.Result
		case i == 0:
			result = "not verified"
		}
	}
	return result
}
