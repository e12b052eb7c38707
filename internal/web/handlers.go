package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/store"
)

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	l := i18n.FromRequest(r)
	s.render(w, r, "home.html", map[string]any{"Title": i18n.T(l, "web.title.home"), "Retention": humanDuration(l, s.o.Retention)})
}

func humanDuration(l i18n.Lang, d time.Duration) string {
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return i18n.T(l, "web.days", fmt.Sprint(int64(d/(24*time.Hour))))
	case d >= time.Hour && d%time.Hour == 0:
		return i18n.T(l, "web.hours", fmt.Sprint(int64(d/time.Hour)))
	}
	return d.String()
}

func (s *Server) startPage(w http.ResponseWriter, r *http.Request) {
	t, code, err := s.newTest(w, r)
	if err != nil {
		s.fail(w, r, false, code, s.startError(code, err))
		return
	}
	// The key goes to the creator here, once; the live page says to keep
	// its address.
	http.Redirect(w, r, "/t/"+t.OwnerKey, http.StatusSeeOther)
}

// startError is what a failed start says: the error itself for what the
// client can act on, "internal error" (logged) otherwise.
func (s *Server) startError(code int, err error) string {
	if code == http.StatusInternalServerError {
		s.log.Error("web: starting a test", "err", err)
		return "internal error"
	}
	return err.Error()
}

func (s *Server) live(w http.ResponseWriter, r *http.Request) {
	rep, in, key, ok := s.load(w, r, false)
	if !ok {
		return
	}
	a := s.addressesOf(in.Test, key)
	s.render(w, r, "live.html", map[string]any{"Title": i18n.T(rep.Lang, "web.title.test", rep.Test), "ID": rep.Test, "Key": key, "AddressA": a.AddressA, "AddressB": a.AddressB, "SlotNote": a.SlotNote,
		"Report": rep, "SendingAddresses": strings.Join(a.SendingAddresses, ", ")})
}

func (s *Server) reportPage(w http.ResponseWriter, r *http.Request) {
	rep, _, key, ok := s.load(w, r, false)
	if !ok {
		return
	}
	frag, err := report.Fragment(rep)
	if err != nil {
		s.log.Error("web: rendering a report", "test", rep.Test, "err", err)
		s.fail(w, r, false, http.StatusInternalServerError, "internal error")
		return
	}
	s.render(w, r, "report.html", map[string]any{"Title": i18n.T(rep.Lang, "web.title.report", rep.Test), "ID": rep.Test, "Key": key, "Fragment": frag})
}

func (s *Server) deletePage(w http.ResponseWriter, r *http.Request) {
	if code, msg := s.delete(r); code != http.StatusNoContent {
		s.fail(w, r, false, code, msg)
		return
	}
	s.render(w, r, "message.html", map[string]any{"Title": i18n.T(i18n.FromRequest(r), "web.title.deleted"), "Message": i18n.T(i18n.FromRequest(r), "web.deleted")})
}

// delete deletes the test the request's owner key opens (owned).
func (s *Server) delete(r *http.Request) (int, string) {
	t, _, err := s.owned(r)
	if err == nil {
		err = s.o.Source.Store.DeleteTest(r.Context(), t.ID)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, errNoSuchTest
	case err != nil:
		s.log.Error("web: deleting a test", "test", t.ID, "err", err)
		return http.StatusInternalServerError, "internal error"
	}
	s.log.Info("web: test deleted by its owner", "test", t.ID)
	return http.StatusNoContent, ""
}

// runCheck validates, rate-limits and runs one inbound check.
func (s *Server) runCheck(r *http.Request, domain string) ([]byte, int, error) {
	if s.o.Check == nil {
		return nil, http.StatusServiceUnavailable, errors.New("the inbound check is not available on this service")
	}
	// The check's own normalisation (IDN to A-labels, case, one trailing
	// dot), so that what the check would refuse is refused here as bad
	// input (400), not reported as a failed check (502).
	d, err := dnsname.NormalizeDomain(domain)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	if !s.checks.Allow(clientIP(r)) {
		return nil, http.StatusTooManyRequests, errRateLimited
	}
	js, err := s.o.Check(r.Context(), d)
	if err != nil {
		s.log.Warn("web: inbound check failed", "domain", d, "err", err)
		return nil, http.StatusBadGateway, fmt.Errorf("the check of %s failed: %s", d, report.RedactText(err.Error()))
	}
	return js, http.StatusOK, nil
}

func (s *Server) checkPage(w http.ResponseWriter, r *http.Request) {
	data := map[string]any{"Title": i18n.T(i18n.FromRequest(r), "web.title.check"), "Available": s.o.Check != nil, "Limit": s.o.CheckLimit}
	if r.Method == http.MethodPost {
		domain := r.PostFormValue("domain")
		data["Domain"] = domain
		js, code, err := s.runCheck(r, domain)
		if err != nil {
			w.WriteHeader(code)
			data["Error"] = err.Error()
		} else {
			var ib report.Inbound
			if err := json.Unmarshal(js, &ib); err != nil {
				data["Error"] = "unreadable check report"
			} else {
				data["Result"] = ib
			}
		}
	}
	s.render(w, r, "check.html", data)
}

func (s *Server) apiIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, `mailsec JSON API v1 (docs/api.md; schemas in docs/api/)

POST   /api/v1/tests              start a test: its addresses, private URL and owner key
GET    /api/v1/tests/{id}         the test and its report (live until final)
GET    /api/v1/tests/{id}/events  the report as server-sent events ("report")
DELETE /api/v1/tests/{id}         delete the test and everything recorded for it
GET    /api/v1/providers          the public provider table (also /providers.json, /providers.csv)
GET    /api/v1/providers/{domain} a provider's row and the history of its verdicts
POST   /api/v1/check?domain=D     run the inbound check of a domain (rate-limited)

A test's own routes take its owner key (owner_key in the answer that
created it): "Authorization: Bearer <owner_key>"; without it, or with a
wrong one, they answer 404.
`)
}

func (s *Server) apiStart(w http.ResponseWriter, r *http.Request) {
	t, code, err := s.newTest(w, r)
	if err != nil {
		writeJSON(w, code, map[string]string{"error": s.startError(code, err)})
		return
	}
	a := s.addressesOf(t, t.OwnerKey)
	a.OwnerKey = t.OwnerKey // given once, here
	writeJSON(w, http.StatusCreated, a)
}

// TestAnswer is the API's answer for one test.
type TestAnswer struct {
	Test   addresses     `json:"test"`
	Report report.Report `json:"report"`
}

func (s *Server) apiTest(w http.ResponseWriter, r *http.Request) {
	rep, in, key, ok := s.load(w, r, true)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, TestAnswer{Test: s.addressesOf(in.Test, key), Report: rep})
}

func (s *Server) apiDelete(w http.ResponseWriter, r *http.Request) {
	if code, msg := s.delete(r); code != http.StatusNoContent {
		writeJSON(w, code, map[string]string{"error": msg})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) apiCheck(w http.ResponseWriter, r *http.Request) {
	js, code, err := s.runCheck(r, r.URL.Query().Get("domain"))
	if err != nil {
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(js)
}
