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
	MailState    string
	MailReason   string
	Recipient    string // the result mail's envelope recipient; "" once sent or given up
	Attempts     int
	Next         time.Time
	Sent         time.Time
	DeliveredTo  string
	MessageID    string
	Message      []byte
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
func (s *Store) FinalizeTest(ctx context.Context, t Test, r TestResult) (err error) {
	if t.State != TestFinal {
		return fmt.Errorf("store: finalize test %s: state %q is not final", t.ID, t.State)
	}
	if r.TestID != t.ID {
		return fmt.Errorf("store: finalize test %s: result is for %s", t.ID, r.TestID)
	}
	if err := validResult(r); err != nil {
		return fmt.Errorf("store: finalize test: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: finalize test %s: begin: %w", t.ID, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO test_results
    (test_id, final_ns, verdict, sender_domain, mail_state, mail_reason, recipient, attempts, next_ns, sent_ns, delivered_to, message_id, message)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (test_id) DO NOTHING`), resultArgs(r)...)
	if err != nil {
		return fmt.Errorf("store: finalize test %s: %w", t.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("store: finalize test %s: %w", t.ID, err)
	} else if n == 0 {
		return fmt.Errorf("store: finalize test %s: %w", t.ID, ErrExists)
	}
	if err := s.updateTest(ctx, tx, t); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: finalize test %s: commit: %w", t.ID, err)
	}
	return nil
}

func resultArgs(r TestResult) []any {
	msg := r.Message
	if msg == nil {
		msg = []byte{}
	}
	return []any{r.TestID, clampToNanos(r.Final), string(r.Verdict), r.SenderDomain, r.MailState, r.MailReason, r.Recipient,
		int64(r.Attempts), optNanos(r.Next), optNanos(r.Sent), r.DeliveredTo, r.MessageID, msg}
}

// optNanos is optTimeToNanos for times that are always in range.
func optNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return clampToNanos(t)
}

const resultColumns = `test_id, final_ns, verdict, sender_domain, mail_state, mail_reason, recipient, attempts, next_ns, sent_ns, delivered_to, message_id, message`

func scanResult(row interface{ Scan(...any) error }) (TestResult, error) {
	var (
		r                 TestResult
		final, next, sent int64
		verdict           string
		attempts          int64
	)
	if err := row.Scan(&r.TestID, &final, &verdict, &r.SenderDomain, &r.MailState, &r.MailReason, &r.Recipient,
		&attempts, &next, &sent, &r.DeliveredTo, &r.MessageID, &r.Message); err != nil {
		return TestResult{}, err
	}
	r.Final, r.Next, r.Sent = nanosToTime(final), optNanosToTime(next), optNanosToTime(sent)
	r.Verdict, r.Attempts = []byte(verdict), int(attempts)
	return r, nil
}

// Result returns the result of a final test; an error wrapping ErrNotFound
// if the test is not final (or does not exist).
func (s *Store) Result(ctx context.Context, testID string) (TestResult, error) {
	r, err := scanResult(s.db.QueryRowContext(ctx, s.q(`SELECT `+resultColumns+` FROM test_results WHERE test_id = ?`), strings.ToLower(testID)))
	if errors.Is(err, sql.ErrNoRows) {
		return TestResult{}, fmt.Errorf("store: result of %s: %w", testID, ErrNotFound)
	}
	if err != nil {
		return TestResult{}, fmt.Errorf("store: result of %s: %w", testID, err)
	}
	return r, nil
}

// UpdateResultMail stores the mail fields of r (state, reason, recipient,
// attempts, next, sent, delivered_to, message_id, message) and, if a is
// not nil, records the attempt a — in one transaction, so an attempt is
// never on record without its outcome or the other way round.
func (s *Store) UpdateResultMail(ctx context.Context, r TestResult, a *MailAttempt) (err error) {
	if err := validResult(r); err != nil {
		return fmt.Errorf("store: update result mail: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: update result mail %s: begin: %w", r.TestID, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	msg := r.Message
	if msg == nil {
		msg = []byte{}
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE test_results SET mail_state = ?, mail_reason = ?, recipient = ?, attempts = ?,
    next_ns = ?, sent_ns = ?, delivered_to = ?, message_id = ?, message = ? WHERE test_id = ?`),
		r.MailState, r.MailReason, r.Recipient, int64(r.Attempts), optNanos(r.Next), optNanos(r.Sent), r.DeliveredTo, r.MessageID, msg, r.TestID)
	if err != nil {
		return fmt.Errorf("store: update result mail %s: %w", r.TestID, err)
	}
	if err := expectOneRow(res, "update result mail "+r.TestID); err != nil {
		return err
	}
	if a != nil {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO result_mail_attempts (test_id, time_ns, status, detail) VALUES (?, ?, ?, ?)`),
			r.TestID, clampToNanos(a.Time), a.Status, a.Detail); err != nil {
			return fmt.Errorf("store: record result mail attempt %s: %w", r.TestID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: update result mail %s: commit: %w", r.TestID, err)
	}
	return nil
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
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+resultColumns+` FROM test_results `+where), args...)
	if err != nil {
		return nil, fmt.Errorf("store: results: %w", err)
	}
	defer rows.Close()
	var out []TestResult
	for rows.Next() {
		r, err := scanResult(rows)
		if err != nil {
			return nil, fmt.Errorf("store: results: scan: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: results: %w", err)
	}
	return out, nil
}

// LatestResult returns the newest result of a test whose envelope sender
// is in domain (lower-case); an error wrapping ErrNotFound if none.
func (s *Store) LatestResult(ctx context.Context, domain string) (TestResult, error) {
	rs, err := s.results(ctx, `WHERE sender_domain = ? ORDER BY final_ns DESC, test_id DESC LIMIT 1`, strings.ToLower(domain))
	if err != nil {
		return TestResult{}, err
	}
	if len(rs) == 0 {
		return TestResult{}, fmt.Errorf("store: latest result of %s: %w", domain, ErrNotFound)
	}
	return rs[0], nil
}

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
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT test_id, time_ns, status, detail FROM result_mail_attempts
WHERE test_id = ? ORDER BY time_ns, id LIMIT 1000`), strings.ToLower(testID))
	if err != nil {
		return nil, fmt.Errorf("store: mail attempts of %s: %w", testID, err)
	}
	defer rows.Close()
	var out []MailAttempt
	for rows.Next() {
		var a MailAttempt
		var ns int64
		if err := rows.Scan(&a.TestID, &ns, &a.Status, &a.Detail); err != nil {
			return nil, fmt.Errorf("store: mail attempts of %s: %w", testID, err)
		}
		a.Time = nanosToTime(ns)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: mail attempts of %s: %w", testID, err)
	}
	return out, nil
}

