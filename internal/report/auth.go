package report

import (
	"fmt"
	"strings"

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
// evaluated; nil while there is none.
func authSection(conns []store.SMTPConnection) *AuthSection {
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
	lines := AuthLines(a)
	for i, l := range lines {
		lines[i] = redactText(l)
	}
	return &AuthSection{Connection: last.ID, Authentication: a, Lines: lines}
}

// AuthLines writes an evaluation as lines, one per result.
func AuthLines(a store.Authentication) []string {
	var lines []string
	if len(a.DKIM) == 0 {
		lines = append(lines, "DKIM: none (the mail is not signed)")
	}
	for _, s := range a.DKIM {
		lines = append(lines, "DKIM: "+s.Outcome())
	}
	lines = append(lines,
		spfLine("MAIL FROM", a.SPFMailFrom),
		spfLine("HELO", a.SPFHELO),
		dmarcLine(a.DMARC),
		arcLine(a.ARC))
	return lines
}

func spfLine(identity string, c store.SPFCheck) string {
	name := identity
	if c.Domain != "" {
		name += " " + c.Domain
	}
	line := fmt.Sprintf("SPF (%s): %s", name, c.Result)
	if c.Reason != "" {
		line += ": " + c.Reason
	}
	return line
}

func dmarcLine(d store.DMARCCheck) string {
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
			by = append(by, "SPF aligned ("+d.SPFAlignment+")")
		}
		if d.DKIMAligned {
			by = append(by, "DKIM aligned ("+d.DKIMAlignment+")")
		}
		line += " by " + strings.Join(by, " and ")
	}
	if d.Reason != "" {
		line += ": " + d.Reason
	}
	return line
}

func arcLine(a store.ARCCheck) string {
	if a.Instances == 0 {
		return "ARC: none"
	}
	sets := "sets"
	if a.Instances == 1 {
		sets = "set"
	}
	line := fmt.Sprintf("ARC: %s (%d %s)", a.Result, a.Instances, sets)
	if a.Reason != "" {
		line += ": " + a.Reason
	}
	return line
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
