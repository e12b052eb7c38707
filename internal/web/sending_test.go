package web

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/store"
)

// loopbackResolver is mailsec's resolver asking a DNS server on loopback
// that knows the sender's host names.
func loopbackResolver(t *testing.T) *resolver.Resolver {
	t.Helper()
	d := peertest.StartDNS(t)
	d.Set(t, "mx.sender.example. 60 IN A 192.0.2.25", "mx.sender.example. 60 IN AAAA 2001:db8::25")
	r, err := resolver.New(d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) testCount(t *testing.T) int {
	t.Helper()
	st, err := e.st.Stats(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	return int(st.Tables["tests"])
}

func TestStartWithSendingServer(t *testing.T) {
	sch := schemas(t)
	res := loopbackResolver(t)
	e := newEnv(t, func(o *Options) { o.Resolver = res; o.StartLimit = 100 })
	form := []string{"Content-Type", "application/x-www-form-urlencoded"}
	asJSON := []string{"Content-Type", "application/json"}
	for _, tc := range []struct {
		name   string
		body   string
		hdr    []string
		server string
		addrs  []string
	}{
		{"bodyless", "", nil, "", []string{}},
		{"form address", "sending_server=%20192.0.2.7%20", form, "192.0.2.7", []string{"192.0.2.7"}},
		{"form empty", "sending_server=", form, "", []string{}},
		{"json host name", `{"sending_server": "MX.Sender.Example."}`, asJSON, "mx.sender.example", []string{"192.0.2.25", "2001:db8::25"}},
		{"json charset", `{"sending_server": "2001:DB8::7"}`, []string{"Content-Type", "application/json; charset=utf-8"}, "2001:db8::7", []string{"2001:db8::7"}},
		{"json empty body", ``, asJSON, "", []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.do(t, "POST", "/api/v1/tests", strings.NewReader(tc.body), tc.hdr...)
			if resp.StatusCode != http.StatusCreated {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			validate(t, sch["test-created"], body)
			var a addresses
			if err := json.Unmarshal(body, &a); err != nil {
				t.Fatal(err)
			}
			if a.SendingServer != tc.server || !slices.Equal(a.SendingAddresses, tc.addrs) {
				t.Errorf("answer: sending server %q %v, want %q %v", a.SendingServer, a.SendingAddresses, tc.server, tc.addrs)
			}
			st, err := e.st.Test(t.Context(), a.ID)
			if err != nil {
				t.Fatal(err)
			}
			var stored []string
			for _, ip := range st.SendingAddrs {
				stored = append(stored, ip.String())
			}
			if st.SendingServer != tc.server || !slices.Equal(stored, tc.addrs) && len(tc.addrs) > 0 {
				t.Errorf("stored: %q %v", st.SendingServer, stored)
			}
			// The creator's network is kept, not its address.
			if st.CreatorPrefix != netip.MustParsePrefix("127.0.0.0/24") {
				t.Errorf("creator prefix %v", st.CreatorPrefix)
			}
		})
	}

	// The home page's form.
	resp, body := e.do(t, "GET", "/", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `name="sending_server"`) {
		t.Fatalf("home page has no sending server field: %s", body)
	}
	resp, _ = e.do(t, "POST", "/start", strings.NewReader("sending_server=mx.sender.example"), form...)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start page: %d", resp.StatusCode)
	}
	key := strings.TrimPrefix(resp.Header.Get("Location"), "/t/")
	if st, err := e.st.TestByOwnerKey(t.Context(), key); err != nil || st.SendingServer != "mx.sender.example" || len(st.SendingAddrs) != 2 {
		t.Fatalf("test started by the form: %+v, %v", st, err)
	}
	resp, body = e.do(t, "GET", "/t/"+key, nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "mx.sender.example") || !strings.Contains(string(body), "192.0.2.25, 2001:db8::25") {
		t.Errorf("live page does not name the sending server: %s", body)
	}

	// Bad input: 400 with a clear message, nothing stored.
	before := e.testCount(t)
	for _, tc := range []struct {
		name, body string
		hdr        []string
		want       string
	}{
		{"not a host", "sending_server=not+a+host", form, "host name"},
		{"mail address", "sending_server=jane%40sender.example", form, "mail address"},
		{"no such host", "sending_server=missing.sender.example", form, "does not exist"},
		{"unspecified", `{"sending_server": "0.0.0.0"}`, asJSON, "not the address of a mail server"},
		{"misspelt key", `{"sending-server": "192.0.2.7"}`, asJSON, "unknown field"},
		{"broken JSON", `{"sending_server": `, asJSON, "JSON"},
		{"two values", `{"sending_server": "192.0.2.7"} {}`, asJSON, "more than one"},
		{"wrong type", `{"sending_server": 7}`, asJSON, "JSON"},
		{"other content type", "192.0.2.7", []string{"Content-Type", "text/plain"}, "content type"},
		{"body without type", "sending_server=192.0.2.7", nil, "content type"},
		{"too long", "sending_server=" + strings.Repeat("a", maxStartBody), form, "form"},
	} {
		resp, body := e.do(t, "POST", "/api/v1/tests", strings.NewReader(tc.body), tc.hdr...)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s: %d %s, want 400 saying %q", tc.name, resp.StatusCode, body, tc.want)
			continue
		}
		validate(t, sch["error"], body)
	}
	resp, body = e.do(t, "POST", "/start", strings.NewReader("sending_server=not+a+host"), form...)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "host name") {
		t.Errorf("start page, bad sending server: %d %s", resp.StatusCode, body)
	}
	if n := e.testCount(t); n != before {
		t.Errorf("%d tests stored by bad requests", n-before)
	}

	// Without a resolver host names cannot be taken (503); addresses can.
	e = newEnv(t, nil)
	resp, body = e.do(t, "POST", "/api/v1/tests", strings.NewReader(`{"sending_server": "mx.sender.example"}`), asJSON...)
	if resp.StatusCode != http.StatusServiceUnavailable || e.testCount(t) != 0 {
		t.Errorf("host name without a resolver: %d %s", resp.StatusCode, body)
	}
	if resp, body = e.do(t, "POST", "/api/v1/tests", strings.NewReader(`{"sending_server": "192.0.2.7"}`), asJSON...); resp.StatusCode != http.StatusCreated {
		t.Errorf("address without a resolver: %d %s", resp.StatusCode, body)
	}
}

