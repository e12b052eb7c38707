package web

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/providernotes"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// providerEnv is a service with three providers: red.example tested
// (plain text, red), green.example tested earlier (dane-only, green),
// inbound.example untested outbound but checked inbound (green); the
// operator's notes on red.example.
func providerEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, func(o *Options) {
		o.Providers = []string{"red.example", "Green.Example.", "inbound.example"}
		o.ProviderNotes = providernotes.Notes{"red.example": {Comment: "=HYPERLINK(\"http://evil\") " + evil, Footnotes: []string{"Backup MX unencrypted.", "+second"}}}
	})
	final := func(id, domain string, at time.Time, v verdict.Verdict) {
		t.Helper()
		tt := store.Test{ID: id, Created: at.Add(-time.Hour), Updated: at, Kind: store.TestToken, Sender: "someone@" + domain, State: store.TestOpen}
		if err := e.st.CreateTest(t.Context(), tt); err != nil {
			t.Fatal(err)
		}
		vj, _ := json.Marshal(v)
		tt.State = store.TestFinal
		if err := e.st.FinalizeTest(t.Context(), tt, store.TestResult{TestID: id, Final: at, Verdict: vj, SenderDomain: domain,
			MailState: store.MailNone, SenderAuthenticated: true,
			Provider: &store.ProviderVerdict{Domain: domain, Final: at, TestID: id, Policy: string(v.Policy), Colour: string(report.VerdictColour(v)), Complete: v.Complete}}); err != nil {
			t.Fatal(err)
		}
	}
	final("redaaaaaaaaaaaaa", "red.example", e.now.Add(-time.Hour), verdict.Verdict{Policy: verdict.PolicyNone, Complete: true})
	final("greenoldaaaaaaaa", "green.example", e.now.Add(-72*time.Hour), verdict.Verdict{Policy: verdict.PolicyNone, Complete: false})
	final("greenaaaaaaaaaaa", "green.example", e.now.Add(-48*time.Hour), verdict.Verdict{Policy: verdict.PolicyDANEOnly, Complete: true,
		Why: "only dane-only explains persona 4: delivered, persona 5: refused"})
	if err := e.st.AddInboundCheck(t.Context(), store.InboundCheck{Domain: "inbound.example", Checked: e.now.Add(-time.Hour), Stored: e.now,
		Colour: "green", Report: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	return e
}

// domains are the rows' domains of a JSON table answer.
func domains(t *testing.T, body []byte) []string {
	t.Helper()
	var got struct {
		Providers []report.ProviderRow `json:"providers"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	var ds []string
	for _, r := range got.Providers {
		ds = append(ds, r.Domain)
	}
	return ds
}

// TestProviderTableQuery: the JSON table (both addresses) sorts and
// filters as its query asks, with the outbound and inbound colours side
// by side and the operator's notes; a bad query is a 400 naming it.
func TestProviderTableQuery(t *testing.T) {
	sch := schemas(t)
	e := providerEnv(t)
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{"green.example", "inbound.example", "red.example"}},
		{"?order=desc", []string{"red.example", "inbound.example", "green.example"}},
		{"?sort=tested&order=desc", []string{"red.example", "green.example", "inbound.example"}},
		{"?sort=tested", []string{"inbound.example", "green.example", "red.example"}},
		{"?sort=outbound", []string{"inbound.example", "red.example", "green.example"}},
		{"?sort=outbound&order=desc", []string{"green.example", "red.example", "inbound.example"}},
		{"?sort=inbound&order=desc", []string{"inbound.example", "green.example", "red.example"}},
		{"?outbound=red", []string{"red.example"}},
		{"?inbound=green", []string{"inbound.example"}},
		{"?q=BACKUP+mx", []string{"red.example"}},
		{"?q=green", []string{"green.example"}},
		{"?q=nothing-matches", nil},
	} {
		for _, path := range []string{"/providers.json", "/api/v1/providers"} {
			resp, body := e.do(t, "GET", path+tc.query, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s%s: %d %s", path, tc.query, resp.StatusCode, body)
			}
			validate(t, sch["providers"], body)
			if got := domains(t, body); !slices.Equal(got, tc.want) {
				t.Errorf("%s%s: %v, want %v", path, tc.query, got, tc.want)
			}
		}
	}
	_, body := e.do(t, "GET", "/providers.json?q=red.example", nil)
	var got struct {
		Providers []report.ProviderRow `json:"providers"`
	}
	if err := json.Unmarshal(body, &got); err != nil || len(got.Providers) != 1 {
		t.Fatalf("%v %s", err, body)
	}
	if r := got.Providers[0]; r.Colour != "red" || !strings.HasPrefix(r.OperatorComment, "=HYPERLINK") || len(r.Footnotes) != 2 || !r.Tested.Equal(e.now.Add(-time.Hour)) {
		t.Errorf("red.example: %+v", r)
	}
	_, body = e.do(t, "GET", "/providers.json?q=inbound", nil)
	if err := json.Unmarshal(body, &got); err != nil || got.Providers[0].InboundColour != "green" || !got.Providers[0].InboundChecked.Equal(e.now.Add(-time.Hour)) ||
		got.Providers[0].Colour != "grey" {
		t.Errorf("inbound.example: %+v %v", got.Providers, err)
	}
	for _, q := range []string{"?sort=colour", "?order=up", "?outbound=blue", "?inbound=GREEN"} {
		resp, body := e.do(t, "GET", "/providers.json"+q, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "must be") {
			t.Errorf("%s: %d %s", q, resp.StatusCode, body)
		}
		validate(t, sch["error"], body)
		if resp, _ := e.do(t, "GET", "/providers"+q, nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("page %s: %d", q, resp.StatusCode)
		}
	}
}

// rowRE finds the page's rows: whether hidden, and the domain.
var rowRE = regexp.MustCompile(`<tr( hidden)? data-domain="([^"]+)"`)

// TestProvidersPage: without JavaScript the page sorts and filters by its
// query: every row in the asked order, those the filter leaves out
// hidden, the count, the header links to the other order; the operator's
// notes are shown escaped.
func TestProvidersPage(t *testing.T) {
	e := providerEnv(t)
	resp, body := e.do(t, "GET", "/providers?sort=tested&order=desc&outbound=red", nil)
	page := string(body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, page)
	}
	var got []string
	for _, m := range rowRE.FindAllStringSubmatch(page, -1) {
		got = append(got, m[2]+m[1])
	}
	if want := []string{"red.example", "green.example hidden", "inbound.example hidden"}; !slices.Equal(got, want) {
		t.Errorf("rows %v, want %v", got, want)
	}
	for _, want := range []string{
		`1 of 3 providers shown.`,
		`<th aria-sort="descending"><a href="/providers?outbound=red&amp;sort=tested" data-sort="tested">`,
		`<a href="/providers?outbound=red&amp;sort=outbound" data-sort="outbound">`,
		`<option value="red" selected>red</option>`,
		`href="/providers.csv?order=desc&amp;outbound=red&amp;sort=tested"`,
		`<a href="/providers/red.example">red.example</a>`,
		`&lt;script&gt;`,
		`<li>Backup MX unencrypted.</li>`,
		`<script src="/static/providers.js"></script>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s", want)
		}
	}
	if strings.Contains(page, evil) {
		t.Error("the operator's comment is not escaped")
	}
	if resp, js := e.do(t, "GET", "/static/providers.js", nil); resp.StatusCode != http.StatusOK || !strings.Contains(string(js), "replaceState") {
		t.Errorf("script: %d", resp.StatusCode)
	}
}

// TestProvidersCSV: the CSV has the documented header and a row per
// provider matching the query; a cell a spreadsheet would run as a
// formula starts with an apostrophe.
func TestProvidersCSV(t *testing.T) {
	e := providerEnv(t)
	resp, body := e.do(t, "GET", "/providers.csv?sort=outbound&order=desc", nil)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "providers.csv") {
		t.Fatalf("%d %v", resp.StatusCode, resp.Header)
	}
	recs, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || !slices.Equal(recs[0], providerCSVHeader) {
		t.Fatalf("records %q", recs)
	}
	col := func(rec []string, name string) string { return rec[slices.Index(providerCSVHeader, name)] }
	if col(recs[1], "domain") != "green.example" || col(recs[1], "outbound_colour") != "green" || col(recs[1], "policy") != "dane-only" {
		t.Errorf("first row %q", recs[1])
	}
	red := recs[2]
	if col(red, "domain") != "red.example" || !strings.HasPrefix(col(red, "operator_comment"), `'=HYPERLINK("http://evil")`) ||
		col(red, "footnotes") != "Backup MX unencrypted. | +second" || col(red, "tested") != e.now.Add(-time.Hour).UTC().Format(time.RFC3339) {
		t.Errorf("red row %q", red)
	}
	if in := recs[3]; col(in, "inbound_colour") != "green" || col(in, "tested") != "" || col(in, "comments") != "not tested yet" {
		t.Errorf("inbound row %q", in)
	}
	_, body = e.do(t, "GET", "/providers.csv?outbound=green", nil)
	if recs, _ := csv.NewReader(strings.NewReader(string(body))).ReadAll(); len(recs) != 2 || recs[1][0] != "green.example" {
		t.Errorf("filtered CSV %q", recs)
	}
}

// TestProviderHistory: a provider's page and API show the history of its
// verdicts, newest first; a domain that is no provider is not found.
func TestProviderHistory(t *testing.T) {
	sch := schemas(t)
	e := providerEnv(t)
	resp, body := e.do(t, "GET", "/api/v1/providers/GREEN.example", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	validate(t, sch["provider"], body)
	var got struct {
		Provider report.ProviderRow     `json:"provider"`
		History  []ProviderHistoryEntry `json:"history"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.Provider.Domain != "green.example" || len(got.History) != 2 || got.History[0].Colour != "green" || !got.History[0].Complete ||
		got.History[1].Colour != "red" || got.History[1].Complete || !got.History[1].Final.Equal(e.now.Add(-72*time.Hour)) {
		t.Errorf("history %+v", got)
	}
	resp, body = e.do(t, "GET", "/providers/green.example", nil)
	page := string(body)
	if resp.StatusCode != http.StatusOK || strings.Count(page, `<td class="c-green">green</td><td>dane-only</td><td>yes</td>`) != 1 ||
		!strings.Contains(page, `<td class="c-red">red</td><td>none</td><td>no</td>`) {
		t.Errorf("history page: %s", page)
	}
	if resp, body := e.do(t, "GET", "/providers/inbound.example", nil); resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "No verdict recorded yet.") {
		t.Errorf("untested provider page: %d %s", resp.StatusCode, body)
	}
	for _, path := range []string{"/providers/other.example", "/api/v1/providers/other.example"} {
		if resp, _ := e.do(t, "GET", path, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
}
