package web

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/reportsource"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// schemas compiles the documented API schemas (docs/api/).
func schemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := map[string]*jsonschema.Schema{}
	for _, name := range []string{"test-created", "report", "providers", "provider", "error"} {
		path, err := filepath.Abs(filepath.Join("..", "..", "docs", "api", name+".schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Compile(path)
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// validate checks an API answer against a schema.
func validate(t *testing.T, s *jsonschema.Schema, body []byte) {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, body)
	}
	if err := s.Validate(v); err != nil {
		t.Fatalf("answer does not match its schema: %v\n%s", err, body)
	}
}

type env struct {
	st  *store.Store
	srv *Server
	ts  *httptest.Server
	now time.Time
}

func newEnv(t *testing.T, tweak func(*Options)) *env {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{st: st, now: time.Now().UTC()}
	o := Options{
		Source: reportsource.Source{Store: st, ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example",
			DowngradeWindow: 3 * time.Minute,
			Evidence:        evidence.Gatherer{Store: st, Rules: evidence.Rules{Quiet: 10 * time.Minute, PrefixV4: 24, PrefixV6: 48}}},
		ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example", Providers: []string{"example.org", "untested.example"},
		Retention: 24 * time.Hour, StartLimit: 3, CheckLimit: 2, EventInterval: 20 * time.Millisecond,
		Now: func() time.Time { return e.now },
	}
	if tweak != nil {
		tweak(&o)
	}
	e.srv = New(o)
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
	return e
}

func (e *env) do(t *testing.T, method, path string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, e.ts.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

const evil = `<script>alert("x")</script>`

// ownedTest stores tt with a fresh owner key and returns the key.
// apiReport GETs test id's report through the API with its owner key,
// checks it against the schema and decodes it.
func (e *env) apiReport(t *testing.T, id, key string) TestAnswer {
	t.Helper()
	resp, body := e.do(t, "GET", "/api/v1/tests/"+id, nil, bearer(key)...)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /api/v1/tests/%s: %d %s", id, resp.StatusCode, body)
	}
	validate(t, schemas(t)["report"], body)
	var ans TestAnswer
	if err := json.Unmarshal(body, &ans); err != nil {
		t.Fatal(err)
	}
	return ans
}

func (e *env) ownedTest(t *testing.T, tt store.Test) string {
	t.Helper()
	key, err := store.NewOwnerKey()
	if err != nil {
		t.Fatal(err)
	}
	tt.OwnerKey = key
	if err := e.st.CreateTest(t.Context(), tt); err != nil {
		t.Fatal(err)
	}
	return key
}

// bearer is the header that opens a test's API routes with its key.
func bearer(key string) []string { return []string{"Authorization", "Bearer " + key} }

// addConn records a connection of test id.
func (e *env) addConn(t *testing.T, id string, c store.SMTPConnection) {
	t.Helper()
	c.TestID = id
	if c.Client == (netip.AddrPort{}) {
		c.Client = netip.MustParseAddrPort("192.0.2.7:4000")
	}
	if err := e.st.InsertConnection(t.Context(), &c); err != nil {
		t.Fatal(err)
	}
}

func TestAPIAndPages(t *testing.T) {
	sch := schemas(t)
	e := newEnv(t, nil)

	resp, body := e.do(t, "POST", "/api/v1/tests", nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start: %d %s", resp.StatusCode, body)
	}
	validate(t, sch["test-created"], body)
	var created struct {
		ID       string
		AddressA string `json:"address_a"`
		URL      string
		OwnerKey string `json:"owner_key"`
	}
	_ = json.Unmarshal(body, &created)
	if len(created.OwnerKey) != 32 || created.URL != "/t/"+created.OwnerKey {
		t.Fatalf("start: owner key %q, url %q", created.OwnerKey, created.URL)
	}
	key := created.OwnerKey

	e.addConn(t, created.ID, store.SMTPConnection{Started: e.now.Add(-time.Minute), Ended: e.now.Add(-50 * time.Second), EHLO: evil,
		Persona: 1, State: store.StateMail, MailFrom: `"` + evil + `"@evil.example`, RcptTo: []string{created.AddressA},
		Reply: "451 4.7.1 downgrade test in progress: try again later",
		Authentication: &store.Authentication{
			DKIM:        []store.Signature{{Type: "dkim", Domain: "evil.example", Selector: "s", Result: "fail", Reason: "body hash mismatch"}},
			SPFMailFrom: store.SPFCheck{Domain: "evil.example", Result: "softfail", Reason: evil},
			SPFHELO:     store.SPFCheck{Result: "none", Reason: "the HELO name is not a domain name"},
			DMARC:       store.DMARCCheck{FromDomain: "evil.example", Result: "none", Reason: "no DMARC record"},
			ARC:         store.ARCCheck{Result: "none"}}})

	ans := e.apiReport(t, created.ID, key)
	if ans.Report.Phase != "downgrade" || len(ans.Report.History) != 1 || ans.Report.History[0].From != "<***@evil.example" && ans.Report.History[0].From == "" {
		t.Errorf("report: phase %s history %+v", ans.Report.Phase, ans.Report.History)
	}
	// The test mail's authentication, and the facts a table can copy.
	if a := ans.Report.Authentication; a == nil || len(a.Lines) != 5 || a.Lines[0] != "DKIM: fail (d=evil.example, s=s): body hash mismatch" ||
		a.SPFMailFrom.Result != "softfail" || ans.Report.Facts["DKIM"] != "fail" || ans.Report.Facts["SPF"] != "softfail" || ans.Report.Facts["DMARC"] != "none" {
		t.Errorf("authentication %+v, facts %v", a, ans.Report.Facts)
	}

	if ans.Test.OwnerKey != "" || ans.Test.URL != "/t/"+key {
		t.Errorf("the test's answer: owner key %q (given only at creation), url %q", ans.Test.OwnerKey, ans.Test.URL)
	}

	for _, path := range []string{"/t/" + key, "/t/" + key + "/report"} {
		resp, body = e.do(t, "GET", path, nil)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		page := string(body)
		if strings.Contains(page, "<script>alert") {
			t.Errorf("%s: unescaped markup from the EHLO or MAIL FROM:\n%s", path, page)
		}
		if !strings.Contains(page, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
			t.Errorf("%s: the escaped EHLO is missing", path)
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "script-src 'self'") {
			t.Errorf("%s: no CSP", path)
		}
	}

	resp, body = e.do(t, "GET", "/api/v1/tests/nosuchtestatall2", nil, bearer(key)...)
	if resp.StatusCode != 404 {
		t.Fatalf("missing test: %d", resp.StatusCode)
	}
	validate(t, sch["error"], body)

	// A cross-site form post (the delete button from another site) is
	// refused; the same-origin one and the API's DELETE work.
	resp, _ = e.do(t, "POST", "/t/"+key+"/delete", nil, "Origin", "https://evil.example")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site delete: %d", resp.StatusCode)
	}
	resp, _ = e.do(t, "POST", "/t/"+key+"/delete", nil, "Origin", "null", "Sec-Fetch-Site", "cross-site")
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("cross-site delete (fetch metadata): %d", resp.StatusCode)
	}
	resp, _ = e.do(t, "DELETE", "/api/v1/tests/"+created.ID, nil, bearer(key)...)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if cs, _ := e.st.Connections(t.Context(), store.ConnectionFilter{TestID: created.ID}); len(cs) != 0 {
		t.Errorf("connections survive the delete")
	}
	resp, _ = e.do(t, "GET", "/t/"+key, nil)
	if resp.StatusCode != 404 {
		t.Errorf("deleted test: %d", resp.StatusCode)
	}
}

