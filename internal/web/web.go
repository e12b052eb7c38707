// Package web is mailsec's web UI and JSON API (docs/web.md, docs/api.md):
// net/http and html/template, no framework.
//
// Pages: the home page (what the test does, what is processed and kept),
// "start a test" (per-test addresses and a private link), the live page of
// a test (connections as they happen, by server-sent events), the report
// page (the result mail's content), the inbound check form, and the public
// provider table. Every page and API answer reads the store through
// reportsource.Source, so the web, the API and the result mail agree.
//
// Privacy (GDPR): a test's pages open only with one of its owner keys
// (owner.go; the test id is in its mail addresses, so it opens nothing);
// every address on a page is redacted by internal/report; logs name tests,
// not people, and never a key; tests are deleted after web.retention by the
// service's retention purge (internal/retention; Options.Retention is what
// the home page says) or at once with the delete button.
package web

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/listen"
	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/providernotes"
	"github.com/mailsec/mailsec/internal/ratelimit"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/reportsource"
	"github.com/mailsec/mailsec/internal/sendingserver"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/testslot"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages are the templates; t is a message of the catalogues in the page's
// language, {{t .Lang "key" args…}} (docs/i18n.md).
var pages = template.Must(template.New("pages").Funcs(template.FuncMap{
	"t": func(l i18n.Lang, key string, args ...any) string { return i18n.T(l, key, args...) },
	// tx: a fixed English text of another package (a provider cell's
	// "yes"), in the page's language where the catalogue has it.
	"tx": func(l i18n.Lang, english string) string { return i18n.Text(l, english) },
	// why: a verdict's reason (the provider table's comments), read piece
	// by piece (report.LocalizeWhy).
	"why": report.LocalizeWhy,
	// th: a message with markup of its own (keys ending in ".html");
	// the catalogue's, never input, and i18n.HTML escapes the arguments.
	"th": func(l i18n.Lang, key string, args ...any) template.HTML {
		return template.HTML(i18n.HTML(l, key, args...)) //nolint:gosec // the catalogue's markup, arguments escaped
	},
}).ParseFS(templateFS, "templates/*.html"))

// CheckFunc runs an inbound check of a domain and returns its JSON report
// (schema mailsec.check.v1, internal/inbound).
type CheckFunc func(ctx context.Context, domain string) ([]byte, error)

// Options configure the web server.
type Options struct {
	Source       reportsource.Source
	ZoneA, ZoneB string // without trailing dot
	// Slots are the test slots new tests get (zones.slots, slot_rest;
	// docs/dns.md "Test slots"); Count 0: every test uses the shared
	// names.
	Slots     store.SlotRules
	Providers []string
	// ProviderNotes are the operator's comment and footnotes per provider
	// (web.provider_notes_file), shown in its row.
	ProviderNotes providernotes.Notes
	Retention     time.Duration // shown on the home page; internal/retention deletes
	StartLimit    int           // new tests per client address and hour
	CheckLimit    int           // inbound checks per client address and hour
	Check         CheckFunc
	// Resolver resolves the host name of a sending server named at the
	// start of a test (the service's own resolver, internal/resolver);
	// nil: only IP addresses are taken.
	Resolver sendingserver.Querier
	// EventInterval is how often the live page's event stream looks at
	// the store after a change (default 1s); while the report stays the
	// same the wait doubles up to EventMaxWait (default 10s). EventMax
	// ends a stream (default 30 min; the browser reconnects).
	EventInterval time.Duration
	EventMaxWait  time.Duration
	EventMax      time.Duration
	// MaxStreams and MaxStreamsPerClient bound the open event streams
	// (default 200 and 4; events.go).
	MaxStreams, MaxStreamsPerClient int
	// ReadTimeout bounds reading a whole request, body included (default
	// 30s).
	ReadTimeout time.Duration
	// CheckConcurrency bounds the inbound checks of the form and the API
	// running at once (default 8); CheckCache is how long a domain's
	// result is reused (default 5m; checklimit.go).
	CheckConcurrency int
	CheckCache       time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (proxy.go); empty: the peer is the client.
	TrustedProxies []netip.Prefix
	// Hostnames are the names (host or host:port; the port is ignored)
	// under which private pages answer (private.go); empty: any.
	Hostnames []string
	Logger    *slog.Logger
	Now       func() time.Time
}

