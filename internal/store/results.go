package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file holds the results of finished tests (migration 0005): the
// frozen verdict and the result mail's state, with every delivery attempt.

// Result mail states.
const (
	MailPending  = "pending"  // to be sent (again) at Next
	MailSent     = "sent"     // delivered
	MailFailed   = "failed"   // bounced, or given up after the retries
	MailWithheld = "withheld" // not sent: the test mail's sender was not authenticated (no backscatter)
	MailNone     = "none"     // no one to send to (no sender, or the null sender)
)

// TestResult is a final test's result.
type TestResult struct {
	TestID       string
	Final        time.Time
	Verdict      []byte // JSON of verdict.Verdict
	SenderDomain string
	// SenderAuthenticated: the test mail authenticated its envelope sender
	// (SPF pass or an aligned DKIM signature that verified,
	// resultmail.Authenticate). Only such results feed the public provider
	// table (LatestAuthenticatedResult).
	SenderAuthenticated bool
	MailState           string
	MailReason          string
	Recipient           string // the result mail's envelope recipient; "" once sent or given up
	Attempts            int
	Next                time.Time
	Sent                time.Time
	DeliveredTo         string
	MessageID           string
	Message             []byte
	// ClaimOwner is the node attempting the mail until ClaimUntil
	// (ClaimResultMail; migration 0021); "" when no attempt is in flight.
	// UpdateResultMail writes both as they are in r: an attempt recorded
	// clears them.
	ClaimOwner string
	ClaimUntil time.Time
	// Provider, when set, is written with the result into the history of
	// the public providers' verdicts (ProviderHistory; the finaliser sets
	// it for an authenticated test of a domain in web.providers).
	// FinalizeTest only: it is not read back with the result.
	Provider *ProviderVerdict
}

// MailAttempt is one delivery attempt of a result mail.
type MailAttempt struct {
	TestID string
	Time   time.Time
	Status string // delivered, deferred, bounced
	Detail string
}

func validResult(r TestResult) error {
	switch r.MailState {
	case MailPending, MailSent, MailFailed, MailWithheld, MailNone:
	default:
		return fmt.Errorf("test %s: unknown mail state %q", r.TestID, r.MailState)
	}
	switch {
	case r.TestID == "":
		return errors.New("empty test id")
	case r.Final.IsZero():
		return fmt.Errorf("test %s: final time not set", r.TestID)
	case len(r.Verdict) == 0:
		return fmt.Errorf("test %s: no verdict", r.TestID)
	}
	return nil
}

// FinalizeTest marks the test t final (t.State must be TestFinal) and
// stores its result, in one transaction. A test finalised before keeps its
// first result: the call then returns an error wrapping ErrExists and
// changes nothing.
func (s *Store) FinalizeTest(ctx context.Context, t Test, r TestResult) error {
	if t.State != TestFinal {
		return fmt.Errorf("store: finalize test %s: state %q is not final", t.ID, t.State)
	}
	if r.TestID != t.ID {
		return fmt.Errorf("store: finalize test %s: result is for %s", t.ID, r.TestID)
	}
	if err := validResult(r); err != nil {
		return fmt.Errorf("store: finalize test: %w", err)
	}
	if r.Provider != nil {
		if err := validProviderVerdict(*r.Provider); err != nil {
			return fmt.Errorf("store: finalize test %s: %w", t.ID, err)
		}
	}
	what := "finalize test " + t.ID
	return s.inTx(ctx, what, func(tx *sql.Tx) error {
		err := insertNew(ctx, tx, what, s.q(`INSERT INTO test_results
    (`+resultColumns+`)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (test_id) DO NOTHING`), resultArgs(r)...)
		if err != nil {
			return err
		}
		if r.Provider != nil {
			if _, err := tx.ExecContext(ctx, s.q(upsertProviderVerdict), providerVerdictArgs(*r.Provider)...); err != nil {
				return fmt.Errorf("store: %s: provider history: %w", what, err)
			}
		}
		return s.updateTest(ctx, tx, t)
	})
}

func resultArgs(r TestResult) []any {
	msg := r.Message
	if msg == nil {
		msg = []byte{}
	}
	return []any{r.TestID, clampToNanos(r.Final), string(r.Verdict), r.SenderDomain, r.MailState, r.MailReason, r.Recipient,
		int64(r.Attempts), optNanos(r.Next), optNanos(r.Sent), r.DeliveredTo, r.MessageID, msg, boolToInt(r.SenderAuthenticated),
		r.ClaimOwner, optNanos(r.ClaimUntil)}
}

// optNanos is optTimeToNanos for times that are always in range.
func optNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return clampToNanos(t)
}

const resultColumns = `test_id, final_ns, verdict, sender_domain, mail_state, mail_reason, recipient, attempts, next_ns, sent_ns, delivered_to, message_id, message,
    sender_authenticated, claim_owner, claim_until_ns`

