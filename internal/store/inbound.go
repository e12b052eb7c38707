package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// InboundCheck is the stored report of an inbound check (internal/inbound)
// of a test's sender domain.
type InboundCheck struct {
	ID      int64
	TestID  string // "" for a check tied to no test
	Domain  string // A-label, lower case, no trailing dot
	Checked time.Time
	Stored  time.Time
	Colour  string
	Report  []byte // JSON, schema mailsec.check.v1
}

// maxInboundReport bounds a stored report: a check of ten MX hosts with
// four addresses each stays far below it.
const maxInboundReport = 1 << 20

// AddInboundCheck stores a check. A test has at most one: a second for the
// same test is an error wrapping ErrExists.
func (s *Store) AddInboundCheck(ctx context.Context, c InboundCheck) error {
	if c.Domain == "" || len(c.Report) == 0 {
		return errors.New("store: add inbound check: domain and report are required")
	}
	if len(c.Report) > maxInboundReport {
		return fmt.Errorf("store: add inbound check %s: report of %d octets exceeds %d", c.Domain, len(c.Report), maxInboundReport)
	}
	checked, err := timeToNanos(c.Checked)
	if err != nil {
		return fmt.Errorf("store: add inbound check: %w", err)
	}
	stored, err := timeToNanos(c.Stored)
	if err != nil {
		return fmt.Errorf("store: add inbound check: %w", err)
	}
	what := "add inbound check " + c.Domain
	if c.TestID != "" {
		what += " of test " + c.TestID
	}
	// A test has one check: the unique index on test_id makes a second one
	// a conflict.
	return insertNew(ctx, s.db, what, s.q(`INSERT INTO inbound_checks
    (test_id, domain, checked_ns, stored_ns, colour, report)
    VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT DO NOTHING`),
		strings.ToLower(c.TestID), strings.ToLower(c.Domain), checked, stored, c.Colour, string(c.Report))
}

const inboundColumns = `id, test_id, domain, checked_ns, stored_ns, colour, report`

func scanInbound(row rowScanner) (InboundCheck, error) {
	var (
		c               InboundCheck
		checked, stored int64
		report          string
	)
	if err := row.Scan(&c.ID, &c.TestID, &c.Domain, &checked, &stored, &c.Colour, &report); err != nil {
		return InboundCheck{}, err
	}
	c.Checked, c.Stored, c.Report = nanosToTime(checked), nanosToTime(stored), []byte(report)
	return c, nil
}

// InboundCheckOfTest returns the check stored with a test, or an error
// wrapping ErrNotFound.
func (s *Store) InboundCheckOfTest(ctx context.Context, testID string) (InboundCheck, error) {
	return queryOne(ctx, s.db, "inbound check of test "+testID, scanInbound,
		s.q(`SELECT `+inboundColumns+` FROM inbound_checks WHERE test_id = ?`), strings.ToLower(testID))
}

// LatestInboundCheck returns the newest check of domain run at or after
// since, or an error wrapping ErrNotFound.
func (s *Store) LatestInboundCheck(ctx context.Context, domain string, since time.Time) (InboundCheck, error) {
	return queryOne(ctx, s.db, "inbound check of "+domain, scanInbound, s.q(`SELECT `+inboundColumns+` FROM inbound_checks
WHERE domain = ? AND checked_ns >= ?
ORDER BY checked_ns DESC, id DESC
LIMIT 1`), strings.ToLower(domain), clampToNanos(since))
}