// Server serves the UI and the API.
type Server struct {
	o      Options
	log    *slog.Logger
	starts *ratelimit.Window
	checks *ratelimit.Window
	mux    *http.ServeMux
	// hostnames is Options.Hostnames as a set; nil: any host.
	hostnames map[string]bool
	streams   streamSlots
	// checkSlots holds a token per inbound check running.
	checkSlots chan struct{}
}

// New returns a Server.
func New(o Options) *Server {
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	option.Positive(&o.EventInterval, time.Second)
	option.Positive(&o.EventMax, 30*time.Minute)
	option.Positive(&o.EventMaxWait, 10*time.Second)
	option.Positive(&o.MaxStreams, 200)
	option.Positive(&o.MaxStreamsPerClient, 4)
	option.Positive(&o.ReadTimeout, 30*time.Second)
	option.Positive(&o.CheckConcurrency, 8)
	option.Positive(&o.CheckCache, 5*time.Minute)
	if o.Check != nil {
		o.Check = (&checkCache{check: o.Check, ttl: o.CheckCache, now: o.Now}).run
	}
	option.Positive(&o.Retention, 30*24*time.Hour)
	s := &Server{o: o, log: o.Logger, starts: ratelimit.New(max(o.StartLimit, 1), time.Hour, o.Now),
		checks: ratelimit.New(max(o.CheckLimit, 1), time.Hour, o.Now), mux: http.NewServeMux(), hostnames: hostSet(o.Hostnames),
		checkSlots: make(chan struct{}, o.CheckConcurrency)}
	static, _ := fs.Sub(staticFS, "static")
	m := s.mux
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /{$}", s.home)
	m.HandleFunc("POST /start", s.startPage)
	// A test's own pages by its owner key, the API by the test id with
	// the key in Authorization (owner.go).
	m.HandleFunc("GET /t/{key}", s.live)
	m.HandleFunc("GET /t/{key}/report", s.reportPage)
	m.HandleFunc("GET /t/{key}/events", s.events)
	m.HandleFunc("POST /t/{key}/delete", s.deletePage)
	m.HandleFunc("GET /check", s.checkPage)
	m.HandleFunc("POST /check", s.checkPage)
	m.HandleFunc("GET /providers", s.providersPage)
	m.HandleFunc("GET /providers.json", s.apiProviders)
	m.HandleFunc("GET /providers.csv", s.providersCSV)
	m.HandleFunc("GET /providers/{domain}", s.providerPage)
	m.HandleFunc("GET /api", s.apiIndex)
	m.HandleFunc("POST /api/v1/tests", s.apiStart)
	m.HandleFunc("GET /api/v1/tests/{id}", s.apiTest)
	m.HandleFunc("DELETE /api/v1/tests/{id}", s.apiDelete)
	m.HandleFunc("GET /api/v1/tests/{id}/events", s.events)
	m.HandleFunc("GET /api/v1/providers", s.apiProviders)
	m.HandleFunc("GET /api/v1/providers/{domain}", s.apiProvider)
	m.HandleFunc("POST /api/v1/check", s.apiCheck)
	return s
}

// ServeHTTP adds the security headers to every answer.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.forwardedClient(r)
	h := w.Header()
	// Inline styles are the report's (shared with the mail); scripts only
	// from our own static files.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer") // the private link must not leak to other sites
	if r.Method == http.MethodPost && !sameOrigin(r) {
		http.Error(w, "cross-site form post refused", http.StatusForbidden)
		return
	}
	if !s.guardPrivate(w, r) {
		return
	}
	release, ok := s.guardCheck(w, r)
	if !ok {
		return
	}
	defer release()
	s.mux.ServeHTTP(w, r)
}