func TestHomeAndStartPage(t *testing.T) {
	e := newEnv(t, nil)
	resp, body := e.do(t, "GET", "/", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `id="privacy"`) || !strings.Contains(string(body), "deleted after 24 hours") {
		t.Fatalf("home: %d %s", resp.StatusCode, body)
	}
	resp, _ = e.do(t, "POST", "/start", nil, "Origin", strings.TrimPrefix(e.ts.URL, "http://"))
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/t/") {
		t.Fatalf("start: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The limit is 3 per hour and address: the API shares it.
	e.do(t, "POST", "/api/v1/tests", nil)
	e.do(t, "POST", "/api/v1/tests", nil)
	resp, body = e.do(t, "POST", "/api/v1/tests", nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth start: %d %s", resp.StatusCode, body)
	}
	validate(t, schemas(t)["error"], body)
}

func TestEventsStreamUntilFinal(t *testing.T) {
	e := newEnv(t, nil)
	created := e.now.Add(-time.Hour)
	id := "streamtestaaaaaa"
	key := e.ownedTest(t, store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/t/"+key+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	rd := bufio.NewReader(resp.Body)
	next := func() map[string]any {
		t.Helper()
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended: %v", err)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				var m map[string]any
				if err := json.Unmarshal([]byte(data), &m); err != nil {
					t.Fatal(err)
				}
				return m
			}
		}
	}
	if r := next(); r["phase"] != "waiting" || r["connections"].(float64) != 0 {
		t.Fatalf("first event %v", r)
	}
	// A connection arrives: the next event has it.
	e.addConn(t, id, store.SMTPConnection{Started: e.now, Ended: e.now, EHLO: "mx.example.org", Persona: 1, State: store.StateNone})
	if r := next(); r["connections"].(float64) != 1 {
		t.Fatalf("second event %v", r)
	}
	// The test becomes final: one more event, then the stream ends.
	v, _ := json.Marshal(verdict.Verdict{Policy: verdict.PolicyUnknown})
	if err := e.st.FinalizeTest(t.Context(), store.Test{ID: id, Created: created, Kind: store.TestToken, State: store.TestFinal, Updated: e.now},
		store.TestResult{TestID: id, Final: e.now, Verdict: v, MailState: store.MailNone, MailReason: "no envelope sender"}); err != nil {
		t.Fatal(err)
	}
	if r := next(); r["final"] != true || r["phase"] != "done" {
		t.Fatalf("final event %v", r)
	}
	if _, err := io.ReadAll(rd); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
}

