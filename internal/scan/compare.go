package scan

import (
	"cmp"
	"context"
	"fmt"
	"html/template"
	"io"
	"slices"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// This file holds the reports across scans (docs/scan.md "Comparing
// scans"): two scans compared domain by domain, and the colour shares per
// label over several scans.

// Schemas of the JSON documents below; keys are only ever added.
const (
	CompareSchema = "mailsec.scan-compare.v1"
	TrendSchema   = "mailsec.scan-trend.v1"
)

// ScanRef names a scan in a report.
type ScanRef struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Source  string    `json:"source"`
}

func refOf(sc store.Scan) ScanRef { return ScanRef{ID: sc.ID, Created: sc.Created, Source: sc.Source} }

// Comparison is two scans compared: for the domains both have, how many
// changed category (a colour, "error" or "pending": category), by label,
// with each change.
type Comparison struct {
	Schema string  `json:"schema"`
	A      ScanRef `json:"a"`
	B      ScanRef `json:"b"`
	// Compared counts the domains both scans have; Changed those whose
	// category differs; OnlyInA and OnlyInB the domains one scan lacks.
	Compared int64             `json:"compared"`
	Changed  int64             `json:"changed"`
	OnlyInA  int64             `json:"only_in_a"`
	OnlyInB  int64             `json:"only_in_b"`
	Labels   []LabelComparison `json:"labels"`
}

// LabelComparison is the comparison of the domains of one label (the
// label in scan B, the newer reading; at most maxLabels labels, the rest
// summed as "(other labels)").
type LabelComparison struct {
	Label       string         `json:"label"`
	Compared    int64          `json:"compared"`
	Changed     int64          `json:"changed"`
	Transitions []Transition   `json:"transitions"`
	Changes     []DomainChange `json:"changes"`
}

// Transition counts the domains that went from one category to another.
type Transition struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Count int64  `json:"count"`
}

// DomainChange is one domain whose category changed.
type DomainChange struct {
	Domain string `json:"domain"`
	From   string `json:"from"`
	To     string `json:"to"`
}

// categoryOf is category for an item's state and colour alone.
func categoryOf(state, colour string) string {
	return category(store.ScanItem{State: state, Summary: store.ScanSummary{Colour: colour}})
}

// Compare compares scan a with scan b (b is taken as the newer). The
// domains are streamed from the store; the changes are kept, so memory
// grows with the number of changed domains only.
func Compare(ctx context.Context, st *store.Store, a, b string) (Comparison, error) {
	sa, err := st.Scan(ctx, a)
	if err != nil {
		return Comparison{}, err
	}
	sb, err := st.Scan(ctx, b)
	if err != nil {
		return Comparison{}, err
	}
	c := Comparison{Schema: CompareSchema, A: refOf(sa), B: refOf(sb)}
	labels := map[string]*LabelComparison{}
	transitions := map[string]map[[2]string]int64{}
	err = st.EachScanPair(ctx, a, b, func(p store.ScanPair) error {
		l := p.LabelB
		lc := labels[l]
		if lc == nil {
			if len(labels) >= maxLabels {
				l = otherLabels
				lc = labels[l]
			}
			if lc == nil {
				lc = &LabelComparison{Label: l, Transitions: []Transition{}, Changes: []DomainChange{}}
				labels[l], transitions[l] = lc, map[[2]string]int64{}
			}
		}
		from, to := categoryOf(p.StateA, p.ColourA), categoryOf(p.StateB, p.ColourB)
		c.Compared++
		lc.Compared++
		if from != to {
			c.Changed++
			lc.Changed++
			transitions[l][[2]string{from, to}]++
			lc.Changes = append(lc.Changes, DomainChange{Domain: p.Domain, From: from, To: to})
		}
		return nil
	})
	if err != nil {
		return Comparison{}, fmt.Errorf("scan: compare %s with %s: %w", a, b, err)
	}
	if c.OnlyInA, err = st.ScanDomainsOnlyIn(ctx, a, b); err != nil {
		return Comparison{}, err
	}
	if c.OnlyInB, err = st.ScanDomainsOnlyIn(ctx, b, a); err != nil {
		return Comparison{}, err
	}
	c.Labels = []LabelComparison{}
	for l, lc := range labels {
		for k, n := range transitions[l] {
			lc.Transitions = append(lc.Transitions, Transition{From: k[0], To: k[1], Count: n})
		}
		slices.SortFunc(lc.Transitions, func(x, y Transition) int {
			return cmp.Or(cmp.Compare(y.Count, x.Count), cmp.Compare(x.From, y.From), cmp.Compare(x.To, y.To))
		})
		slices.SortFunc(lc.Changes, func(x, y DomainChange) int { return cmp.Compare(x.Domain, y.Domain) })
		c.Labels = append(c.Labels, *lc)
	}
	slices.SortFunc(c.Labels, func(x, y LabelComparison) int { return labelOrder(x.Label, y.Label, x.Compared, y.Compared) })
	return c, nil
}