// sameOrigin refuses cross-site form posts (the delete button). Browsers
// send Sec-Fetch-Site (Fetch Metadata); with Referrer-Policy no-referrer
// their Origin is "null", so it is only the fallback for older browsers.
// API clients send neither and are allowed.
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "same-origin", "none":
		return true
	case "cross-site", "same-site":
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return true
	}
	return strings.TrimPrefix(strings.TrimPrefix(o, "http://"), "https://") == r.Host
}

// Listen binds the web listeners (host:port). On error it closes the ones
// already opened.
func Listen(ctx context.Context, addrs []string) ([]net.Listener, error) {
	return listen.TCP(ctx, "web", addrs)
}

// Serve serves on the listeners until ctx ends. (The retention purge is
// the service's, internal/retention: it runs without the web server too.)
func (s *Server) Serve(ctx context.Context, ls []net.Listener) error {
	// No WriteTimeout: the event streams set a deadline per write
	// (events.go), and an inbound check may take inbound.timeout.
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: s.o.ReadTimeout, IdleTimeout: time.Minute,
		BaseContext: func(net.Listener) context.Context { return ctx }, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}
	if err := listen.HTTP(ctx, srv, ls, 5*time.Second); err != nil {
		return fmt.Errorf("web: %w", err)
	}
	return nil
}

