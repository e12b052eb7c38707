package web

import (
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/csvsafe"
	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// This file is the public provider table (docs/providers.md): the page
// (sortable and filterable through its query, and in place by
// static/providers.js), a provider's history page, and the table as JSON
// and CSV for re-use. The pages' words are the catalogues' (internal/i18n,
// "web.providers." and "web.provider."); the errors below are fixed
// English texts the API answers as they are and a page shows in the
// reader's language (i18n.Text, texts.go).

// Errors of a table request's query, and of a provider page's domain.
const (
	errProviderSort     = "sort must be one of domain, tested, outbound, inbound"
	errProviderOrder    = "order must be asc or desc"
	errProviderOutbound = "outbound must be one of red, yellow, white, green, grey"
	errProviderInbound  = "inbound must be one of red, yellow, white, green, grey"
	errNotAProvider     = "no such provider"
)

// providerSorts are the columns the table sorts by (?sort=), in the order
// of the page's headers.
var providerSorts = []string{"domain", "tested", "outbound", "inbound"}

// providerQuery is what the query of a table request asks for: the rows
// whose domain or comments contain Text (case-insensitive) and whose
// outbound and inbound colours are Outbound and Inbound ("" for any),
// ordered by Sort (default domain), descending if Desc.
type providerQuery struct {
	Text, Outbound, Inbound, Sort string
	Desc                          bool
}

func parseProviderQuery(v url.Values) (providerQuery, error) {
	q := providerQuery{Text: strings.TrimSpace(v.Get("q")), Outbound: v.Get("outbound"), Inbound: v.Get("inbound"), Sort: cmp.Or(v.Get("sort"), "domain")}
	if !slices.Contains(providerSorts, q.Sort) {
		return q, errors.New(errProviderSort)
	}
	switch v.Get("order") {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		return q, errors.New(errProviderOrder)
	}
	for _, f := range []struct{ colour, err string }{{q.Outbound, errProviderOutbound}, {q.Inbound, errProviderInbound}} {
		if f.colour != "" && !colour.Colour(f.colour).Known() {
			return q, errors.New(f.err)
		}
	}
	return q, nil
}

// colourRank orders colours from worst to best; grey and none (no
// verdict, no check) first, as they say least.
func colourRank(c colour.Colour) int {
	switch c {
	case colour.Red:
		return 1
	case colour.Yellow:
		return 2
	case colour.White:
		return 3
	case colour.Green:
		return 4
	}
	return 0
}

// testedKey is a row's test time as the sort (and the page's script)
// compare it: Unix seconds, 0 when untested.
func testedKey(r report.ProviderRow) int64 {
	if r.Tested.IsZero() {
		return 0
	}
	return r.Tested.Unix()
}

// filterText is what ?q= searches: the domain and every comment, lower
// case (the page's script searches the same text, data-text); the
// verdict's comment as stored (English, as the API gives it) and as the
// reader sees it (seen: report.LocalizeWhy of it, translated once by the
// caller).
func filterText(r report.ProviderRow, seen string) string {
	comments := []string{r.Domain, r.Comments}
	if seen != r.Comments {
		comments = append(comments, seen)
	}
	return strings.ToLower(strings.Join(slices.Concat(comments, []string{r.OperatorComment}, r.Footnotes), " "))
}

// matches tells whether r, whose filterText is text, passes the query's
// filters.
func (q providerQuery) matches(text string, r report.ProviderRow) bool {
	return (q.Text == "" || strings.Contains(text, strings.ToLower(q.Text))) &&
		(q.Outbound == "" || string(r.Colour) == q.Outbound) && (q.Inbound == "" || string(r.InboundColour) == q.Inbound)
}

// apply filters and sorts rows.
func (q providerQuery) apply(rows []report.ProviderRow) []report.ProviderRow {
	out := make([]report.ProviderRow, 0, len(rows))
	for _, r := range rows {
		var text string
		if q.Text != "" {
			text = filterText(r, r.Comments) // the API's rows: English
		}
		if q.matches(text, r) {
			out = append(out, r)
		}
	}
	q.sort(out)
	return out
}

// sort sorts rows in place; ties are ordered by domain.
func (q providerQuery) sort(rows []report.ProviderRow) {
	slices.SortStableFunc(rows, func(a, b report.ProviderRow) int {
		var c int
		switch q.Sort {
		case "tested":
			c = cmp.Compare(testedKey(a), testedKey(b))
		case "outbound":
			c = cmp.Compare(colourRank(a.Colour), colourRank(b.Colour))
		case "inbound":
			c = cmp.Compare(colourRank(a.InboundColour), colourRank(b.InboundColour))
		}
		if q.Desc {
			c = -c
		}
		if c == 0 {
			c = cmp.Compare(a.Domain, b.Domain)
			if q.Desc && q.Sort == "domain" {
				c = -c
			}
		}
		return c
	})
}

// values is q as a query (only what differs from the defaults).
func (q providerQuery) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"q": q.Text, "outbound": q.Outbound, "inbound": q.Inbound} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Sort != "domain" {
		v.Set("sort", q.Sort)
	}
	if q.Desc {
		v.Set("order", "desc")
	}
	return v
}