// labelOrder orders labels as the scan report does: the most domains
// first, "(other labels)" last, ties by name.
func labelOrder(x, y string, nx, ny int64) int {
	if (x == otherLabels) != (y == otherLabels) {
		if x == otherLabels {
			return 1
		}
		return -1
	}
	return cmp.Or(cmp.Compare(ny, nx), cmp.Compare(x, y))
}

// Trend is the colour shares over several scans, in the scans' order:
// of all domains of each scan, and per label.
type Trend struct {
	Schema string       `json:"schema"`
	Scans  []ScanRef    `json:"scans"`
	All    []TrendPoint `json:"all"`
	Labels []LabelTrend `json:"labels"`
}

// LabelTrend is one label's counts in each scan.
type LabelTrend struct {
	Label  string       `json:"label"`
	Points []TrendPoint `json:"points"`
}

// TrendPoint is a label's domains in one scan by category, as counts and
// as shares of Total (0 to 1). A label missing from a scan has Total 0.
type TrendPoint struct {
	Scan   string             `json:"scan"`
	Total  int64              `json:"total"`
	Counts map[string]int64   `json:"counts"`
	Shares map[string]float64 `json:"shares"`
}

// MaxTrendScans bounds the scans one trend reads.
const MaxTrendScans = 100

// TrendOf reads the colour shares per label of the scans ids, in the
// order given; without ids, of every stored scan (at most MaxTrendScans,
// the oldest first).
func TrendOf(ctx context.Context, st *store.Store, ids []string) (Trend, error) {
	var scans []store.Scan
	if len(ids) == 0 {
		var err error
		if scans, err = st.Scans(ctx, time.Time{}, MaxTrendScans); err != nil {
			return Trend{}, err
		}
	}
	if len(ids) > MaxTrendScans {
		return Trend{}, fmt.Errorf("scan: trend of %d scans exceeds %d", len(ids), MaxTrendScans)
	}
	for _, id := range ids {
		sc, err := st.Scan(ctx, id)
		if err != nil {
			return Trend{}, err
		}
		scans = append(scans, sc)
	}
	t := Trend{Schema: TrendSchema, Scans: []ScanRef{}, All: []TrendPoint{}, Labels: []LabelTrend{}}
	// counts[label][scan index][category]
	counts := map[string][]map[string]int64{}
	totals := map[string]int64{} // per label over all scans: the order of labels
	all := make([]map[string]int64, len(scans))
	for i := range all {
		all[i] = map[string]int64{}
	}
	add := func(label string, i int, cat string, n int64) {
		if counts[label] == nil {
			counts[label] = make([]map[string]int64, len(scans))
		}
		if counts[label][i] == nil {
			counts[label][i] = map[string]int64{}
		}
		counts[label][i][cat] += n
		totals[label] += n
		all[i][cat] += n
	}
	for i, sc := range scans {
		t.Scans = append(t.Scans, refOf(sc))
		cs, err := st.ScanColourCounts(ctx, sc.ID)
		if err != nil {
			return Trend{}, fmt.Errorf("scan: trend: %w", err)
		}
		for _, c := range cs {
			l := c.Label
			if _, known := counts[l]; !known && len(counts) >= maxLabels {
				l = otherLabels
			}
			add(l, i, categoryOf(c.State, c.Colour), c.N)
		}
	}
	points := func(per []map[string]int64) []TrendPoint {
		ps := []TrendPoint{}
		for i, sc := range scans {
			p := TrendPoint{Scan: sc.ID, Counts: map[string]int64{}, Shares: map[string]float64{}}
			for cat, n := range per[i] {
				p.Counts[cat] = n
				p.Total += n
			}
			for cat, n := range p.Counts {
				p.Shares[cat] = float64(n) / float64(p.Total)
			}
			ps = append(ps, p)
		}
		return ps
	}
	t.All = points(all)
	for l, per := range counts {
		t.Labels = append(t.Labels, LabelTrend{Label: l, Points: points(per)})
	}
	slices.SortFunc(t.Labels, func(x, y LabelTrend) int { return labelOrder(x.Label, y.Label, totals[x.Label], totals[y.Label]) })
	return t, nil
}

// maxChangesShown bounds the changed domains the HTML page lists per
// label (the JSON has them all).
const maxChangesShown = 1000

type compareHTML struct {
	Comparison
	Generated string
	Labels    []compareLabelHTML
}

type compareLabelHTML struct {
	LabelComparison
	Pct    float64
	Shown  []DomainChange
	Hidden int
}

// WriteCompareHTML writes the comparison as one static HTML page: per
// label the domains compared, how many changed category and how
// (transitions), and the changed domains (at most maxChangesShown per
// label; the JSON has them all).
func WriteCompareHTML(w io.Writer, c Comparison, now time.Time) error {
	d := compareHTML{Comparison: c, Generated: now.UTC().Format(time.RFC3339)}
	for _, l := range c.Labels {
		h := compareLabelHTML{LabelComparison: l, Shown: l.Changes}
		if l.Compared > 0 {
			h.Pct = 100 * float64(l.Changed) / float64(l.Compared)
		}
		if len(h.Shown) > maxChangesShown {
			h.Shown, h.Hidden = h.Shown[:maxChangesShown], len(l.Changes)-maxChangesShown
		}
		d.Labels = append(d.Labels, h)
	}
	if err := reportTmpl.ExecuteTemplate(w, "compare", d); err != nil {
		return fmt.Errorf("scan: comparison HTML: %w", err)
	}
	return nil
}