func scanResult(row rowScanner) (TestResult, error) {
	var (
		r                 TestResult
		final, next, sent int64
		claimUntil        int64
		verdict           string
		attempts, auth    int64
	)
	if err := row.Scan(&r.TestID, &final, &verdict, &r.SenderDomain, &r.MailState, &r.MailReason, &r.Recipient,
		&attempts, &next, &sent, &r.DeliveredTo, &r.MessageID, &r.Message, &auth,
		&r.ClaimOwner, &claimUntil); err != nil {
		return TestResult{}, err
	}
	r.SenderAuthenticated = auth != 0
	r.Final, r.Next, r.Sent = nanosToTime(final), optNanosToTime(next), optNanosToTime(sent)
	r.Verdict, r.Attempts = []byte(verdict), int(attempts)
	r.ClaimUntil = optNanosToTime(claimUntil)
	return r, nil
}

// Result returns the result of a final test; an error wrapping ErrNotFound
// if the test is not final (or does not exist).
func (s *Store) Result(ctx context.Context, testID string) (TestResult, error) {
	return queryOne(ctx, s.db, "result of "+testID, scanResult,
		s.q(`SELECT `+resultColumns+` FROM test_results WHERE test_id = ?`), strings.ToLower(testID))
}

// UpdateResultMail stores the mail fields of r (state, reason, recipient,
// attempts, next, sent, delivered_to, message_id, message) and, if a is
// not nil, records the attempt a — in one transaction, so an attempt is
// never on record without its outcome or the other way round.
func (s *Store) UpdateResultMail(ctx context.Context, r TestResult, a *MailAttempt) error {
	if err := validResult(r); err != nil {
		return fmt.Errorf("store: update result mail: %w", err)
	}
	msg := r.Message
	if msg == nil {
		msg = []byte{}
	}
	what := "update result mail " + r.TestID
	return s.inTx(ctx, what, func(tx *sql.Tx) error {
		err := execOne(ctx, tx, what, s.q(`UPDATE test_results SET mail_state = ?, mail_reason = ?, recipient = ?, attempts = ?,
    next_ns = ?, sent_ns = ?, delivered_to = ?, message_id = ?, message = ?, claim_owner = ?, claim_until_ns = ? WHERE test_id = ?`),
			r.MailState, r.MailReason, r.Recipient, int64(r.Attempts), optNanos(r.Next), optNanos(r.Sent), r.DeliveredTo, r.MessageID, msg,
			r.ClaimOwner, optNanos(r.ClaimUntil), r.TestID)
		if err != nil || a == nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO result_mail_attempts (test_id, time_ns, status, detail) VALUES (?, ?, ?, ?)`),
			r.TestID, clampToNanos(a.Time), a.Status, a.Detail); err != nil {
			return fmt.Errorf("store: record result mail attempt %s: %w", r.TestID, err)
		}
		return nil
	})
}

// ClaimResultMail makes owner the only one to attempt the result mail of
// testID until until, if it is still pending, due at now, has had attempts
// attempts (none recorded since the caller read it) and no other owner's
// claim runs past now. It tells whether the claim was made. The one
// statement decides (compare-and-swap): of two nodes claiming at once, one
// changes the row and the other finds the WHERE no longer true
// (PostgreSQL re-checks it on the row the first one changed; SQLite has
// one writer). A node that died mid-attempt leaves its claim, which runs
// out at until: the mail may then go again (docs/cluster.md).
func (s *Store) ClaimResultMail(ctx context.Context, testID string, attempts int, owner string, now, until time.Time) (bool, error) {
	if owner == "" {
		return false, fmt.Errorf("store: claim result mail %s: no owner", testID)
	}
	n, err := execCount(ctx, s.db, "claim result mail "+testID, s.q(`UPDATE test_results SET claim_owner = ?, claim_until_ns = ?
WHERE test_id = ? AND mail_state = ? AND next_ns <= ? AND attempts = ? AND (claim_until_ns <= ? OR claim_owner = ?)`),
		owner, clampToNanos(until), strings.ToLower(testID), MailPending, clampToNanos(now), int64(attempts), clampToNanos(now), owner)
	return n == 1, err
}

// ReleaseResultMail ends owner's claim of the result mail of testID
// (ClaimResultMail) without recording an attempt; a claim of another owner
// stays.
func (s *Store) ReleaseResultMail(ctx context.Context, testID, owner string) error {
	_, err := execCount(ctx, s.db, "release result mail "+testID,
		s.q(`UPDATE test_results SET claim_owner = '', claim_until_ns = 0 WHERE test_id = ? AND claim_owner = ?`), strings.ToLower(testID), owner)
	return err
}

// DueResultMails returns results whose mail is pending and due at now,
// oldest first, at most limit (0: 100).
func (s *Store) DueResultMails(ctx context.Context, now time.Time, limit int) ([]TestResult, error) {
	if limit <= 0 {
		limit = 100
	}
	return s.results(ctx, `WHERE mail_state = ? AND next_ns <= ? ORDER BY next_ns, test_id LIMIT ?`, MailPending, clampToNanos(now), int64(limit))
}

func (s *Store) results(ctx context.Context, where string, args ...any) ([]TestResult, error) {
	return queryRows(ctx, s.db, "results", scanResult, s.q(`SELECT `+resultColumns+` FROM test_results `+where), args...)
}

// LatestAuthenticatedResult returns the newest result of a test whose
// envelope sender is in domain (compared lower-case) and was authenticated
// by the test mail (TestResult.SenderAuthenticated); an error wrapping
// ErrNotFound if none. It is the public provider table's row: anyone can
// write any MAIL FROM, so a test that did not prove its sender's domain
// says nothing about that domain's provider (issue 16). The filter is in
// the query, on the index test_results_provider, so no number of
// unauthenticated results can push an authenticated one out.
func (s *Store) LatestAuthenticatedResult(ctx context.Context, domain string) (TestResult, error) {
	rs, err := s.results(ctx, latestAuthenticatedWhere, strings.ToLower(domain))
	if err != nil {
		return TestResult{}, err
	}
	if len(rs) == 0 {
		return TestResult{}, fmt.Errorf("store: latest result of %s: %w", domain, ErrNotFound)
	}
	return rs[0], nil
}

const latestAuthenticatedWhere = `WHERE sender_domain = ? AND sender_authenticated = 1 ORDER BY final_ns DESC, test_id DESC LIMIT 1`

// MailsSentSince counts the result mails delivered to domain since t (the
// per-domain rate limit).
func (s *Store) MailsSentSince(ctx context.Context, domain string, since time.Time) (int, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM test_results WHERE sender_domain = ? AND sent_ns >= ?`),
		strings.ToLower(domain), clampToNanos(since)).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: mails sent to %s: %w", domain, err)
	}
	return int(n), nil
}

