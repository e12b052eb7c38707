package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailsec/mailsec/internal/keyfile"
	"github.com/mailsec/mailsec/internal/scan"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// The reports across stored scans (docs/scan.md "Comparing scans"):
// `mailsec scan compare A B` and `mailsec scan trend [SCAN...]`. They are
// words before FILE on the scan command line, so a list file with one of
// these names is given as ./compare.

// scanReportFlags are the outputs of a report across scans.
type scanReportFlags struct {
	json bool
	html string
}

func parseScanReport(e *env, name, args string, argv []string) (scanReportFlags, []string, error) {
	var f scanReportFlags
	fs := newFlags(e, "scan "+name, args)
	fs.BoolVar(&f.json, "json", false, "print the report as JSON on stdout")
	fs.StringVar(&f.html, "html", "", "also write the report as a static HTML page to `FILE`")
	ids, err := parseArgs(fs, argv)
	return f, ids, err
}

// openScanStore opens the configuration's store for reading scans.
func openScanStore(e *env) (*store.Store, error) {
	cfg, err := e.load()
	if err != nil {
		return nil, err
	}
	return store.OpenDriver(e.ctx, cfg.Store.Driver, cfg.StorePath())
}

// writeReport writes v as JSON (f.json) or as text, and the HTML page
// (f.html).
func (f scanReportFlags) write(e *env, v any, text func(io.Writer), html func(io.Writer) error) error {
	if f.html != "" {
		if err := keyfile.Replace(f.html, 0o644, html); err != nil {
			return err
		}
	}
	if f.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	text(e.stdout)
	return nil
}

// runScanCompare is `mailsec scan compare A B`: per label, how many of the
// domains both scans have changed colour, and which.
func runScanCompare(e *env, args []string) error {
	f, ids, err := parseScanReport(e, "compare", "A B [--json] [--html FILE]", args)
	if err != nil {
		return err
	}
	if len(ids) != 2 {
		return fmt.Errorf("%w: give two scan IDs, the older first (mailsec scan compare A B)", errUsage)
	}
	st, err := openScanStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	c, err := scan.Compare(e.ctx, st, ids[0], ids[1])
	if err != nil {
		return err
	}
	return f.write(e, c, func(w io.Writer) { writeComparisonText(w, c) },
		func(w io.Writer) error { return scan.WriteCompareHTML(w, c, time.Now()) })
}

func writeComparisonText(w io.Writer, c scan.Comparison) {
	fmt.Fprintf(w, "%s → %s: %d domains in both, %d changed colour; %d only in %s, %d only in %s\n",
		c.A.ID, c.B.ID, c.Compared, c.Changed, c.OnlyInA, c.A.ID, c.OnlyInB, c.B.ID)
	for _, l := range c.Labels {
		var ts []string
		for _, t := range l.Transitions {
			ts = append(ts, fmt.Sprintf("%s → %s: %d", t.From, t.To, t.Count))
		}
		fmt.Fprintf(w, "\nlabel %q: %d in both, %d changed", untrusted.Terminal(l.Label), l.Compared, l.Changed)
		if len(ts) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(ts, ", "))
		}
		fmt.Fprintln(w)
		for _, d := range l.Changes {
			fmt.Fprintf(w, "  %s  %s → %s\n", untrusted.Terminal(d.Domain), d.From, d.To)
		}
	}
}

// runScanTrend is `mailsec scan trend [SCAN...]`: the colour shares per
// label over the scans named (default: every stored scan, oldest first).
func runScanTrend(e *env, args []string) error {
	f, ids, err := parseScanReport(e, "trend", "[SCAN...] [--json] [--html FILE]", args)
	if err != nil {
		return err
	}
	if len(ids) > scan.MaxTrendScans {
		return fmt.Errorf("%w: at most %d scans", errUsage, scan.MaxTrendScans)
	}
	st, err := openScanStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	t, err := scan.TrendOf(e.ctx, st, ids)
	if err != nil {
		return err
	}
	return f.write(e, t, func(w io.Writer) { writeTrendText(w, t) },
		func(w io.Writer) error { return scan.WriteTrendHTML(w, t, time.Now()) })
}

// trendCategories are the columns of the text trend.
var trendCategories = []string{"green", "white", "yellow", "red", "grey", "error", "pending"}

func writeTrendText(w io.Writer, t scan.Trend) {
	block := func(title string, points []scan.TrendPoint) {
		fmt.Fprintf(w, "%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "scan\tcreated\tdomains\t%s\t\n", strings.Join(trendCategories, "\t"))
		for i, p := range points {
			fmt.Fprintf(tw, "%s\t%s\t%d", untrusted.Terminal(p.Scan), t.Scans[i].Created.UTC().Format("2006-01-02"), p.Total)
			for _, c := range trendCategories {
				fmt.Fprintf(tw, "\t%.1f%%", 100*p.Shares[c])
			}
			fmt.Fprintln(tw, "\t")
		}
		tw.Flush()
		fmt.Fprintln(w)
	}
	block("all domains", t.All)
	for _, l := range t.Labels {
		block(fmt.Sprintf("label %q", untrusted.Terminal(l.Label)), l.Points)
	}
}