type trendHTML struct {
	Trend
	Generated  string
	Categories []htmlCategory
	Charts     []trendChartHTML
}

type trendChartHTML struct {
	Label string
	Chart htmlChart
	Rows  []trendRowHTML
}

type trendRowHTML struct {
	Scan  ScanRef
	Total int64
	Pcts  []string // per category, in the order of categories
}

// WriteTrendHTML writes the colour shares over the scans as one static
// HTML page: for all domains and per label, a stacked bar per scan (inline
// SVG, the scan report's chart) and the same shares as a table.
func WriteTrendHTML(w io.Writer, t Trend, now time.Time) error {
	d := trendHTML{Trend: t, Generated: now.UTC().Format(time.RFC3339)}
	for _, c := range categories {
		d.Categories = append(d.Categories, htmlCategory(c))
	}
	add := func(label string, points []TrendPoint) {
		tc := trendChartHTML{Label: label}
		var bars []*labelStats
		for i, p := range points {
			ref := t.Scans[i]
			bars = append(bars, &labelStats{Label: ref.Created.UTC().Format("2006-01-02") + " " + ref.ID, Counts: p.Counts, Total: p.Total})
			row := trendRowHTML{Scan: ref, Total: p.Total}
			for _, c := range categories {
				row.Pcts = append(row.Pcts, fmt.Sprintf("%.1f%%", 100*p.Shares[c.Key]))
			}
			tc.Rows = append(tc.Rows, row)
		}
		tc.Chart = chart("colour shares of "+label+" per scan", bars)
		d.Charts = append(d.Charts, tc)
	}
	add("all domains", t.All)
	for _, l := range t.Labels {
		add("label "+l.Label, l.Points)
	}
	if err := reportTmpl.ExecuteTemplate(w, "trend", d); err != nil {
		return fmt.Errorf("scan: trend HTML: %w", err)
	}
	return nil
}

var _ = template.Must(reportTmpl.New("compare").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mailsec scans compared: {{.A.ID}} and {{.B.ID}}</title>
{{template "style"}}
</head>
<body>
<h1>Scans compared: {{.A.ID}} → {{.B.ID}}</h1>
<p class="meta">{{.A.ID}} ({{.A.Source}}, {{.A.Created.UTC.Format "2006-01-02 15:04"}}) and {{.B.ID}} ({{.B.Source}}, {{.B.Created.UTC.Format "2006-01-02 15:04"}})
· {{.Compared}} domains in both, {{.Changed}} changed colour · {{.OnlyInA}} only in {{.A.ID}}, {{.OnlyInB}} only in {{.B.ID}} · generated {{.Generated}} by mailsec</p>
<h2>Per label (the label in {{.B.ID}})</h2>
<table id="labels">
<thead><tr><th>label</th><th>domains in both</th><th>changed</th><th>share changed</th><th>changes</th></tr></thead>
<tbody>
{{- range .Labels}}
<tr><td>{{.Label}}</td><td>{{.Compared}}</td><td>{{.Changed}}</td><td>{{printf "%.1f" .Pct}}%</td><td>{{range $i, $t := .Transitions}}{{if $i}}, {{end}}{{$t.From}} → {{$t.To}}: {{$t.Count}}{{end}}</td></tr>
{{- else}}
<tr><td colspan="5">No domain is in both scans.</td></tr>
{{- end}}
</tbody>
</table>
{{- range .Labels}}{{if .Changes}}
<h2>Changed in label {{.Label}}</h2>
<table class="changes">
<thead><tr><th>domain</th><th>{{$.A.ID}}</th><th>{{$.B.ID}}</th></tr></thead>
<tbody>
{{- range .Shown}}
<tr><td>{{.Domain}}</td><td>{{.From}}</td><td>{{.To}}</td></tr>
{{- end}}
</tbody>
</table>
{{- if .Hidden}}<p>and {{.Hidden}} more (all of them are in the JSON: mailsec scan compare --json).</p>{{end}}
{{- end}}{{end}}
</body>
</html>
`))

var _ = template.Must(reportTmpl.New("trend").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mailsec colour shares over {{len .Scans}} scans</title>
{{template "style"}}
</head>
<body>
<h1>Colour shares over {{len .Scans}} scans</h1>
<p class="meta">{{range $i, $s := .Scans}}{{if $i}}, {{end}}{{$s.ID}} ({{$s.Created.UTC.Format "2006-01-02"}}){{end}} · generated {{.Generated}} by mailsec</p>
{{template "legend" .Categories}}
{{- range .Charts}}
<h2>{{.Label}}</h2>
{{template "chart" .Chart}}
<table>
<thead><tr><th>scan</th><th>domains</th>{{range $.Categories}}<th>{{.Key}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Rows}}
<tr><td>{{.Scan.ID}}</td><td>{{.Total}}</td>{{range .Pcts}}<td>{{.}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table>
{{- end}}
</body>
</html>
`))