// href is path with q's query.
func (q providerQuery) href(path string) string {
	if v := q.values().Encode(); v != "" {
		return path + "?" + v
	}
	return path
}

// sortHeader is a column header of the page: the link that sorts by it
// (the other order when it is the current column), and its aria-sort.
type sortHeader struct {
	Key, Href, Aria string
}

func (q providerQuery) headers() map[string]sortHeader {
	h := map[string]sortHeader{}
	for _, key := range providerSorts {
		n := q
		n.Sort, n.Desc = key, false
		aria := "none"
		if q.Sort == key {
			n.Desc = !q.Desc
			aria = "ascending"
			if q.Desc {
				aria = "descending"
			}
		}
		h[key] = sortHeader{Key: key, Href: n.href("/providers"), Aria: aria}
	}
	return h
}

// providerRows builds the public table: one row per web.providers domain,
// its newest authenticated result, its latest inbound check and the
// operator's notes.
func (s *Server) providerRows(r *http.Request) ([]report.ProviderRow, error) {
	var rows []report.ProviderRow
	for _, d := range s.o.Providers {
		row, err := s.providerRow(r, dnsname.Canonical(d))
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (s *Server) providerRow(r *http.Request, d string) (report.ProviderRow, error) {
	ctx := r.Context()
	var row report.ProviderRow
	res, err := s.o.Source.Store.LatestAuthenticatedResult(ctx, d)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Not tested outbound; its domain may still have been checked
		// inbound (the check form, a scan of the service).
		var ib *report.Inbound
		if c, err := s.o.Source.Store.LatestInboundCheck(ctx, d, time.Time{}); err == nil {
			ib = &report.Inbound{Colour: colour.Colour(c.Colour), CheckedAt: c.Checked}
		}
		row = report.Provider(d, time.Time{}, verdict.Verdict{}, false, ib)
	case err != nil:
		return row, err
	default:
		var v verdict.Verdict
		if err := json.Unmarshal(res.Verdict, &v); err != nil {
			return row, fmt.Errorf("stored verdict of %s: %w", res.TestID, err)
		}
		var ib *report.Inbound
		if s.o.Source.Inbound != nil {
			if js, err := s.o.Source.Inbound(ctx, res.TestID, d); err == nil && js != nil {
				var x report.Inbound
				if json.Unmarshal(js, &x) == nil {
					ib = &x
				}
			}
		}
		row = report.Provider(d, res.Final, v, true, ib)
	}
	if n, ok := s.o.ProviderNotes[d]; ok {
		row.OperatorComment, row.Footnotes = n.Comment, n.Footnotes
	}
	return row, nil
}

// providerTable answers every row of the table and the request's query,
// or an error already answered (ok false).
func (s *Server) providerTable(w http.ResponseWriter, r *http.Request, asJSON bool) (rows []report.ProviderRow, q providerQuery, ok bool) {
	q, err := parseProviderQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, asJSON, http.StatusBadRequest, err.Error())
		return nil, q, false
	}
	rows, err = s.providerRows(r)
	if err != nil {
		s.log.Error("web: provider table", "err", err)
		s.fail(w, r, asJSON, http.StatusInternalServerError, "internal error")
		return nil, q, false
	}
	return rows, q, true
}

// providerView is a row as the page shows it: with the keys its script
// sorts and filters by, and Hidden when the query's filter leaves it out.
type providerView struct {
	report.ProviderRow
	TestedKey                 int64
	OutboundRank, InboundRank int
	Text                      string
	Hidden                    bool
	// ShownComments is Comments in the reader's language.
	ShownComments string
}

