package resultmail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// ErrNoInbound is returned by an InboundFunc when there is no inbound check
// to show (none was run and none will be: the domain is missing, or the
// service has no inbound checker).
var ErrNoInbound = errors.New("resultmail: no inbound check")

// InboundFunc returns the stored inbound check of a test's sender domain
// (JSON, schema mailsec.check.v1; internal/inbound writes it): nil and no
// error while it is pending, ErrNoInbound when there is none.
type InboundFunc func(ctx context.Context, testID, domain string) ([]byte, error)

// Source reads tests and makes their reports: the one place the result
// mail, the web pages and the API get a report from, so they agree.
type Source struct {
	Store        *store.Store
	ZoneA, ZoneB string // without trailing dot
	// DowngradeWindow, Quiet (timing.ack_after) and the client prefixes
	// are the service's timing and smtp settings, as the verdict needs them.
	DowngradeWindow  time.Duration
	Quiet            time.Duration
	PrefixV4         int
	PrefixV6         int
	BaseURL          string // the web UI, e.g. "https://mailsec.example"; "" for none
	Inbound          InboundFunc
	FetchEvidenceAge time.Duration // how far back policy fetches count (0: a week)
}

// URL is the private link of a test's report ("" without a web UI).
func (s Source) URL(testID string) string {
	if s.BaseURL == "" {
		return ""
	}
	return strings.TrimSuffix(s.BaseURL, "/") + "/t/" + testID
}

// Judge computes the live verdict of a test from its recorded history, as
// mailsec verdict does: policy fetches from the sender's network count.
func (s Source) Judge(ctx context.Context, t store.Test, now time.Time) (verdict.Verdict, []store.SMTPConnection, error) {
	conns, err := s.Store.Connections(ctx, store.ConnectionFilter{TestID: t.ID})
	if err != nil {
		return verdict.Verdict{}, nil, err
	}
	age := s.FetchEvidenceAge
	if age == 0 {
		age = 7 * 24 * time.Hour
	}
	var fetches []store.PolicyFetch
	if len(conns) > 0 {
		all, err := s.Store.PolicyFetches(ctx, t.Created.Add(-age), now.Add(time.Second), 10000)
		if err != nil {
			return verdict.Verdict{}, nil, err
		}
		for _, f := range all {
			if f.Status == 200 && verdict.ClientMatches(f.Client.Addr(), conns, s.PrefixV4, s.PrefixV6) {
				fetches = append(fetches, f)
			}
		}
	}
	v := verdict.Judge(verdict.Observations{Connections: conns, PolicyFetches: fetches, Now: now, Quiet: s.Quiet,
		SentToB: !t.AddressedB.IsZero()})
	return v, conns, nil
}

// Load makes the report input of a test: the frozen verdict of a final
// test, the live one otherwise, the result mail's state and the inbound
// check.
func (s Source) Load(ctx context.Context, id string, now time.Time) (report.Input, error) {
	t, err := s.Store.Test(ctx, id)
	if err != nil {
		return report.Input{}, err
	}
	in := report.Input{Test: t, Now: now, DowngradeWindow: s.DowngradeWindow, ZoneA: s.ZoneA, ZoneB: s.ZoneB, URL: s.URL(t.ID)}
	res, rerr := s.Store.Result(ctx, t.ID)
	switch {
	case rerr == nil:
		conns, err := s.Store.Connections(ctx, store.ConnectionFilter{TestID: t.ID})
		if err != nil {
			return in, err
		}
		in.Connections, in.Final = conns, true
		if err := json.Unmarshal(res.Verdict, &in.Verdict); err != nil {
			return in, fmt.Errorf("resultmail: stored verdict of %s: %w", t.ID, err)
		}
		in.Mail = &report.MailStatus{State: res.MailState, Reason: res.MailReason, To: res.Recipient, SentAt: res.Sent, Attempts: res.Attempts}
	case errors.Is(rerr, store.ErrNotFound):
		if in.Verdict, in.Connections, err = s.Judge(ctx, t, now); err != nil {
			return in, err
		}
	default:
		return in, rerr
	}
	in.Inbound, in.InboundNote = s.inbound(ctx, t.ID, domainOf(t.Sender))
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