// untiedIDs returns the ids of a report's untied connections.
func untiedIDs(ans TestAnswer) []int64 {
	var out []int64
	for _, u := range ans.Report.Untied {
		out = append(out, u.ID)
	}
	return out
}

func TestLiveShowsUntiedFromUserNetworks(t *testing.T) {
	sch := schemas(t)
	e := newEnv(t, nil)
	ctx := t.Context()
	created := e.now.Add(-30 * time.Minute)
	keys := map[string]string{}
	mk := func(id string) {
		keys[id] = e.ownedTest(t, store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen,
			SendingServer: "192.0.2.25", SendingAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.25")},
			CreatorPrefix: netip.MustParsePrefix("198.51.100.0/24")})
	}
	mk("livetestaaaaaaaa")
	conn := func(client string, at time.Duration, ended bool, key string) store.SMTPConnection {
		c := store.SMTPConnection{Started: e.now.Add(at), Client: netip.MustParseAddrPort(client + ":4000"), ClientKey: key,
			Persona: 0, CertPersona: 2, State: store.StateSniSeen, Error: "TLS handshake: remote error: tls: bad certificate"}
		if ended {
			c.Ended = c.Started.Add(time.Second)
		}
		if err := e.st.InsertConnection(ctx, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	fromServer := conn("192.0.2.25", -10*time.Minute, true, "192.0.2.0/24")  // the sending server: tied
	open := conn("192.0.2.25", -time.Minute, false, "192.0.2.0/24")          // still open: untied, shown
	neighbour := conn("192.0.2.99", -9*time.Minute, true, "192.0.2.0/24")    // the server's network: shown
	browser := conn("198.51.100.7", -8*time.Minute, true, "198.51.100.0/24") // the creator's network: shown
	stranger := conn("203.0.113.7", -7*time.Minute, true, "203.0.113.0/24")  // another network: never shown
	beforeTest := conn("192.0.2.99", -40*time.Minute, true, "192.0.2.0/24")  // before the test: not shown
	others := conn("198.51.100.8", -6*time.Minute, true, "198.51.100.0/24")  // another test's
	if _, err := e.st.TieConnections(ctx, "othertestaaaaaaa", others.Client.Addr(), others.Started, others.Started.Add(time.Second)); err != nil {
		t.Fatal(err)
	}

	ans := e.apiReport(t, "livetestaaaaaaaa", keys["livetestaaaaaaaa"])
	if got, want := untiedIDs(ans), []int64{open.ID, browser.ID, neighbour.ID}; !slices.Equal(got, want) {
		t.Errorf("untied %v, want %v newest first (not %d another network's, %d before the test, %d another test's)",
			got, want, stranger.ID, beforeTest.ID, others.ID)
	}
	if len(ans.Report.History) != 1 || ans.Report.History[0].ID != fromServer.ID || ans.Report.History[0].TiedBy != store.TiedBySendingServer {
		t.Errorf("history %+v, want connection %d tied by the sending server", ans.Report.History, fromServer.ID)
	}
	if len(ans.Report.Untied) != 3 {
		t.Fatalf("%d untied connections", len(ans.Report.Untied))
	}
	if u := ans.Report.Untied[1]; u.Client != "198.51.100.7" || u.Server != 2 || u.SNI || u.State != "SniSeen" || !strings.Contains(u.Failure, "bad certificate") {
		t.Errorf("untied line %+v", u)
	}
	if ans.Report.TieNote != "" {
		t.Errorf("tie note %q without another test naming the server", ans.Report.TieNote)
	}

	// The live page lists them, and so does its event stream.
	resp, body := e.do(t, "GET", "/t/"+keys["livetestaaaaaaaa"], nil)
	page := string(body)
	if resp.StatusCode != 200 || !strings.Contains(page, "from 198.51.100.7 (Server 2, no SNI, SniSeen): TLS handshake") || strings.Contains(page, "203.0.113.7") {
		t.Errorf("live page: %s", page)
	}
	ev := firstEvent(t, e, "/t/"+keys["livetestaaaaaaaa"]+"/events")
	if len(ev.Untied) != 3 {
		t.Errorf("event has %d untied connections, want 3", len(ev.Untied))
	}

	// A second open test naming the same server: later connections from it
	// are tied to neither, and both pages say why.
	mk("livetestbbbbbbbb")
	later := conn("192.0.2.25", -30*time.Second, true, "192.0.2.0/24")
	for _, id := range []string{"livetestaaaaaaaa", "livetestbbbbbbbb"} {
		_, body := e.do(t, "GET", "/api/v1/tests/"+id, nil, bearer(keys[id])...)
		validate(t, sch["report"], body)
		var ans TestAnswer
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(untiedIDs(ans), later.ID) || !strings.Contains(ans.Report.TieNote, "192.0.2.25 could belong to this test or to another") ||
			strings.Contains(ans.Report.TieNote, "livetest") {
			t.Errorf("%s: untied %v, note %q", id, untiedIDs(ans), ans.Report.TieNote)
		}
	}
}

// firstEvent reads the first report of an event stream.
func firstEvent(t *testing.T, e *env, path string) (r struct {
	Untied []json.RawMessage `json:"untied"`
}) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			if err := json.Unmarshal([]byte(data), &r); err != nil {
				t.Fatal(err)
			}
			return r
		}
	}
	t.Fatalf("no event: %v", sc.Err())
	return r
}
