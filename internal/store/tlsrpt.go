package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// defaultTLSRPTLimit bounds a TLSRPTReports result when the caller does not.
const defaultTLSRPTLimit = 1000

// Errors of AddTLSRPTReport.
var (
	// ErrTLSRPTFull: the stored reports have reached their quota.
	ErrTLSRPTFull = errors.New("store: TLS-RPT report storage full")
	// ErrTLSRPTDuplicate: a report with the same key (organization-name
	// and report-id) is stored already.
	ErrTLSRPTDuplicate = errors.New("store: TLS-RPT report received already")
)

// TLSRPTQuota bounds the stored TLS-RPT reports: anyone may send mail to
// tlsrpt@A or POST a report, so what is kept of it must be bounded. Zero
// fields do not restrict.
type TLSRPTQuota struct {
	MaxReports int   // rows
	MaxBytes   int64 // sum of the reports' sizes (raw and parsed)
}

// AddTLSRPTReport stores a TLS-RPT report with its ties to tests
// (r.Tests) and sets r.ID. If storing it would take the table past q,
// nothing is stored and the error wraps ErrTLSRPTFull: the reports already
// stored are kept (the retention purge makes room), and the sender is
// asked to retry later. A report whose Key is stored already is not
// stored again (ErrTLSRPTDuplicate).
func (s *Store) AddTLSRPTReport(ctx context.Context, r *TLSRPTReport, q TLSRPTQuota) error {
	ns, err := timeToNanos(r.Received)
	if err != nil {
		return fmt.Errorf("store: add TLS-RPT report: %w", err)
	}
	client := ""
	if r.Client.IsValid() {
		client = r.Client.Unmap().String()
	}
	raw, report := r.Raw, r.Report
	if raw == nil {
		raw = []byte{} // NOT NULL
	}
	if report == nil {
		report = []byte{}
	}
	source := r.Source
	if source == "" {
		source = TLSRPTByMail
	}
	size := int64(len(raw) + len(report))
	return s.inDurableTx(ctx, "add TLS-RPT report", func(tx *sql.Tx) error {
		// The sum, the duplicate check and the insert must not
		// interleave with another report's (Store.serialise).
		if err := s.serialise(ctx, tx, lockTLSRPTQuota); err != nil {
			return fmt.Errorf("store: add TLS-RPT report: %w", err)
		}
		if q.MaxReports > 0 || q.MaxBytes > 0 {
			var n, bytes int64
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*), COALESCE(SUM(size), 0) FROM tlsrpt_reports`)).Scan(&n, &bytes); err != nil {
				return fmt.Errorf("store: add TLS-RPT report: usage: %w", err)
			}
			if q.MaxReports > 0 && n+1 > int64(q.MaxReports) || q.MaxBytes > 0 && bytes+size > q.MaxBytes {
				return fmt.Errorf("store: add TLS-RPT report: %w (%d reports, %d bytes stored; limits %d, %d)",
					ErrTLSRPTFull, n, bytes, q.MaxReports, q.MaxBytes)
			}
		}
		if r.Key != "" {
			var n int64
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM tlsrpt_reports WHERE report_key = ?`), r.Key).Scan(&n); err != nil {
				return fmt.Errorf("store: add TLS-RPT report: %w", err)
			}
			if n > 0 {
				return fmt.Errorf("store: add TLS-RPT report: %w", ErrTLSRPTDuplicate)
			}
		}
		if err := tx.QueryRowContext(ctx, s.q(`INSERT INTO tlsrpt_reports (received_ns, client_addr, mail_from, raw, size, source, report, report_key)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`), ns, client, r.MailFrom, raw, size, source, report, r.Key).Scan(&r.ID); err != nil {
			return fmt.Errorf("store: add TLS-RPT report: %w", err)
		}
		for _, id := range r.Tests {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO tlsrpt_report_tests (test_id, report_id) VALUES (?, ?) ON CONFLICT DO NOTHING`), id, r.ID); err != nil {
				return fmt.Errorf("store: add TLS-RPT report: tie to %s: %w", id, err)
			}
		}
		return nil
	})
}

// TLSRPTReports returns the reports received at or after since, oldest
// first, at most limit of them (0 means 1000; negative is an error), raw.
func (s *Store) TLSRPTReports(ctx context.Context, since time.Time, limit int) ([]TLSRPTReport, error) {
	limit, err := limitOrDefault("TLS-RPT reports", limit, defaultTLSRPTLimit)
	if err != nil {
		return nil, err
	}
	return queryRows(ctx, s.db, "TLS-RPT reports", scanTLSRPTReport, s.q(`SELECT `+tlsrptColumns+`, raw FROM tlsrpt_reports
WHERE received_ns >= ?
ORDER BY received_ns, id
LIMIT ?`), clampToNanos(since), int64(limit))
}

// TLSRPTReportsOf returns the parsed reports tied to test id, oldest
// first, at most limit (0 means 1000), without their raw form.
func (s *Store) TLSRPTReportsOf(ctx context.Context, id string, limit int) ([]TLSRPTReport, error) {
	limit, err := limitOrDefault("TLS-RPT reports of a test", limit, defaultTLSRPTLimit)
	if err != nil {
		return nil, err
	}
	return queryRows(ctx, s.db, "TLS-RPT reports of "+id, scanTLSRPTReport, s.q(`SELECT `+tlsrptColumns+`, NULL FROM tlsrpt_reports
WHERE id IN (SELECT report_id FROM tlsrpt_report_tests WHERE test_id = ?)
ORDER BY received_ns, id
LIMIT ?`), id, int64(limit))
}

const tlsrptColumns = `id, received_ns, client_addr, mail_from, source, report, report_key`

func scanTLSRPTReport(row rowScanner) (TLSRPTReport, error) {
	var (
		r      TLSRPTReport
		ns     int64
		client string
	)
	if err := row.Scan(&r.ID, &ns, &client, &r.MailFrom, &r.Source, &r.Report, &r.Key, &r.Raw); err != nil {
		return TLSRPTReport{}, err
	}
	r.Received = nanosToTime(ns)
	if client != "" {
		a, err := netip.ParseAddr(client)
		if err != nil {
			return TLSRPTReport{}, fmt.Errorf("report %d: stored client address: %w", r.ID, err)
		}
		r.Client = a
	}
	return r, nil
}

// PruneTLSRPTReports deletes the TLS-RPT reports received before t, with
// their ties to tests, and returns how many reports it deleted.
func (s *Store) PruneTLSRPTReports(ctx context.Context, t time.Time) (int64, error) {
	if _, err := s.pruneChunks(ctx, "prune TLS-RPT report ties", `DELETE FROM tlsrpt_report_tests WHERE report_id IN
    (SELECT id FROM tlsrpt_reports WHERE received_ns < ? ORDER BY received_ns LIMIT ?)`, clampToNanos(t)); err != nil {
		return 0, err
	}
	return s.pruneBefore(ctx, "prune TLS-RPT reports", "tlsrpt_reports", "received_ns", t)
}

// SlotTests returns the IDs of the tests that held slot n at some time in
// [from, until]: a test holds its slot from its creation until it became
// final (or now, while it is not). Slots are reused, so a report's date
// range may cover several holders.
func (s *Store) SlotTests(ctx context.Context, n int, from, until time.Time) ([]string, error) {
	return queryRows(ctx, s.db, fmt.Sprintf("tests of slot %d", n), scanValue[string], s.q(`SELECT id FROM tests
WHERE slot = ? AND created_ns <= ? AND (state <> ? OR updated_ns >= ?)
ORDER BY created_ns, id`), n, clampToNanos(until), TestFinal, clampToNanos(from))
}

// TestsOfClients returns the IDs of the tests with a connection from one
// of addrs that started in [from, until].
func (s *Store) TestsOfClients(ctx context.Context, addrs []netip.Addr, from, until time.Time) ([]string, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	args := []any{}
	for _, a := range addrs {
		args = append(args, a.Unmap().String())
	}
	args = append(args, clampToNanos(from), clampToNanos(until))
	return queryRows(ctx, s.db, "tests of clients", scanValue[string], s.q(`SELECT DISTINCT test_id FROM smtp_connections
WHERE client_addr IN (?`+strings.Repeat(", ?", len(addrs)-1)+`) AND started_ns >= ? AND started_ns <= ? AND test_id <> ''
ORDER BY test_id`), args...)
}