// MailAttempts returns the delivery attempts of a test's result mail,
// oldest first.
func (s *Store) MailAttempts(ctx context.Context, testID string) ([]MailAttempt, error) {
	return queryRows(ctx, s.db, "mail attempts of "+testID, scanMailAttempt, s.q(`SELECT test_id, time_ns, status, detail FROM result_mail_attempts
WHERE test_id = ? ORDER BY time_ns, id LIMIT 1000`), strings.ToLower(testID))
}

func scanMailAttempt(row rowScanner) (MailAttempt, error) {
	var (
		a  MailAttempt
		ns int64
	)
	if err := row.Scan(&a.TestID, &ns, &a.Status, &a.Detail); err != nil {
		return MailAttempt{}, err
	}
	a.Time = nanosToTime(ns)
	return a, nil
}

// DeleteTest removes a test with everything recorded for it: its
// connections, result, result-mail attempts, inbound check and owner keys (GDPR: the
// report's delete link). A provider's history row (ProviderHistory) stays,
// without the test's id. It returns an error wrapping ErrNotFound if there is no such test.
func (s *Store) DeleteTest(ctx context.Context, id string) error {
	id = strings.ToLower(id)
	what := "delete test " + id
	return s.inTx(ctx, what, func(tx *sql.Tx) error {
		for _, q := range []string{
			`DELETE FROM smtp_connections WHERE test_id = ?`,
			`DELETE FROM result_mail_attempts WHERE test_id = ?`,
			`DELETE FROM test_results WHERE test_id = ?`,
			`DELETE FROM inbound_checks WHERE test_id = ?`,
			`DELETE FROM test_sending_addresses WHERE test_id = ?`,
			`DELETE FROM test_owner_keys WHERE test_id = ?`,
			`DELETE FROM tlsrpt_report_tests WHERE test_id = ?`,
		} {
			if _, err := tx.ExecContext(ctx, s.q(q), id); err != nil {
				return fmt.Errorf("store: %s: %w", what, err)
			}
		}
		// The provider history keeps its row (the provider's, not the
		// tester's) without the link to the test.
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE provider_verdicts SET test_id = '' WHERE test_id = ?`), id); err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		// Its slot (if it held one) starts to rest now: the row outlives
		// the test (CreateSlotTest).
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE test_slots SET released_ns = ? WHERE test_id = ?`), time.Now().UnixNano(), id); err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		return execOne(ctx, tx, what, s.q(`DELETE FROM tests WHERE id = ?`), id)
	})
}

// TestsCreatedBefore returns the ids of tests created before t, at most
// limit (0: 1000): the retention purge deletes them one by one.
func (s *Store) TestsCreatedBefore(ctx context.Context, t time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		limit = 1000
	}
	return queryRows(ctx, s.db, fmt.Sprintf("tests created before %s", t), scanValue[string],
		s.q(`SELECT id FROM tests WHERE created_ns < ? ORDER BY created_ns LIMIT ?`), clampToNanos(t), int64(limit))
}

// PurgeUntiedConnections deletes connections started before t that no test
// claimed (scanners, refused recipients): they hold client addresses and
// envelope senders and serve no report.
func (s *Store) PurgeUntiedConnections(ctx context.Context, t time.Time) (int64, error) {
	return execCount(ctx, s.db, "purge untied connections", s.q(`DELETE FROM smtp_connections WHERE test_id = '' AND started_ns < ?`), clampToNanos(t))
}
