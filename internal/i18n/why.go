package i18n

import (
	"regexp"
	"slices"
	"strings"
)

// whyTexts are the pieces internal/verdict composes a verdict's reason
// (Verdict.Why) from, with their German: the fixed texts and the fmt
// formats of verdict.Judge, explain, decideAmong, rowContradiction,
// unproven and outcomes, and the provider table's "not settled: %s".
// The verdict keeps its reason in English (the API and stored histories
// read it); internal/report cuts it at verdict's separators and reads each
// piece here (report.LocalizeWhy). TestGermanWhy in internal/report walks
// many simulated histories and fails on a piece without an entry.
//
// Policy names (dane-only, mta-sts …) are Postfix's and stay as they are.
var whyTexts = []struct{ en, de string }{
	// The reason's forms (verdict.Judge, decideAmong, explain).
	{"it %s", "er %s"},
	{"not %s: %s", "nicht %s: %s"},
	{"no connection seen yet", "noch keine Verbindung gesehen"},
	{"no policy of the table explains the connections: %s", "keine Richtlinie der Tabelle erklärt die Verbindungen: %s"},
	{"may: it sends in plain text where an active attacker can make it, which no stronger policy does (the table's may row has no certificate checks: %s)",
		"may: er sendet im Klartext, wo ein aktiver Angreifer es erzwingen kann, was keine stärkere Richtlinie tut (die Zeile may der Tabelle prüft keine Zertifikate: %s)"},
	{"only %s explains %s", "nur %s erklärt %s"},
	{"%s is the only policy left, but no connection has shown %s yet (%s)",
		"%s ist die einzige verbliebene Richtlinie, aber noch keine Verbindung hat %s gezeigt (%s)"},
	{"the sender stopped before showing %s, which %s claims (%s)",
		"der Absender hat aufgehört, bevor er %s gezeigt hat, was %s beansprucht (%s)"},
	{"DANE behaviour toward A, and its resolver looked up the TLSA record of B's host (B has none, provably) and it did not connect to B",
		"DANE-Verhalten gegenüber Zone A, und sein Resolver hat den TLSA-Eintrag des Servers von Zone B abgefragt (Zone B hat nachweislich keinen), und er hat sich nicht mit Zone B verbunden"},
	{"DANE behaviour toward A, and no delivery to B (no TLSA there) although it had a mail for B",
		"DANE-Verhalten gegenüber Zone A, und keine Zustellung an Zone B (dort kein TLSA-Eintrag), obwohl er eine Mail für Zone B hatte"},
	{"%s behaviour and no fetch of the MTA-STS policy seen (else %s)",
		"Verhalten von %s und kein Abruf der MTA-STS-Richtlinie gesehen (sonst %s)"},
	{"the sender stopped before the test could tell %s apart", "der Absender hat aufgehört, bevor der Test %s unterscheiden konnte"},
	{"still possible: %s", "noch möglich: %s"},
	// Why a policy is eliminated (rowContradiction, contradiction).
	{"it contacted %s", "er hat %s kontaktiert"},
	{"it refused %s", "er hat %s abgelehnt"},
	{"it delivered to %s", "er hat an %s zugestellt"},
	{"it fetched the MTA-STS policy", "er hat die MTA-STS-Richtlinie abgerufen"},
	// What a policy claims that no connection has shown (unproven).
	{"a refusal of plain text", "eine Ablehnung von Klartext"},
	{"a refused self-signed certificate", "ein abgelehntes selbstsigniertes Zertifikat"},
	{"a DANE check (persona 4 accepted for its TLSA record, persona 5 or B's host refused for it)",
		"eine DANE-Prüfung (Server 4 wegen seines TLSA-Eintrags angenommen, Server 5 oder der Server von Zone B deswegen abgelehnt)"},
	{"a DANE check (persona 4 accepted for its TLSA record, or persona 5 refused for it)",
		"eine DANE-Prüfung (Server 4 wegen seines TLSA-Eintrags angenommen oder Server 5 deswegen abgelehnt)"},
	// The columns and what was seen there (outcomes: "column: word, …").
	{"persona 1 (STARTTLS withheld)", "Server 1 (STARTTLS zurückgehalten)"},
	{"persona 1 (STARTTLS offered, not used)", "Server 1 (STARTTLS angeboten, nicht genutzt)"},
	{"persona 2", "Server 2"},
	{"persona 3", "Server 3"},
	{"persona 4", "Server 4"},
	{"persona 5", "Server 5"},
	{"persona 6", "Server 6"},
	{"persona 7 (plain)", "Server 7 (Klartext)"},
	{"persona 7 (TLS)", "Server 7 (TLS)"},
	{"delivered", "zugestellt"},
	{"refused", "abgelehnt"},
	{"delivered and refused", "zugestellt und abgelehnt"},
	{"MTA-STS policy fetched", "MTA-STS-Richtlinie abgerufen"},
	// internal/report: the provider table's comment on an open verdict.
	{"not settled: %s", "nicht entschieden: %s"},
}

// whyFormats are the formats of whyTexts, matched only by WhyFormat: a
// form as open as "it %s" must not catch other packages' texts in
// Formatted.
var whyFormats = compileFormats(whyTexts)

// compileFormats makes each text with arguments ("text." + an English fmt
// format with %s) a pattern that matches the English it formats, the
// longest first (the most specific wins).
func compileFormats(list []struct{ en, de string }) []textFormat {
	var out []textFormat
	for _, t := range list {
		if !strings.Contains(t.en, "%s") {
			continue
		}
		pattern := strings.ReplaceAll(regexp.QuoteMeta(t.en), "%s", "(.+?)")
		out = append(out, textFormat{key: "text." + t.en, re: regexp.MustCompile("^" + pattern + "$")})
	}
	slices.SortStableFunc(out, func(a, b textFormat) int { return len(b.key) - len(a.key) })
	return out
}

// WhyFormats are the catalogued formats a piece of a verdict's reason
// can be made from, most specific first: each with its key (for T) and
// its arguments as they stand in english. A caller tries them in order and
// takes the first whose arguments it can read.
func WhyFormats(english string) []FormatMatch {
	var out []FormatMatch
	for _, f := range whyFormats {
		if m := f.re.FindStringSubmatch(english); m != nil {
			out = append(out, FormatMatch{Key: f.key, Args: m[1:]})
		}
	}
	return out
}

// FormatMatch is a catalogued format an English text matches: its key
// and the arguments it was filled in with.
type FormatMatch struct {
	Key  string
	Args []string
}

// WhyPieces are the English texts and formats of whyTexts, in catalogue
// order: what a test of the verdict's reasons must meet.
func WhyPieces() []string {
	out := make([]string, len(whyTexts))
	for i, t := range whyTexts {
		out[i] = t.en
	}
	return out
}
