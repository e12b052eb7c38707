package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

// colourChecker answers each domain with the colour colours gives it, and
// fails for a domain given "error".
func colourChecker(colours map[string]string) Checker {
	return func(ctx context.Context, domain string) (json.RawMessage, error) {
		c := colours[domain]
		if c == "error" {
			return nil, fmt.Errorf("no answer from %s", domain)
		}
		return json.RawMessage(fmt.Sprintf(`{"schema":"mailsec.check.v1","domain":%q,"colour":%q}`, domain, c)), nil
	}
}

// runScanAt stores and runs a scan of input created at created, its
// checks answering colours.
func runScanAt(t *testing.T, st *store.Store, id string, created time.Time, input string, colours map[string]string) {
	t.Helper()
	if err := st.CreateScan(t.Context(), store.Scan{ID: id, Created: created, Source: id + ".txt", Options: "{}"}); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(t.Context(), st, id, strings.NewReader(input), testNorm, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(t.Context(), st, id, colourChecker(colours), Options{Concurrency: 2}); err != nil {
		t.Fatal(err)
	}
}

var (
	scanDay1 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	scanDay2 = scanDay1.Add(30 * 24 * time.Hour)
)

// compareFixture: two scans of law firms and authorities a month apart.
func compareFixture(t *testing.T, st *store.Store) {
	t.Helper()
	runScanAt(t, st, "scan-march", scanDay1, "a.example,law\nb.example,law\nc.example,authority\nd.example,authority\ngone.example,authority\nbad..x\n",
		map[string]string{"a.example": "red", "b.example": "green", "c.example": "yellow", "d.example": "white", "gone.example": "red"})
	runScanAt(t, st, "scan-april", scanDay2, "b.example,law\na.example,law\nc.example,authority\nd.example,authority\nnew.example,<b>law</b>\n",
		map[string]string{"a.example": "green", "b.example": "green", "c.example": "error", "d.example": "white", "new.example": "red"})
}

// TestCompareAndTrend runs the two reports across scans on one pair of
// real scans (a scan takes a second to run).
func TestCompareAndTrend(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		compareFixture(t, st)
		t.Run("compare", func(t *testing.T) { testCompare(t, st) })
		t.Run("trend", func(t *testing.T) { testTrend(t, st) })
	})
}

func testCompare(t *testing.T, st *store.Store) {
	c, err := Compare(t.Context(), st, "scan-march", "scan-april")
	if err != nil {
		t.Fatal(err)
	}
	if c.Schema != CompareSchema || c.A.ID != "scan-march" || !c.B.Created.Equal(scanDay2) || c.Compared != 4 || c.Changed != 2 || c.OnlyInA != 1 || c.OnlyInB != 1 {
		t.Fatalf("comparison %+v", c)
	}
	if len(c.Labels) != 2 {
		t.Fatalf("labels %+v", c.Labels)
	}
	auth, law := c.Labels[0], c.Labels[1] // equal counts: by name
	if auth.Label != "authority" || auth.Compared != 2 || auth.Changed != 1 ||
		!slices.Equal(auth.Changes, []DomainChange{{"c.example", "yellow", "error"}}) ||
		!slices.Equal(auth.Transitions, []Transition{{"yellow", "error", 1}}) {
		t.Errorf("authority %+v", auth)
	}
	if law.Label != "law" || law.Compared != 2 || law.Changed != 1 || !slices.Equal(law.Changes, []DomainChange{{"a.example", "red", "green"}}) {
		t.Errorf("law %+v", law)
	}
	// The other way round: the same domains changed, the other way.
	r, err := Compare(t.Context(), st, "scan-april", "scan-march")
	if err != nil || r.Changed != 2 || r.OnlyInA != 1 || r.Labels[1].Changes[0] != (DomainChange{"a.example", "green", "red"}) {
		t.Errorf("reversed %+v %v", r, err)
	}
	if _, err := Compare(t.Context(), st, "scan-march", "scan-none"); err == nil {
		t.Error("a comparison with a scan that does not exist")
	}
	var html bytes.Buffer
	if err := WriteCompareHTML(&html, c, scanDay2); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<td>a.example</td><td>red</td><td>green</td>", "yellow → error: 1", "<td>law</td><td>2</td><td>1</td><td>50.0%</td>",
		"1 only in scan-march, 1 only in scan-april"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("comparison page lacks %q:\n%s", want, html.String())
		}
	}
}

func testTrend(t *testing.T, st *store.Store) {
	tr, err := TrendOf(t.Context(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Schema != TrendSchema || len(tr.Scans) != 2 || tr.Scans[0].ID != "scan-march" || tr.Scans[1].ID != "scan-april" {
		t.Fatalf("scans %+v", tr.Scans)
	}
	// All domains: March 5 (2 red, green, yellow, white); April 5
	// (2 green, white, red, an error). The invalid line is no domain.
	if p := tr.All[0]; p.Total != 5 || p.Counts["red"] != 2 || p.Shares["red"] != 0.4 || p.Counts["error"] != 0 {
		t.Errorf("all, March: %+v", p)
	}
	if p := tr.All[1]; p.Total != 5 || p.Counts["green"] != 2 || p.Counts["error"] != 1 || p.Shares["green"] != 0.4 {
		t.Errorf("all, April: %+v", p)
	}
	var labels []string
	for _, l := range tr.Labels {
		labels = append(labels, l.Label)
	}
	if want := []string{"authority", "law", "<b>law</b>"}; !slices.Equal(labels, want) {
		t.Fatalf("labels %v, want %v", labels, want)
	}
	law := tr.Labels[1].Points
	if law[0].Counts["red"] != 1 || law[0].Counts["green"] != 1 || law[1].Counts["green"] != 2 || law[1].Shares["green"] != 1 {
		t.Errorf("law %+v", law)
	}
	if newLabel := tr.Labels[2].Points; newLabel[0].Total != 0 || newLabel[1].Counts["red"] != 1 {
		t.Errorf("a label new in April %+v", newLabel)
	}
	// Scans named: in the order given.
	if tr, err := TrendOf(t.Context(), st, []string{"scan-april"}); err != nil || len(tr.Scans) != 1 || tr.All[0].Counts["green"] != 2 {
		t.Errorf("one scan: %+v %v", tr, err)
	}
	if _, err := TrendOf(t.Context(), st, []string{"scan-none"}); err == nil {
		t.Error("a trend of a scan that does not exist")
	}
	var html bytes.Buffer
	if err := WriteTrendHTML(&html, tr, scanDay2); err != nil {
		t.Fatal(err)
	}
	page := html.String()
	for _, want := range []string{"<h2>label authority</h2>", "<svg", "2026-03-01 scan-march", "<td>scan-april</td><td>5</td><td>40.0%</td>", "&lt;b&gt;law&lt;/b&gt;"} {
		if !strings.Contains(page, want) {
			t.Errorf("trend page lacks %q", want)
		}
	}
	if strings.Contains(page, "<b>law</b>") {
		t.Error("a label is not escaped")
	}
}
