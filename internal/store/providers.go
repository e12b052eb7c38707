package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file holds the history of the public providers' verdicts
// (migration 0029, docs/providers.md).

// ProviderVerdict is one final verdict of a provider's test: what the
// provider table's history shows, one per provider and day (UTC; the
// day's last test counts). It names no person: the test id is cleared
// when the test is deleted, the row stays.
type ProviderVerdict struct {
	Domain   string
	Final    time.Time
	TestID   string // "" once the test is deleted
	Policy   string
	Colour   string
	Complete bool
}

// maxProviderHistory bounds one provider's history as read.
const maxProviderHistory = 1000

func validProviderVerdict(p ProviderVerdict) error {
	switch {
	case p.Domain == "":
		return errors.New("provider verdict: empty domain")
	case p.Final.IsZero():
		return fmt.Errorf("provider verdict of %s: final time not set", p.Domain)
	case p.Colour == "":
		return fmt.Errorf("provider verdict of %s: no colour", p.Domain)
	}
	return nil
}

func providerVerdictArgs(p ProviderVerdict) []any {
	return []any{strings.ToLower(p.Domain), p.Final.UTC().Format(time.DateOnly), clampToNanos(p.Final), strings.ToLower(p.TestID), p.Policy, p.Colour,
		boolToInt(p.Complete)}
}

// upsertProviderVerdict keeps the day's newest verdict of a provider: the
// table's size is bounded by web.providers and the days, not by how many
// tests people run.
const upsertProviderVerdict = `INSERT INTO provider_verdicts (domain, day, final_ns, test_id, policy, colour, complete) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (domain, day) DO UPDATE SET final_ns = excluded.final_ns, test_id = excluded.test_id, policy = excluded.policy,
    colour = excluded.colour, complete = excluded.complete
WHERE excluded.final_ns >= provider_verdicts.final_ns`

// ProviderHistory returns the recorded verdicts of a provider's tests, one
// per day, newest first, at most limit (0 or more than 1,000: 1,000).
func (s *Store) ProviderHistory(ctx context.Context, domain string, limit int) ([]ProviderVerdict, error) {
	if limit <= 0 || limit > maxProviderHistory {
		limit = maxProviderHistory
	}
	return queryRows(ctx, s.db, "provider history of "+domain, scanProviderVerdict, s.q(`SELECT domain, final_ns, test_id, policy, colour, complete
FROM provider_verdicts WHERE domain = ? ORDER BY final_ns DESC LIMIT ?`), strings.ToLower(domain), int64(limit))
}

func scanProviderVerdict(row rowScanner) (ProviderVerdict, error) {
	var (
		p        ProviderVerdict
		final    int64
		complete int64
	)
	if err := row.Scan(&p.Domain, &final, &p.TestID, &p.Policy, &p.Colour, &complete); err != nil {
		return ProviderVerdict{}, err
	}
	p.Final, p.Complete = nanosToTime(final), complete != 0
	return p, nil
}