// UnfinishedTests returns tests that are not final, oldest first, at most
// limit (0: 1000): the candidates for finalisation.
func (s *Store) UnfinishedTests(ctx context.Context, limit int) ([]Test, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+testColumns+` FROM tests WHERE state <> ?
ORDER BY created_ns, id LIMIT ?`), TestFinal, int64(limit))
	if err != nil {
		return nil, fmt.Errorf("store: unfinished tests: %w", err)
	}
	defer rows.Close()
	var out []Test
	for rows.Next() {
		t, err := scanTest(rows)
		if err != nil {
			return nil, fmt.Errorf("store: unfinished tests: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: unfinished tests: %w", err)
	}
	return out, nil
}

// DeleteTest removes a test with everything recorded for it: its
// connections, result, result-mail attempts and inbound check (GDPR: the
// report's delete link). It returns an error wrapping ErrNotFound if there is no such test.
func (s *Store) DeleteTest(ctx context.Context, id string) (err error) {
	id = strings.ToLower(id)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: delete test %s: begin: %w", id, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for _, q := range []string{
		`DELETE FROM smtp_connections WHERE test_id = ?`,
		`DELETE FROM result_mail_attempts WHERE test_id = ?`,
		`DELETE FROM test_results WHERE test_id = ?`,
		`DELETE FROM inbound_checks WHERE test_id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, s.q(q), id); err != nil {
			return fmt.Errorf("store: delete test %s: %w", id, err)
		}
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM tests WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("store: delete test %s: %w", id, err)
	}
	if err := expectOneRow(res, "delete test "+id); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store: delete test %s: commit: %w", id, err)
	}
	return nil
}

// TestsCreatedBefore returns the ids of tests created before t, at most
// limit (0: 1000): the retention purge deletes them one by one.
func (s *Store) TestsCreatedBefore(ctx context.Context, t time.Time, limit int) ([]string, error) {
	if limit <= 0 {
		limit = 1000
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT id FROM tests WHERE created_ns < ? ORDER BY created_ns LIMIT ?`), clampToNanos(t), int64(limit))
	if err != nil {
		return nil, fmt.Errorf("store: tests created before %s: %w", t, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("store: tests created before: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// PurgeUntiedConnections deletes connections started before t that no test
// claimed (scanners, refused recipients): they hold client addresses and
// envelope senders and serve no report.
func (s *Store) PurgeUntiedConnections(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM smtp_connections WHERE test_id = '' AND started_ns < ?`), clampToNanos(t))
	if err != nil {
		return 0, fmt.Errorf("store: purge untied connections: %w", err)
	}
	return res.RowsAffected()
}
