package matrix

// Labels gives the text of a label key (the Label* constants and the
// column keys' ColumnLabel* keys). A translation is another function of
// the same keys; English is the default. A key it does not know should
// give English(key), never "".
type Labels func(key string) string

// Label keys: every word the picture draws or says to a screen reader.
const (
	LabelMatrixTitle    = "matrix.title"
	LabelMatrixDesc     = "matrix.desc"
	LabelObserved       = "matrix.observed"
	LabelVerdictRow     = "matrix.row.verdict"
	LabelCandidateRow   = "matrix.row.candidate"
	LabelOtherRow       = "matrix.row.other"
	LabelAbsentRow      = "matrix.row.absent"
	LabelFits           = "matrix.fits"
	LabelContradictions = "matrix.contradictions"
	LabelContradicted   = "matrix.contradicted"
	LabelDelivered      = "outcome.delivered"
	LabelRefused        = "outcome.refused"
	LabelBoth           = "outcome.both"
	LabelNotContacted   = "outcome.not_contacted"
	LabelContacted      = "outcome.contacted"
	LabelFetched        = "outcome.fetched"
	LabelOpen           = "outcome.open"
	LabelAttempt        = "attempt"
	LabelAttempts       = "attempts"
	LabelExpectDeliver  = "expect.deliver"
	LabelExpectRefuse   = "expect.refuse"
	LabelExpectNever    = "expect.never"
	LabelExpectNoMail   = "expect.no_mail"
	LabelExpectAny      = "expect.any"
	LabelNotFetched     = "outcome.not_fetched"
	LabelExpectNoFetch  = "expect.no_fetch"
	LabelExpectMayFetch = "expect.may_fetch"
	LabelTimelineTitle  = "timeline.title"
	LabelTimelineDesc   = "timeline.desc"
	LabelTimelineEmpty  = "timeline.empty"
	LabelWindow         = "timeline.window"
	LabelTimeAxis       = "timeline.axis"
	LabelLegend         = "legend"
)

// ColumnLabel is the key of a column's label: part "top" (the host,
// short), "bottom" (the situation, short) or "long" (for titles and the
// text table).
func ColumnLabel(column, part string) string { return "column." + column + "." + part }

// english is the English label set.
var english = map[string]string{
	LabelMatrixTitle:    "Persona matrix: what your server did, and what each policy would do",
	LabelMatrixDesc:     "One column per receiving host; the first row is what your server did, the rows below what a sender of each policy does there.",
	LabelObserved:       "Your server",
	LabelVerdictRow:     "Verdict",
	LabelCandidateRow:   "Still possible",
	LabelOtherRow:       "Ruled out",
	LabelAbsentRow:      "Ruled out by absence",
	LabelFits:           "fits",
	LabelContradictions: "does not fit",
	LabelContradicted:   "contradicted by what your server did",
	LabelDelivered:      "delivered",
	LabelRefused:        "refused",
	LabelBoth:           "delivered and refused",
	LabelNotContacted:   "never contacted",
	LabelContacted:      "contacted",
	LabelFetched:        "fetched",
	LabelOpen:           "open or cut short: says nothing",
	LabelAttempt:        "attempt",
	LabelAttempts:       "attempts",
	LabelExpectDeliver:  "delivers",
	LabelExpectRefuse:   "refuses",
	LabelExpectNever:    "never goes there",
	LabelExpectNoMail:   "never delivers",
	LabelExpectAny:      "either",
	LabelNotFetched:     "not fetched",
	LabelExpectNoFetch:  "never fetches it",
	LabelExpectMayFetch: "fetches it, or has it cached",
	LabelTimelineTitle:  "Timeline of the connections",
	LabelTimelineDesc:   "One mark per connection, by receiving host, on a time axis from the first connection; the downgrade window is shaded.",
	LabelTimelineEmpty:  "No connection yet.",
	LabelWindow:         "downgrade window: STARTTLS withheld",
	LabelTimeAxis:       "time since the first connection",
	LabelLegend:         "✓ delivered  ✗ refused  – never contacted  ≠ contradicted",

	ColumnLabel("1w", "top"): "1", ColumnLabel("1w", "bottom"): "no STARTTLS", ColumnLabel("1w", "long"): "persona 1 (STARTTLS withheld)",
	ColumnLabel("1o", "top"): "1", ColumnLabel("1o", "bottom"): "plain anyway", ColumnLabel("1o", "long"): "persona 1 (STARTTLS offered, not used)",
	ColumnLabel("2", "top"): "2", ColumnLabel("2", "bottom"): "no SNI", ColumnLabel("2", "long"): "persona 2 (self-signed, no SNI)",
	ColumnLabel("3", "top"): "3", ColumnLabel("3", "bottom"): "self-signed", ColumnLabel("3", "long"): "persona 3 (self-signed, TLSA wrong, not in MTA-STS)",
	ColumnLabel("4", "top"): "4", ColumnLabel("4", "bottom"): "DANE only", ColumnLabel("4", "long"): "persona 4 (self-signed, TLSA matches)",
	ColumnLabel("5", "top"): "5", ColumnLabel("5", "bottom"): "CA, TLSA bad", ColumnLabel("5", "long"): "persona 5 (CA-signed, TLSA wrong)",
	ColumnLabel("6", "top"): "6", ColumnLabel("6", "bottom"): "CA + TLSA", ColumnLabel("6", "long"): "persona 6 (CA-signed, TLSA matches)",
	ColumnLabel("7p", "top"): "7 (B)", ColumnLabel("7p", "bottom"): "plain", ColumnLabel("7p", "long"): "persona 7, zone B, in plain text",
	ColumnLabel("7t", "top"): "7 (B)", ColumnLabel("7t", "bottom"): "TLS", ColumnLabel("7t", "long"): "persona 7, zone B, over TLS (no TLSA)",
	ColumnLabel("broken", "top"): "broken", ColumnLabel("broken", "bottom"): "bad DNSSEC", ColumnLabel("broken", "long"): "the host whose DNSSEC signature is broken",
	ColumnLabel("v6", "top"): "IPv6", ColumnLabel("v6", "bottom"): "only", ColumnLabel("v6", "long"): "the host reachable over IPv6 only",
	ColumnLabel("sts", "top"): "MTA-STS", ColumnLabel("sts", "bottom"): "policy fetch", ColumnLabel("sts", "long"): "zone A's MTA-STS policy",
}

// English is the default label set.
func English(key string) string { return labelIn(english, key, key) }

// labelIn is set's label of key, or def.
func labelIn(set map[string]string, key, def string) string {
	if s, ok := set[key]; ok {
		return s
	}
	return def
}

// Keys lists every label key, for a translation's completeness test.
func Keys() []string {
	out := make([]string, 0, len(english))
	for k := range english {
		out = append(out, k)
	}
	return out
}

// Get is l(key), falling back to English for a missing translation.
func (l Labels) Get(key string) string { return l.get(key) }

// get is l(key), falling back to English for a missing translation.
func (l Labels) get(key string) string {
	if l != nil {
		if s := l(key); s != "" {
			return s
		}
	}
	return English(key)
}
