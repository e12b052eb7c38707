// Package reportsource reads tests and makes their reports: the one place
// the web pages, the API, the CLI and the result mail get a report from,
// so they agree. A final test shows its frozen verdict (internal/finalise
// stored it); an unfinished one the live verdict from its evidence
// (internal/evidence), as the finaliser would judge it now.
package reportsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
)

// ErrNoInbound is returned by an InboundFunc when there is no inbound check
// to show (none was run and none will be: the domain is missing, or the
// service has no inbound checker).
var ErrNoInbound = errors.New("reportsource: no inbound check")

// InboundFunc returns the stored inbound check of a test's sender domain
// (JSON, schema mailsec.check.v1; internal/inbound writes it): nil and no
// error while it is pending, ErrNoInbound when there is none.
type InboundFunc func(ctx context.Context, testID, domain string) ([]byte, error)

// Source reads tests and makes their reports.
type Source struct {
	Store *store.Store
	// Evidence gathers an unfinished test's observations for its live
	// verdict.
	Evidence     evidence.Gatherer
	ZoneA, ZoneB string // without trailing dot
	// DowngradeWindow is timing.downgrade_window, which the report
	// explains.
	DowngradeWindow time.Duration
	BaseURL         string // the web UI, e.g. "https://mailsec.example"; "" for none
	Inbound         InboundFunc
}

// URL is the private link of a test's live page and report, opened by
// one of the test's owner keys (store.NewOwnerKey; docs/web.md "Owner
// keys"); "" without a web UI.
func (s Source) URL(ownerKey string) string {
	if s.BaseURL == "" {
		return ""
	}
	return strings.TrimSuffix(s.BaseURL, "/") + "/t/" + ownerKey
}

// Load makes the report input of a test: the frozen verdict of a final
// test, the live one otherwise, the result mail's state and the inbound
// check. Its URL is left empty: the test ID opens nothing, and the store
// keeps no key; the caller that holds one sets it (URL).
func (s Source) Load(ctx context.Context, id string, now time.Time) (report.Input, error) {
	t, err := s.Store.Test(ctx, id)
	if err != nil {
		return report.Input{}, err
	}
	// The test's own language (its result mail's); the web shows a
	// report in the reader's language instead (Input.Lang set after).
	in := report.Input{Test: t, Now: now, DowngradeWindow: s.DowngradeWindow, ZoneA: s.ZoneA, ZoneB: s.ZoneB, Lang: i18n.Lang(t.Lang)}
	res, rerr := s.Store.Result(ctx, t.ID)
	switch {
	case rerr == nil:
		conns, err := s.Store.Connections(ctx, store.ConnectionFilter{TestID: t.ID})
		if err != nil {
			return in, err
		}
		in.Connections, in.Final = conns, true
		if err := json.Unmarshal(res.Verdict, &in.Verdict); err != nil {
			return in, fmt.Errorf("reportsource: stored verdict of %s: %w", t.ID, err)
		}
		in.Mail = &report.MailStatus{State: res.MailState, Reason: res.MailReason, To: res.Recipient, SentAt: res.Sent, Attempts: res.Attempts}
		// The look-ups of its slot and the policy fetches, while it was
		// open (the live evidence's rule); the verdict stays the frozen one.
		obs, err := s.Evidence.Gather(ctx, t, now)
		if err != nil {
			return in, err
		}
		in.DNSLookups, in.PolicyFetches, in.TLSRPT = obs.DNSLookups, obs.PolicyFetches, obs.TLSRPT
	case errors.Is(rerr, store.ErrNotFound):
		v, obs, err := s.Evidence.Judge(ctx, t, now)
		if err != nil {
			return in, err
		}
		in.Verdict, in.Connections, in.DNSLookups, in.PolicyFetches, in.TLSRPT = v, obs.Connections, obs.DNSLookups, obs.PolicyFetches, obs.TLSRPT
	default:
		return in, rerr
	}
	in.Inbound, in.InboundNote = s.inbound(ctx, t.ID, resultmail.SenderDomain(t.Sender))
	return in, nil
}

func (s Source) inbound(ctx context.Context, testID, domain string) (*report.Inbound, string) {
	if domain == "" {
		return nil, "Inbound check pending: the sender's domain is not known yet."
	}
	if s.Inbound == nil {
		return nil, "Inbound check not available."
	}
	js, err := s.Inbound(ctx, testID, domain)
	switch {
	case errors.Is(err, ErrNoInbound):
		return nil, "Inbound check not available."
	case err != nil:
		return nil, "Inbound check not available (" + report.RedactText(err.Error()) + ")."
	case js == nil:
		return nil, "Inbound check of " + domain + " pending."
	}
	var ib report.Inbound
	if err := json.Unmarshal(js, &ib); err != nil {
		return nil, "Inbound check not available (unreadable report)."
	}
	return &ib, ""
}