func TestProvidersTable(t *testing.T) {
	sch := schemas(t)
	e := newEnv(t, nil)
	created := e.now.Add(-time.Hour)
	if err := e.st.CreateTest(t.Context(), store.Test{ID: "provideraaaaaaaa", Created: created, Updated: created, Kind: store.TestToken,
		Sender: "someone@example.org", State: store.TestFinal}); err != nil {
		t.Fatal(err)
	}
	v, _ := json.Marshal(verdict.Verdict{Policy: verdict.PolicyDANEOnly, Complete: true, Why: "only dane-only explains it (from someone@example.org)",
		Facts: []verdict.Fact{{Name: verdict.FactValidatesDANE, Value: true, Confidence: verdict.Proven}, {Name: verdict.FactSignsDKIM, Value: true, Confidence: verdict.Proven}}})
	if err := e.st.FinalizeTest(t.Context(), store.Test{ID: "provideraaaaaaaa", Created: created, Kind: store.TestToken, Sender: "someone@example.org", State: store.TestFinal},
		store.TestResult{TestID: "provideraaaaaaaa", Final: e.now, Verdict: v, SenderDomain: "example.org", MailState: store.MailNone, SenderAuthenticated: true}); err != nil {
		t.Fatal(err)
	}
	resp, body := e.do(t, "GET", "/api/v1/providers", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	validate(t, sch["providers"], body)
	if !strings.Contains(string(body), `"rfc7672": {`) || strings.Contains(string(body), "someone@") {
		t.Errorf("providers: %s", body)
	}
	resp, body = e.do(t, "GET", "/providers", nil)
	page := string(body)
	if resp.StatusCode != 200 || !strings.Contains(page, "example.org") || !strings.Contains(page, "not tested yet") ||
		!strings.Contains(page, `class="c-green"`) || strings.Contains(page, "someone@") {
		t.Errorf("provider page: %s", page)
	}
}

// TestProvidersTableOnlyAuthenticated: anyone can write MAIL FROM
// x@provider.example, so a test that did not authenticate its sender's
// domain leaves the provider's row as it was; an authenticated one updates
// it (issue 16).
func TestProvidersTableOnlyAuthenticated(t *testing.T) {
	e := newEnv(t, nil)
	final := func(id string, at time.Time, policy verdict.Policy, auth bool) {
		t.Helper()
		tt := store.Test{ID: id, Created: at.Add(-time.Hour), Updated: at, Kind: store.TestFixed, Sender: "x@example.org", State: store.TestOpen}
		if err := e.st.CreateTest(t.Context(), tt); err != nil {
			t.Fatal(err)
		}
		v, _ := json.Marshal(verdict.Verdict{Policy: policy, Complete: true})
		tt.State = store.TestFinal
		if err := e.st.FinalizeTest(t.Context(), tt, store.TestResult{TestID: id, Final: at, Verdict: v, SenderDomain: "example.org",
			MailState: store.MailWithheld, SenderAuthenticated: auth}); err != nil {
			t.Fatal(err)
		}
	}
	policy := func() string {
		t.Helper()
		resp, body := e.do(t, "GET", "/api/v1/providers", nil)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var got struct {
			Providers []report.ProviderRow `json:"providers"`
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		for _, r := range got.Providers {
			if r.Domain == "example.org" {
				return r.Policy
			}
		}
		t.Fatalf("no row of example.org: %s", body)
		return ""
	}
	final("authenticaaaaaaa", e.now.Add(-2*time.Hour), verdict.PolicyDANEOnly, true)
	if p := policy(); p != string(verdict.PolicyDANEOnly) {
		t.Fatalf("row %q after the authenticated test", p)
	}
	// A plain-text mail with a forged MAIL FROM, newer.
	final("forgedaaaaaaaaaa", e.now.Add(-time.Hour), verdict.PolicyNone, false)
	if p := policy(); p != string(verdict.PolicyDANEOnly) {
		t.Errorf("an unauthenticated test changed the row to %q", p)
	}
	final("authenticbbbbbbb", e.now, verdict.PolicyMTASTS, true)
	if p := policy(); p != string(verdict.PolicyMTASTS) {
		t.Errorf("row %q after a newer authenticated test, want %q", p, verdict.PolicyMTASTS)
	}
}

func TestCheck(t *testing.T) {
	sch := schemas(t)
	e := newEnv(t, nil)
	resp, body := e.do(t, "POST", "/api/v1/check?domain=example.org", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("without a checker: %d", resp.StatusCode)
	}
	validate(t, sch["error"], body)

	var asked []string
	e = newEnv(t, func(o *Options) {
		o.Check = func(_ context.Context, d string) ([]byte, error) {
			asked = append(asked, d)
			return []byte(`{"schema":"mailsec.check.v1","domain":"` + d + `","colour":"green","colour_reason":"DANE",` +
				`"sentences":["Domain does support RFC 7672 SMTP-DANE (good)."],"findings":[{"code":"dane.valid","severity":"good","text":"` + strings.ReplaceAll(evil, `"`, `\"`) + `","host":"mx","address":"192.0.2.1"}]}`), nil
		}
	})
	resp, body = e.do(t, "POST", "/api/v1/check?domain=Example.ORG.", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"colour":"green"`) || len(asked) != 1 || asked[0] != "example.org" {
		t.Fatalf("check: %d %s %v", resp.StatusCode, body, asked)
	}
	resp, body = e.do(t, "POST", "/check", strings.NewReader("domain=example.org"), "Content-Type", "application/x-www-form-urlencoded")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "SMTP-DANE") || strings.Contains(string(body), "<script>alert") {
		t.Fatalf("check page: %d %s", resp.StatusCode, body)
	}
	resp, _ = e.do(t, "POST", "/api/v1/check?domain=example.org", nil)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("third check in the hour: %d", resp.StatusCode)
	}
	resp, _ = e.do(t, "POST", "/api/v1/check?domain=not%20a%20domain", nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad domain: %d", resp.StatusCode)
	}
}

// TestStartInSlot: a started test gets a free test slot and its addresses
// in the slot's domains, the shared ones beside them; when every slot is
// held the next test gets the shared names and is told so (API and live
// page).
func TestStartInSlot(t *testing.T) {
	sch := schemas(t)
	e := newEnv(t, func(o *Options) { o.Slots = store.SlotRules{Count: 1, Rest: time.Hour} })
	start := func() addresses {
		t.Helper()
		resp, body := e.do(t, "POST", "/api/v1/tests", nil)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("start: %d %s", resp.StatusCode, body)
		}
		validate(t, sch["test-created"], body)
		var a addresses
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	first := start()
	if first.Slot != "s001" || first.AddressA != "t-"+first.ID+"@s001.a.mailtest.example" || first.AddressB != "t-"+first.ID+"@s001.b.mailtest.example" ||
		first.SharedA != "t-"+first.ID+"@a.mailtest.example" || first.SlotNote != "" {
		t.Fatalf("first test: %+v", first)
	}
	if got, err := e.st.Test(t.Context(), first.ID); err != nil || got.Slot != 1 {
		t.Fatalf("stored slot %d, %v", got.Slot, err)
	}
	second := start()
	if second.Slot != "" || second.AddressA != second.SharedA || second.AddressA != "t-"+second.ID+"@a.mailtest.example" || second.SlotNote == "" {
		t.Fatalf("pool exhausted: %+v", second)
	}
	_, page := e.do(t, "GET", "/t/"+second.OwnerKey, nil)
	if !strings.Contains(string(page), `id="slot-note"`) {
		t.Error("the live page does not say the test has no slot")
	}
	_, page = e.do(t, "GET", "/t/"+first.OwnerKey, nil)
	if !strings.Contains(string(page), "t-"+first.ID+"@s001.a.mailtest.example") || strings.Contains(string(page), `id="slot-note"`) {
		t.Error("the live page does not show the slot's addresses")
	}
}
