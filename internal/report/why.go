package report

import (
	"slices"
	"strings"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/verdict"
)

// LocalizeWhy is a verdict's reason (verdict.Verdict.Why, or the provider
// table's comment made of it) in language l. The verdict composes it in
// English from many pieces, and keeps it so (the API and stored histories
// read that); here it is cut where verdict joins its pieces — "; " between
// the behaviours, the finding and the eliminations, the arguments of its
// formats, ", " between the columns of what was seen — and each piece is
// read through the catalogue (i18n's whyTexts). Policy names stay as they
// are. A piece without an entry stays English as it is, never half
// translated.
func LocalizeWhy(l i18n.Lang, why string) string {
	if l.Or(i18n.English) == i18n.English {
		return why
	}
	segments := strings.Split(why, "; ")
	for i, s := range segments {
		if de, ok := whyPiece(l, s, whyDepth, nil); ok {
			segments[i] = de
		}
	}
	return strings.Join(segments, "; ")
}

// whyDepth bounds the nesting: the deepest reason is the elimination of an
// inconsistent verdict (the reason, "not %s: %s", "it delivered to %s", a
// column).
const whyDepth = 6

// whyPiece is one piece of a reason in language l; ok is false when it (or
// one of its arguments) has no entry, and then it is returned as it is.
// used, unless nil, collects the English texts and formats read (the
// test's coverage of the catalogue).
func whyPiece(l i18n.Lang, s string, depth int, used map[string]bool) (string, bool) {
	if i18n.Has("text." + s) {
		if used != nil {
			used[s] = true
		}
		return i18n.Text(l, s), true
	}
	if depth == 0 {
		return s, false
	}
	for _, m := range i18n.WhyFormats(s) {
		args := make([]any, len(m.Args))
		ok := true
		for i, a := range m.Args {
			var argOK bool
			if args[i], argOK = whyArg(l, a, depth-1, used); !argOK {
				ok = false
				break
			}
		}
		if ok {
			if used != nil {
				used[strings.TrimPrefix(m.Key, "text.")] = true
			}
			return i18n.T(l, m.Key, args...), true
		}
	}
	return s, false
}

// whyArg is an argument of a reason's format: a piece, a list of names
// (policies: kept), or the list of what was seen ("column: word, …").
func whyArg(l i18n.Lang, a string, depth int, used map[string]bool) (string, bool) {
	if de, ok := whyPiece(l, a, depth, used); ok {
		return de, true
	}
	if isPolicyList(a) {
		return a, true
	}
	return outcomeList(l, a, used)
}

// isPolicyList tells whether s is a policy or a list of policies
// ("dane-only", "dane, dane+mta-sts"): Postfix's names, which stay as
// they are.
func isPolicyList(s string) bool {
	for _, n := range strings.Split(s, ", ") {
		p := verdict.Policy(n)
		if !slices.Contains(verdict.Candidates, p) && p != verdict.PolicyUnknown && p != verdict.PolicyInconsistent {
			return false
		}
	}
	return true
}

// outcomeList reads verdict's outcomes ("persona 2: refused, persona 4:
// delivered, MTA-STS policy fetched"). A column's name may itself hold
// ", " ("persona 1 (STARTTLS offered, not used)"), so an item is the
// shortest run of pieces that reads.
func outcomeList(l i18n.Lang, s string, used map[string]bool) (string, bool) {
	pieces := strings.Split(s, ", ")
	var out []string
	for i := 0; i < len(pieces); {
		found := false
		for j := i + 1; j <= len(pieces) && j <= i+3; j++ {
			if de, ok := outcome(l, strings.Join(pieces[i:j], ", "), used); ok {
				out, i, found = append(out, de), j, true
				break
			}
		}
		if !found {
			return s, false
		}
	}
	return strings.Join(out, ", "), true
}

// outcome is one item of outcomes: a fixed text, or "column: word".
func outcome(l i18n.Lang, item string, used map[string]bool) (string, bool) {
	if i18n.Has("text." + item) {
		if used != nil {
			used[item] = true
		}
		return i18n.Text(l, item), true
	}
	col, word, ok := cutLast(item, ": ")
	if !ok || !i18n.Has("text."+col) || !i18n.Has("text."+word) {
		return item, false
	}
	if used != nil {
		used[col], used[word] = true, true
	}
	return i18n.Text(l, col) + ": " + i18n.Text(l, word), true
}

func cutLast(s, sep string) (before, after string, ok bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// localizeFactWhy is a fact's reason in language l: a fixed text through
// the catalogue (i18n.Text), and a reconciled one with its own reason, the
// policy and the verdict's reason (LocalizeWhy) put back into the
// catalogued sentence. Anything else comes back as i18n.Text gives it.
func localizeFactWhy(l i18n.Lang, why string) string {
	i := strings.Index(why, verdict.ReconciledNote)
	if i < 0 || !strings.HasSuffix(why, ")") {
		return i18n.Text(l, why)
	}
	rest := why[i+len(verdict.ReconciledNote):]
	j := strings.Index(rest, verdict.ReconciledRests)
	if j < 0 {
		return i18n.Text(l, why)
	}
	policy, inner := rest[:j], rest[j+len(verdict.ReconciledRests):len(rest)-1]
	return i18n.T(l, "report.fact.reconciled", i18n.Text(l, why[:i]), policy, LocalizeWhy(l, inner))
}
