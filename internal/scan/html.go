package scan

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"html/template"
	"io"
	"slices"
	"time"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/store"
)

// Categories of the colour chart, in drawing order: the colours of the
// check (DESIGN.md §1), then items without a result.
var categories = []struct{ Key, Name, Fill string }{
	{string(colour.Green), "green: DANE or qualified", "#2e9e44"},
	{string(colour.White), "white: valid certificates", "#ffffff"},
	{string(colour.Yellow), "yellow: untrusted certificates", "#f0c419"},
	{string(colour.Red), "red: no encryption", "#d9342b"},
	{string(colour.Grey), "grey: see comments", "#9a9a9a"},
	{"error", "no result (error)", "#4a4a4a"},
	{"pending", "not checked yet", "#d8d8ff"},
}

// maxLabels bounds the labels the report tells apart; the rest are summed
// as one, so that a list with a label per line cannot blow up the report.
const maxLabels = 200

const otherLabels = "(other labels)"

// labelStats counts the items of one label by category.
type labelStats struct {
	Label  string
	Counts map[string]int64
	Total  int64
}

// aggregate is what the report shows above the table.
type aggregate struct {
	all      labelStats
	labels   map[string]*labelStats
	checked  int64 // items with a result
	features map[string]int64
}

func category(it store.ScanItem) string {
	switch {
	case it.State == store.ScanPending || it.State == store.ScanRunning:
		return "pending"
	case len(it.Result) == 0 && it.Summary.Colour == "":
		return "error"
	}
	for _, c := range categories[:5] {
		if c.Key == it.Summary.Colour {
			return c.Key
		}
	}
	return "error"
}

func (a *aggregate) add(it store.ScanItem) {
	cat := category(it)
	a.all.Counts[cat]++
	a.all.Total++
	l := it.Label
	ls := a.labels[l]
	if ls == nil {
		if len(a.labels) >= maxLabels {
			l = otherLabels
			ls = a.labels[l]
		}
		if ls == nil {
			ls = &labelStats{Label: l, Counts: map[string]int64{}}
			a.labels[l] = ls
		}
	}
	ls.Counts[cat]++
	ls.Total++
	if it.State == store.ScanDone && it.Summary.Colour != "" {
		a.checked++
		s := it.Summary
		for k, v := range map[string]bool{"dnssec": s.DNSSEC, "dane": s.DANE, "mta_sts": s.MTASTS, "valid_cert": s.ValidCert,
			"starttls": s.STARTTLS, "qualified": s.Qualified} {
			if v {
				a.features[k]++
			}
		}
	}
}

// Report data for the template.
type (
	htmlData struct {
		ID, Source, Generated string
		Total, Checked        int64
		Categories            []htmlCategory
		Chart                 htmlChart
		Shares                []htmlShare
		Labels                []string
		Colours               []string
	}
	htmlCategory struct{ Key, Name, Fill string }
	// htmlChart is a stacked bar chart of categories, one bar per label
	// (the scan report) or per scan (the trend).
	htmlChart struct {
		Label  string // its accessible name
		Bars   []htmlBar
		Height int
	}
	htmlBar struct {
		Y, TextY      int
		Label, Counts string
		Segs          []htmlSeg
	}
	htmlSeg struct {
		X, W        float64
		Fill, Title string
	}
	htmlShare struct {
		Name       string
		N          int64
		Pct, Width float64
	}
	htmlRow struct {
		Line                                        int64
		Domain, Label, Cat, Error, Input            string
		Colour                                      colour.Colour
		Qualified, DNSSEC, DANE, MTASTS, Cert, STLS string
	}
)

const (
	chartLeft  = 180.0
	chartWidth = 560.0
	barHeight  = 22
	barGap     = 8
)

func bar(y int, ls *labelStats) htmlBar {
	b := htmlBar{Y: y, TextY: y + 15, Label: ls.Label, Counts: fmt.Sprint(ls.Total)}
	x := chartLeft
	for _, c := range categories {
		n := ls.Counts[c.Key]
		if n == 0 || ls.Total == 0 {
			continue
		}
		w := chartWidth * float64(n) / float64(ls.Total)
		b.Segs = append(b.Segs, htmlSeg{X: x, W: w, Fill: c.Fill,
			Title: fmt.Sprintf("%s — %s: %d of %d (%.1f%%)", ls.Label, c.Name, n, ls.Total, 100*float64(n)/float64(ls.Total))})
		x += w
	}
	return b
}