// providersPage shows every row, sorted as the query asks, with those
// that the filter leaves out hidden (the hidden attribute: they stay out
// of sight without JavaScript or CSS, and the page's script can show them
// again when the filter changes in place).
func (s *Server) providersPage(w http.ResponseWriter, r *http.Request) {
	rows, q, ok := s.providerTable(w, r, false)
	if !ok {
		return
	}
	q.sort(rows)
	lang := i18n.FromRequest(r)
	views := make([]providerView, len(rows))
	shown := 0
	for i, row := range rows {
		seen := report.LocalizeWhy(lang, row.Comments)
		text := filterText(row, seen)
		views[i] = providerView{ProviderRow: row, TestedKey: testedKey(row), OutboundRank: colourRank(row.Colour),
			InboundRank: colourRank(row.InboundColour), Text: text, Hidden: !q.matches(text, row), ShownComments: seen}
		if !views[i].Hidden {
			shown++
		}
	}
	colours := []colour.Colour{colour.Red, colour.Yellow, colour.White, colour.Green, colour.Grey}
	s.render(w, r, "providers.html", map[string]any{"Title": i18n.T(lang, "web.title.providers"), "Rows": views, "Shown": shown, "Query": q,
		"Headers": q.headers(), "Colours": colours,
		"JSON": q.href("/providers.json"), "CSV": q.href("/providers.csv")})
}

// ProviderHistoryEntry is one verdict of a provider's history (the API's
// and the page's).
type ProviderHistoryEntry struct {
	Final    time.Time     `json:"final"`
	Policy   string        `json:"policy"`
	Colour   colour.Colour `json:"colour"`
	Complete bool          `json:"complete"`
}

// providerDetail is a provider's row with the history of its verdicts,
// newest first; ok false after an error answer.
func (s *Server) providerDetail(w http.ResponseWriter, r *http.Request, asJSON bool) (report.ProviderRow, []ProviderHistoryEntry, bool) {
	d := dnsname.Canonical(r.PathValue("domain"))
	if !slices.ContainsFunc(s.o.Providers, func(p string) bool { return dnsname.Canonical(p) == d }) {
		s.fail(w, r, asJSON, http.StatusNotFound, errNotAProvider)
		return report.ProviderRow{}, nil, false
	}
	row, err := s.providerRow(r, d)
	var hist []store.ProviderVerdict
	if err == nil {
		hist, err = s.o.Source.Store.ProviderHistory(r.Context(), d, 0)
	}
	if err != nil {
		s.log.Error("web: provider history", "provider", d, "err", err)
		s.fail(w, r, asJSON, http.StatusInternalServerError, "internal error")
		return row, nil, false
	}
	entries := make([]ProviderHistoryEntry, len(hist))
	for i, h := range hist {
		c := colour.Colour(h.Colour)
		if !c.Known() {
			c = colour.Grey
		}
		entries[i] = ProviderHistoryEntry{Final: h.Final, Policy: h.Policy, Colour: c, Complete: h.Complete}
	}
	return row, entries, true
}

func (s *Server) providerPage(w http.ResponseWriter, r *http.Request) {
	row, hist, ok := s.providerDetail(w, r, false)
	if !ok {
		return
	}
	s.render(w, r, "provider.html", map[string]any{"Title": i18n.T(i18n.FromRequest(r), "web.title.provider", row.Domain), "Row": row, "History": hist})
}

func (s *Server) apiProvider(w http.ResponseWriter, r *http.Request) {
	row, hist, ok := s.providerDetail(w, r, true)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"provider": row, "history": hist})
}

// apiProviders answers the table as JSON: GET /api/v1/providers and
// /providers.json, with the page's query.
func (s *Server) apiProviders(w http.ResponseWriter, r *http.Request) {
	rows, q, ok := s.providerTable(w, r, true)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"providers": q.apply(rows)})
}

// providerCSVHeader is the header row of /providers.csv (docs/providers.md).
var providerCSVHeader = []string{"domain", "tested", "policy", "outbound_colour", "inbound_colour", "inbound_checked", "encryption",
	"adequate_certificates", "rfc7672", "encryption_mandatory", "dkim", "arc", "comments", "operator_comment", "footnotes"}

// providersCSV answers the table as CSV (RFC 4180), every cell through
// csvsafe (a comment starting with = is not run as a formula).
func (s *Server) providersCSV(w http.ResponseWriter, r *http.Request) {
	rows, q, ok := s.providerTable(w, r, false)
	if !ok {
		return
	}
	rows = q.apply(rows)
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="providers.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write(providerCSVHeader)
	date := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, row := range rows {
		cells := []string{row.Domain, date(row.Tested), row.Policy, string(row.Colour), string(row.InboundColour), date(row.InboundChecked),
			row.Encryption.Value, row.AdequateCertificate.Value, row.RFC7672.Value, row.EncryptionMandatory.Value, row.DKIM.Value, row.ARC.Value,
			row.Comments, row.OperatorComment, strings.Join(row.Footnotes, " | ")}
		for i, c := range cells {
			cells[i] = csvsafe.Cell(c)
		}
		_ = cw.Write(cells)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		s.log.Warn("web: provider CSV", "err", err)
	}
}
