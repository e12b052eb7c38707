package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/clientnet"
	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/sendingserver"
	"github.com/mailsec/mailsec/internal/store"
)

// This file holds the sending server a user may name when starting a test
// (docs/smtp.md "Tying connections to a test") and the live page's list of
// the connections from the user's networks that no test claimed yet.

// maxStartBody bounds the body of a start request: one short field.
const maxStartBody = 4 << 10

// Bounds of the live page's list of untied connections.
const (
	untiedWindow = time.Hour
	untiedLimit  = 50
)

// errBadStart is wrapped by the errors of a start request the client
// must fix (400).
var errBadStart = errors.New("bad request")

// sendingServerInput reads the optional sending server of a start
// request: the form field or JSON key "sending_server". A request without
// a body has none.
func sendingServerInput(w http.ResponseWriter, r *http.Request) (startInput, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxStartBody)
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct != "" && err != nil {
		return startInput{}, fmt.Errorf("%w: content type %q: %v", errBadStart, ct, err)
	}
	switch mt {
	case "application/json":
		var body struct {
			SendingServer string `json:"sending_server"`
			Lang          string `json:"lang"`
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields() // a misspelt key must not silently mean "none"
		if err := dec.Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return startInput{}, fmt.Errorf("%w: JSON body: %v", errBadStart, err)
		}
		if dec.More() {
			return startInput{}, fmt.Errorf("%w: JSON body: more than one value", errBadStart)
		}
		return startInput{SendingServer: body.SendingServer, Lang: body.Lang}, nil
	case "", "application/x-www-form-urlencoded", "multipart/form-data":
		if mt == "multipart/form-data" {
			if err := r.ParseMultipartForm(maxStartBody); err != nil {
				return startInput{}, fmt.Errorf("%w: form: %v", errBadStart, err)
			}
		} else if err := r.ParseForm(); err != nil {
			return startInput{}, fmt.Errorf("%w: form: %v", errBadStart, err)
		}
		if mt == "" {
			// No content type: a bodyless POST (the API as it always was).
			if n, _ := io.Copy(io.Discard, io.LimitReader(r.Body, 1)); n > 0 {
				return startInput{}, fmt.Errorf("%w: a body needs a content type (application/json or application/x-www-form-urlencoded)", errBadStart)
			}
			return startInput{}, nil
		}
		return startInput{SendingServer: r.PostForm.Get("sending_server"), Lang: r.PostForm.Get("lang")}, nil
	}
	return startInput{}, fmt.Errorf("%w: content type %q (application/json or application/x-www-form-urlencoded)", errBadStart, mt)
}

// startInput is what a start request names: the sending server
// (optional) and the language of the result mail ("lang", optional:
// default the language of the request, i18n.FromRequest).
type startInput struct {
	SendingServer string
	Lang          string
}

// resolveSendingServer resolves the user's input to a sending server, with
// the HTTP status of a failure.
func (s *Server) resolveSendingServer(ctx context.Context, input string) (sendingserver.Server, int, error) {
	var q sendingserver.Querier
	if s.o.Resolver != nil {
		q = s.o.Resolver
	}
	srv, err := sendingserver.Resolve(ctx, q, input)
	switch {
	case err == nil:
		return srv, http.StatusCreated, nil
	case errors.Is(err, sendingserver.ErrInvalid):
		return srv, http.StatusBadRequest, fmt.Errorf("sending server: %s", errText(err))
	case errors.Is(err, resolver.ErrNoResolver):
		return srv, http.StatusServiceUnavailable, errors.New("sending server: this service cannot resolve host names; give an IP address")
	}
	s.log.Warn("web: resolving a sending server", "err", err)
	return srv, http.StatusBadGateway, fmt.Errorf("sending server: %s", errText(err))
}

// errText is an error for a user: without the package prefixes of the
// sentinels, which say nothing to them.
func errText(err error) string {
	return report.RedactText(strings.NewReplacer("sendingserver: ", "", "dnsname: ", "", "resolver: ", "").Replace(err.Error()))
}

// creatorPrefix is the network of the request's peer (only the network
// is stored with the test, never the address).
func (s *Server) creatorPrefix(r *http.Request) netip.Prefix {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	rules := s.o.Source.Evidence.Rules.WithDefaults()
	p, _ := clientnet.Prefix(ap.Addr(), rules.PrefixV4, rules.PrefixV6)
	return p
}

// userNetworks are the networks whose untied connections the live page of
// t shows: those of its sending addresses and of its creator.
func (s *Server) userNetworks(t store.Test) []netip.Prefix {
	rules := s.o.Source.Evidence.Rules.WithDefaults()
	var nets []netip.Prefix
	add := func(p netip.Prefix, ok bool) {
		if ok && !slices.Contains(nets, p) {
			nets = append(nets, p)
		}
	}
	for _, a := range t.SendingAddrs {
		add(clientnet.Prefix(a, rules.PrefixV4, rules.PrefixV6))
	}
	if p := t.CreatorPrefix; p.IsValid() {
		add(p.Masked(), true)
	}
	return nets
}

// addUntied adds to an unfinished test's report input the connections no
// test claimed from the user's networks in the last hour (not before the
// test), and the sending addresses it shares with other open tests.
func (s *Server) addUntied(ctx context.Context, in *report.Input, now time.Time) error {
	t := in.Test
	if in.Final || t.State == store.TestFinal {
		return nil
	}
	since := now.Add(-untiedWindow)
	if t.Created.After(since) {
		since = t.Created
	}
	nets := s.userNetworks(t)
	if len(nets) == 0 {
		return nil
	}
	conns, err := s.o.Source.Store.UntiedConnections(ctx, nets, since, untiedLimit)
	if err != nil {
		return err
	}
	shared, err := s.o.Source.Evidence.SharedSendingAddrs(ctx, t)
	if err != nil {
		return err
	}
	in.Untied, in.SharedSendingAddrs = conns, shared
	return nil
}

// build makes the report of test id at now in the reader's language, with
// the live page's untied connections; its link is made of ownerKey, the
// key the request opened the test with.
func (s *Server) build(ctx context.Context, id, ownerKey string, now time.Time, lang i18n.Lang) (report.Report, report.Input, error) {
	in, err := s.o.Source.Load(ctx, id, now)
	if err != nil {
		return report.Report{}, in, err
	}
	in.Lang = lang
	in.URL = s.o.Source.URL(ownerKey)
	if err := s.addUntied(ctx, &in, now); err != nil {
		return report.Report{}, in, err
	}
	return report.Build(in), in, nil
}