// chart is one bar per entry of bars, top to bottom.
func chart(label string, bars []*labelStats) htmlChart {
	c := htmlChart{Label: label}
	y := 0
	for i, ls := range bars {
		if i > 0 {
			y += barHeight + barGap
		}
		c.Bars = append(c.Bars, bar(y, ls))
	}
	c.Height = y + barHeight + 4
	return c
}

// WriteHTML writes the scan's report: one static HTML file with no
// external assets — the colour distribution per label as an inline SVG
// bar chart, the shares of domains with DNSSEC, DANE, MTA-STS, valid
// certificates, and a table of every line with a small inline script to
// filter it. Every value from the input or the check is escaped by
// html/template. The store is read twice (aggregates, then rows), so any
// size of scan is streamed.
func WriteHTML(ctx context.Context, st *store.Store, id string, w io.Writer, now time.Time) error {
	sc, err := st.Scan(ctx, id)
	if err != nil {
		return err
	}
	a := &aggregate{all: labelStats{Label: "all", Counts: map[string]int64{}}, labels: map[string]*labelStats{}, features: map[string]int64{}}
	if err := st.EachScanItem(ctx, id, false, func(it store.ScanItem) error { a.add(it); return nil }); err != nil {
		return fmt.Errorf("scan: HTML: %w", err)
	}
	d := htmlData{ID: sc.ID, Source: sc.Source, Generated: now.UTC().Format(time.RFC3339), Total: a.all.Total, Checked: a.checked}
	for _, c := range categories {
		d.Categories = append(d.Categories, htmlCategory(c))
		d.Colours = append(d.Colours, c.Key)
	}
	labels := make([]*labelStats, 0, len(a.labels))
	for _, ls := range a.labels {
		labels = append(labels, ls)
	}
	slices.SortFunc(labels, func(x, y *labelStats) int {
		if (x.Label == otherLabels) != (y.Label == otherLabels) {
			if x.Label == otherLabels {
				return 1
			}
			return -1
		}
		return cmp.Or(cmp.Compare(y.Total, x.Total), cmp.Compare(x.Label, y.Label))
	})
	d.Chart = chart("colour distribution per label", append([]*labelStats{&a.all}, labels...))
	for _, ls := range labels {
		if ls.Label != otherLabels {
			d.Labels = append(d.Labels, ls.Label)
		}
	}
	for _, f := range []struct{ key, name string }{
		{"dnssec", "DNSSEC (MX answer secure)"}, {"dane", "DANE (every MX address matches TLSA)"},
		{"mta_sts", "MTA-STS (valid policy, enforce or testing)"}, {"valid_cert", "valid certificates (PKIX and name)"},
		{"starttls", "STARTTLS on every MX address"}, {"qualified", "qualified transport encryption"},
	} {
		s := htmlShare{Name: f.name, N: a.features[f.key]}
		if a.checked > 0 {
			s.Pct = 100 * float64(s.N) / float64(a.checked)
			s.Width = 3 * s.Pct
		}
		d.Shares = append(d.Shares, s)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := reportTmpl.ExecuteTemplate(bw, "head", d); err != nil {
		return fmt.Errorf("scan: HTML: %w", err)
	}
	yes := func(v *bool) string {
		switch {
		case v == nil:
			return ""
		case *v:
			return "yes"
		}
		return "no"
	}
	err = st.EachScanItem(ctx, id, false, func(it store.ScanItem) error {
		r := newRecord(it)
		return reportTmpl.ExecuteTemplate(bw, "row", htmlRow{Line: r.Line, Domain: r.Domain, Label: r.Label, Colour: r.Colour,
			Cat: category(it), Error: r.Error, Input: r.Input, Qualified: yes(r.Qualified), DNSSEC: yes(r.DNSSEC), DANE: yes(r.DANE),
			MTASTS: yes(r.MTASTS), Cert: yes(r.ValidCert), STLS: yes(r.STARTTLS)})
	})
	if err != nil {
		return fmt.Errorf("scan: HTML: %w", err)
	}
	if err := reportTmpl.ExecuteTemplate(bw, "foot", d); err != nil {
		return fmt.Errorf("scan: HTML: %w", err)
	}
	return bw.Flush()
}

var reportTmpl = template.Must(template.New("report").Parse(`
{{- define "head" -}}
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mailsec scan {{.ID}}</title>
{{template "style"}}
</head>
<body>
<h1>Inbound scan {{.ID}}</h1>
<p class="meta">Input {{.Source}} · {{.Total}} lines with a domain · {{.Checked}} domains with a result · generated {{.Generated}} by mailsec</p>
<h2>Colour per label</h2>
{{template "legend" .Categories}}
{{template "chart" .Chart}}
<h2>Shares of the {{.Checked}} domains with a result</h2>
<table>
{{- range .Shares}}
<tr><td>{{.Name}}</td><td>{{.N}}</td><td>{{printf "%.1f" .Pct}}%</td><td><span class="share" style="width: {{printf "%.0f" .Width}}px"></span></td></tr>
{{- end}}
</table>
<h2>Domains</h2>
<p class="filters">
<label>Search <input id="q" type="search" placeholder="domain, label, error"></label>
<label>Colour <select id="colour"><option value="">all</option>{{range .Categories}}<option value="{{.Key}}">{{.Name}}</option>{{end}}</select></label>
<label>Label <select id="label"><option value="">all</option>{{range .Labels}}<option>{{.}}</option>{{end}}</select></label>
<span id="shown"></span>
</p>
<table id="t">
<thead><tr><th>line</th><th>domain</th><th>label</th><th>colour</th><th>qualified</th><th>DNSSEC</th><th>DANE</th><th>MTA-STS</th><th>valid cert.</th><th>STARTTLS</th><th>error</th></tr></thead>
<tbody>
{{end}}
{{- define "row"}}<tr class="{{.Cat}}" data-label="{{.Label}}"><td>{{.Line}}</td><td>{{if .Domain}}{{.Domain}}{{else}}{{.Input}}{{end}}</td><td>{{.Label}}</td><td class="c">{{.Colour}}</td><td>{{.Qualified}}</td><td>{{.DNSSEC}}</td><td>{{.DANE}}</td><td>{{.MTASTS}}</td><td>{{.Cert}}</td><td>{{.STLS}}</td><td class="err">{{.Error}}</td></tr>
{{end}}
{{- define "style"}}<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.5em; }
.meta { color: #555; }
svg text { font: 12px system-ui, sans-serif; }
.legend span { display: inline-block; margin-right: 1em; }
.legend i { display: inline-block; width: 12px; height: 12px; border: 1px solid #777; margin-right: 4px; vertical-align: -1px; }
table { border-collapse: collapse; margin-top: .5em; }
th, td { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.c { font-weight: 600; }
tr.green td.c { color: #1d7a31; } tr.yellow td.c { color: #9a7a00; } tr.red td.c { color: #b3261e; }
tr.grey td.c, tr.error td.c { color: #555; }
.share { display: inline-block; height: 10px; background: #4a78c2; vertical-align: middle; }
.filters input, .filters select { margin-right: 1em; }
td.err { color: #8a1c1c; max-width: 40em; }
</style>{{end}}
{{- define "legend"}}<p class="legend">{{range .}}<span><i style="background: {{.Fill}}"></i>{{.Name}}</span>{{end}}</p>{{end}}
{{- define "chart"}}<svg xmlns="http://www.w3.org/2000/svg" width="820" height="{{.Height}}" role="img" aria-label="{{.Label}}">
{{- range $b := .Bars}}
<g><text x="0" y="{{$b.TextY}}">{{$b.Label}}</text>
{{- range $b.Segs}}<rect x="{{printf "%.2f" .X}}" y="{{$b.Y}}" width="{{printf "%.2f" .W}}" height="22" fill="{{.Fill}}" stroke="#777" stroke-width="0.5"><title>{{.Title}}</title></rect>{{end}}
<text x="750" y="{{$b.TextY}}">{{$b.Counts}}</text></g>
{{- end}}
</svg>{{end}}
{{- define "foot"}}</tbody>
</table>
<script>
(function () {
  var q = document.getElementById("q"), col = document.getElementById("colour"), lab = document.getElementById("label");
  var rows = document.getElementById("t").tBodies[0].rows, shown = document.getElementById("shown"), timer = 0;
  function apply() {
    var s = q.value.toLowerCase(), c = col.value, l = lab.value, n = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      var ok = (!c || r.className === c) && (!l || r.getAttribute("data-label") === l) &&
        (!s || r.textContent.toLowerCase().indexOf(s) >= 0);
      r.style.display = ok ? "" : "none";
      if (ok) n++;
    }
    shown.textContent = n + " of " + rows.length + " shown";
  }
  function later() { clearTimeout(timer); timer = setTimeout(apply, 150); }
  q.addEventListener("input", later); col.addEventListener("change", apply); lab.addEventListener("change", apply);
  apply();
})();
</script>
</body>
</html>
{{end}}`))