// clientIP is the rate-limit key: the peer address, or the client behind
// a trusted proxy (forwardedClient), IPv6 by /64.
func clientIP(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	a := ap.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

type addresses struct {
	ID       string `json:"id"`
	AddressA string `json:"address_a"`
	AddressB string `json:"address_b"`
	// URL is the private link (the live page, by an owner key); OwnerKey
	// the key itself, only in the answer that creates the test (the
	// service keeps no copy: this is the one time it is given).
	URL      string    `json:"url"`
	OwnerKey string    `json:"owner_key,omitempty"`
	Created  time.Time `json:"created"`
	// SendingServer is the sending server named at the start ("" for
	// none) and SendingAddresses the addresses it resolved to.
	SendingServer    string   `json:"sending_server"`
	SendingAddresses []string `json:"sending_addresses"`
	// Slot is the test slot the test holds ("s001"; "" for none): then
	// AddressA and AddressB are in its domains, and SharedA and SharedB
	// (the shared names, which reach the test too) differ from them.
	// SlotNote says why a test has no slot.
	Slot     string `json:"slot"`
	SharedA  string `json:"shared_address_a"`
	SharedB  string `json:"shared_address_b"`
	SlotNote string `json:"slot_note,omitempty"`
	// Lang is the language of the test's result mail ("en", "de").
	Lang string `json:"lang"`
}

// addressesOf is the API's description of t, with the private link made
// of ownerKey (the key the request was opened with, or made with t).
func (s *Server) addressesOf(t store.Test, ownerKey string) addresses {
	url := s.o.Source.URL(ownerKey)
	if url == "" {
		url = "/t/" + ownerKey
	}
	sa := testslot.Pool{ZoneA: s.o.ZoneA, ZoneB: s.o.ZoneB, Count: s.o.Slots.Count}.AddressesOf(t.ID, t.Slot, t.Kind == store.TestToken)
	a := addresses{ID: t.ID, AddressA: sa.A, AddressB: sa.B, URL: url, Created: t.Created, SendingServer: t.SendingServer,
		SendingAddresses: []string{}, Slot: sa.Slot, SharedA: sa.SharedA, SharedB: sa.SharedB, SlotNote: sa.Note, Lang: i18n.Lang(t.Lang).Or(i18n.English).String()}
	for _, ip := range t.SendingAddrs {
		a.SendingAddresses = append(a.SendingAddresses, ip.String())
	}
	return a
}

// errRateLimited is the answer past a limit.
var errRateLimited = errors.New("too many requests from your address; try again in an hour")

// newTest starts a test for the request, with the sending server its body
// names (sending_server, optional), and its owner key (t.OwnerKey: the
// caller gives it to the creator, once); on failure it returns the HTTP
// status and an error to show.
func (s *Server) newTest(w http.ResponseWriter, r *http.Request) (store.Test, int, error) {
	input, err := sendingServerInput(w, r)
	if err != nil {
		return store.Test{}, http.StatusBadRequest, err
	}
	// The result mail's language: as asked, else the page's (docs/i18n.md).
	lang := i18n.FromRequest(r)
	if input.Lang != "" {
		if lang, err = i18n.Parse(input.Lang); err != nil {
			return store.Test{}, http.StatusBadRequest, fmt.Errorf("%w: lang: %w", errBadStart, err)
		}
	}
	if !s.starts.Allow(clientIP(r)) {
		return store.Test{}, http.StatusTooManyRequests, errRateLimited
	}
	srv, code, err := s.resolveSendingServer(r.Context(), input.SendingServer)
	if err != nil {
		return store.Test{}, code, err
	}
	id, err := store.NewTestID()
	if err != nil {
		return store.Test{}, http.StatusInternalServerError, err
	}
	key, err := store.NewOwnerKey()
	if err != nil {
		return store.Test{}, http.StatusInternalServerError, err
	}
	now := s.o.Now().UTC()
	t := store.Test{ID: id, Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen,
		SendingServer: srv.Name, SendingAddrs: srv.Addrs, CreatorPrefix: s.creatorPrefix(r), OwnerKey: key, Lang: string(lang)}
	t, err = s.o.Source.Store.CreateSlotTest(r.Context(), t, s.o.Slots)
	if err != nil {
		return store.Test{}, http.StatusInternalServerError, err
	}
	s.log.Info("web: test started", "test", id, "sending_server", srv.Name != "", "slot", t.Slot)
	return t, http.StatusCreated, nil
}

// load makes the report of the test the request's owner key opens
// (owned); ok false after an error answer was written. key is the key.
func (s *Server) load(w http.ResponseWriter, r *http.Request, asJSON bool) (rep report.Report, in report.Input, key string, ok bool) {
	t, key, err := s.owned(r)
	if err == nil {
		rep, in, err = s.build(r.Context(), t.ID, key, s.o.Now(), i18n.FromRequest(r))
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(w, r, asJSON, http.StatusNotFound, errNoSuchTest)
		return report.Report{}, in, "", false
	case err != nil:
		s.log.Error("web: loading a test", "test", t.ID, "err", err)
		s.fail(w, r, asJSON, http.StatusInternalServerError, "internal error")
		return report.Report{}, in, "", false
	}
	return rep, in, key, true
}

// fail answers an error as a page or as JSON {"error": ...}.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, asJSON bool, code int, msg string) {
	if asJSON {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	w.WriteHeader(code)
	// The page in the reader's language where the message is a fixed one
	// (i18n.Text); the API keeps the English.
	s.render(w, r, "message.html", map[string]any{"Title": http.StatusText(code), "Message": i18n.Text(i18n.FromRequest(r), msg)})
}

// render writes a page in the reader's language (i18n.FromRequest): the
// language switch's ?lang= is kept in a cookie, so that the next page
// reads the same without JavaScript.
func (s *Server) render(w http.ResponseWriter, r *http.Request, name string, data map[string]any) {
	lang := i18n.FromRequest(r)
	if q := r.URL.Query().Get("lang"); q != "" && lang.String() == q {
		http.SetCookie(w, &http.Cookie{Name: i18n.Cookie, Value: lang.String(), Path: "/", MaxAge: 365 * 24 * 3600,
			SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil})
	}
	if w.Header().Get("Content-Type") == "" {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
	}
	data["Lang"] = lang
	if err := pages.ExecuteTemplate(w, name, data); err != nil {
		s.log.Error("web: rendering", "page", name, "err", err)
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
