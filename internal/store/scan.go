package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// This file holds bulk inbound scans (migration 0006, docs/scan.md): the
// scan, its items (one per input line naming a domain) and the leases
// through which several workers share one scan.

// Scan item kinds.
const (
	ScanKindDomain    = "domain"    // a distinct domain to check
	ScanKindInvalid   = "invalid"   // the line does not name a domain
	ScanKindDuplicate = "duplicate" // the domain appeared on an earlier line
)

// Scan item states.
const (
	ScanPending = "pending" // to be checked
	ScanRunning = "running" // leased by a worker until lease_until
	ScanDone    = "done"    // checked; the result is stored
	ScanError   = "error"   // no result: bad line, duplicate, or the check failed
)

// Scan is one bulk scan.
type Scan struct {
	ID          string
	Created     time.Time
	Source      string // the input as named ("-" for stdin)
	InputSHA256 string // hex digest of the input
	Options     string // JSON, for the record
	Loaded      time.Time
	InputLines  int64
}

// ScanLine is one parsed input line to store. Err != "" makes it an
// invalid line.
type ScanLine struct {
	Line   int64
	Input  string
	Domain string
	Label  string
	Err    string
}

// ScanSummary is the part of a result that reports aggregate.
type ScanSummary struct {
	Colour    string
	Qualified bool
	DNSSEC    bool
	DANE      bool
	MTASTS    bool
	ValidCert bool
	STARTTLS  bool
}

// ScanItem is one stored line of a scan.
type ScanItem struct {
	ScanID     string
	Line       int64
	Kind       string
	Input      string
	Domain     string
	Label      string
	State      string
	LeaseOwner string
	LeaseUntil time.Time
	Attempts   int
	Started    time.Time
	Finished   time.Time
	Error      string
	Summary    ScanSummary
	Result     []byte // JSON of the check, nil without one
}

// ScanResult is the outcome of one leased item.
type ScanResult struct {
	Line     int64
	State    string // ScanDone, ScanError, or ScanPending to try again
	Error    string
	Summary  ScanSummary
	Result   []byte
	Started  time.Time
	Finished time.Time
}

// ScanCounts counts a scan's items by state.
type ScanCounts struct {
	Pending, Running, Done, Error int64
}

// Total is the number of items.
func (c ScanCounts) Total() int64 { return c.Pending + c.Running + c.Done + c.Error }

// Finished is the number of items with an outcome.
func (c ScanCounts) Finished() int64 { return c.Done + c.Error }

// AddStats says what AddScanLines did with its lines.
type AddStats struct {
	Domains, Invalid, Duplicates, Known int
}

// CreateScan stores a new scan; an error wrapping ErrExists if the ID is
// taken.
func (s *Store) CreateScan(ctx context.Context, sc Scan) error {
	if sc.ID == "" || sc.Created.IsZero() {
		return errors.New("store: create scan: ID and creation time are required")
	}
	return insertNew(ctx, s.db, "create scan "+sc.ID, s.q(`INSERT INTO scans (id, created_ns, source, input_sha256, options, loaded_ns, input_lines)
    VALUES (?, ?, ?, ?, ?, 0, 0) ON CONFLICT (id) DO NOTHING`),
		sc.ID, clampToNanos(sc.Created), sc.Source, sc.InputSHA256, sc.Options)
}

// Scan returns the scan id; an error wrapping ErrNotFound if there is none.
func (s *Store) Scan(ctx context.Context, id string) (Scan, error) {
	return queryOne(ctx, s.db, "scan "+id, scanScan,
		s.q(`SELECT id, created_ns, source, input_sha256, options, loaded_ns, input_lines FROM scans WHERE id = ?`), id)
}

func scanScan(row rowScanner) (Scan, error) {
	var (
		sc              Scan
		created, loaded int64
	)
	if err := row.Scan(&sc.ID, &created, &sc.Source, &sc.InputSHA256, &sc.Options, &loaded, &sc.InputLines); err != nil {
		return Scan{}, err
	}
	sc.Created, sc.Loaded = nanosToTime(created), optNanosToTime(loaded)
	return sc, nil
}

// MarkScanLoaded records that every input line of the scan is stored.
func (s *Store) MarkScanLoaded(ctx context.Context, id string, at time.Time, lines int64) error {
	return execOne(ctx, s.db, "mark scan "+id+" loaded", s.q(`UPDATE scans SET loaded_ns = ?, input_lines = ? WHERE id = ?`), clampToNanos(at), lines, id)
}

// AddScanLines stores parsed input lines in one transaction. It is
// idempotent: a line already stored (a load resumed after an interruption)
// is left as it is. A domain already stored under an earlier line becomes
// a 'duplicate' row naming that line; an invalid line an 'invalid' row. So
// every line that is not blank or a comment has exactly one row.
func (s *Store) AddScanLines(ctx context.Context, scanID string, lines []ScanLine) (AddStats, error) {
	var st AddStats
	if len(lines) == 0 {
		return st, nil
	}
	err := s.inTx(ctx, "add scan lines", func(tx *sql.Tx) error {
		var err error
		st, err = s.addScanLines(ctx, tx, scanID, lines)
		return err
	})
	return st, err
}

// addScanLines is AddScanLines in the transaction tx, in chunks of
// scanLinesChunk lines.
func (s *Store) addScanLines(ctx context.Context, tx *sql.Tx, scanID string, lines []ScanLine) (st AddStats, err error) {
	for start := 0; start < len(lines); start += scanLinesChunk {
		c, err := s.addScanChunk(ctx, tx, scanID, lines[start:min(start+scanLinesChunk, len(lines))])
		if err != nil {
			return st, err
		}
		st.Domains, st.Invalid, st.Duplicates, st.Known = st.Domains+c.Domains, st.Invalid+c.Invalid, st.Duplicates+c.Duplicates, st.Known+c.Known
	}
	return st, nil
}

// scanLinesChunk is how many input lines one round of addScanChunk
// stores: three statements per chunk instead of up to three per line (a
// round trip each to a PostgreSQL server), with at most 4,000 parameters.
const scanLinesChunk = 500

// addScanChunk stores lines, in order, with multi-row INSERTs: first each
// invalid line and, per domain, the chunk's first line naming it, as a
// domain row; then every other line naming a domain becomes a duplicate of
// the domain's row (stored now or before), unless it is that row. ON
// CONFLICT DO NOTHING without a target covers both the primary key (a line
// stored before: a resumed load) and the domain index (a domain stored
// under an earlier line); RETURNING tells which rows are new (SQLite 3.35
// and PostgreSQL alike).
func (s *Store) addScanChunk(ctx context.Context, tx *sql.Tx, scanID string, lines []ScanLine) (st AddStats, err error) {
	const what = "add scan lines"
	type row struct {
		l                            ScanLine
		kind, domain, state, errText string
	}
	insert := func(rows []row) (map[int64]bool, error) {
		if len(rows) == 0 {
			return nil, nil
		}
		const one = "(?, ?, ?, ?, ?, ?, ?, '', 0, 0, 0, 0, ?, '', 0, 0, 0, 0, 0, 0, '')"
		args := make([]any, 0, 8*len(rows))
		for _, r := range rows {
			args = append(args, scanID, r.l.Line, r.kind, r.l.Input, r.domain, r.l.Label, r.state, r.errText)
		}
		added, err := queryRows(ctx, tx, what, scanValue[int64], s.q(`INSERT INTO scan_items
    (scan_id, line, kind, input, domain, label, state, lease_owner, lease_until_ns, attempts, started_ns, finished_ns, error,
    colour, qualified, dnssec, dane, mta_sts, valid_cert, starttls, result)
    VALUES `+one+strings.Repeat(", "+one, len(rows)-1)+`
    ON CONFLICT DO NOTHING RETURNING line`), args...)
		if err != nil {
			return nil, err
		}
		set := make(map[int64]bool, len(added))
		for _, l := range added {
			set[l] = true
		}
		return set, nil
	}

	var rest []ScanLine
	seen := map[string]bool{}
	var rows []row
	for _, l := range lines {
		switch {
		case l.Err != "":
			rows = append(rows, row{l: l, kind: ScanKindInvalid, state: ScanError, errText: l.Err})
		case seen[l.Domain]:
			rest = append(rest, l)
		default:
			seen[l.Domain] = true
			rows = append(rows, row{l: l, kind: ScanKindDomain, domain: l.Domain, state: ScanPending})
		}
	}
	added, err := insert(rows)
	if err != nil {
		return st, err
	}
	for _, r := range rows {
		switch {
		case !added[r.l.Line]:
			if r.kind == ScanKindDomain {
				rest = append(rest, r.l) // a duplicate, or stored before
			} else {
				st.Known++
			}
		case r.kind == ScanKindDomain:
			st.Domains++
		default:
			st.Invalid++
		}
	}
	if len(rest) == 0 {
		return st, nil
	}

	// The line of each domain's row, now that every domain has one: the
	// domain rows just added, and the others read one by one (on the
	// domain index: an IN list of many domains is planned as a walk of the
	// scan's whole index while the table has no statistics yet, in the
	// load's own transaction).
	at := make(map[string]int64, len(rows))
	for _, r := range rows {
		if r.kind == ScanKindDomain && added[r.l.Line] {
			at[r.domain] = r.l.Line
		}
	}
	var lookup *sql.Stmt
	for _, l := range rest {
		if _, ok := at[l.Domain]; ok {
			continue
		}
		if lookup == nil {
			if lookup, err = tx.PrepareContext(ctx, s.q(`SELECT line FROM scan_items WHERE scan_id = ? AND kind = 'domain' AND domain = ?`)); err != nil {
				return st, fmt.Errorf("store: %s: %w", what, err)
			}
			defer lookup.Close()
		}
		var line int64
		if err := lookup.QueryRowContext(ctx, scanID, l.Domain).Scan(&line); err != nil {
			return st, fmt.Errorf("store: add scan line %d: first line of %s: %w", l.Line, l.Domain, err)
		}
		at[l.Domain] = line
	}
	rows = rows[:0]
	for _, l := range rest {
		switch first := at[l.Domain]; {
		case first == l.Line:
			st.Known++ // this line's own domain row, stored before
		default:
			rows = append(rows, row{l: l, kind: ScanKindDuplicate, domain: l.Domain, state: ScanError,
				errText: fmt.Sprintf("duplicate of line %d (%s is checked once)", first, l.Domain)})
		}
	}
	added, err = insert(rows)
	if err != nil {
		return st, err
	}
	for _, r := range rows {
		if added[r.l.Line] {
			st.Duplicates++
		} else {
			st.Known++
		}
	}
	return st, nil
}

const scanItemColumns = `scan_id, line, kind, input, domain, label, state, lease_owner, lease_until_ns, attempts, started_ns, finished_ns, error,
    colour, qualified, dnssec, dane, mta_sts, valid_cert, starttls, result`

func scanItem(row rowScanner) (ScanItem, error) {
	var (
		it                       ScanItem
		until, started, finished int64
		attempts                 int64
		q, dnssec, dane, sts, vc int64
		starttls                 int64
		result                   string
	)
	if err := row.Scan(&it.ScanID, &it.Line, &it.Kind, &it.Input, &it.Domain, &it.Label, &it.State, &it.LeaseOwner, &until, &attempts,
		&started, &finished, &it.Error, &it.Summary.Colour, &q, &dnssec, &dane, &sts, &vc, &starttls, &result); err != nil {
		return ScanItem{}, err
	}
	it.LeaseUntil, it.Started, it.Finished = optNanosToTime(until), optNanosToTime(started), optNanosToTime(finished)
	it.Attempts = int(attempts)
	it.Summary.Qualified, it.Summary.DNSSEC, it.Summary.DANE = q != 0, dnssec != 0, dane != 0
	it.Summary.MTASTS, it.Summary.ValidCert, it.Summary.STARTTLS = sts != 0, vc != 0, starttls != 0
	if result != "" {
		it.Result = []byte(result)
	}
	return it, nil
}

// LeaseScanItems claims up to n items of the scan for owner until the
// given time: pending items, and running items whose lease expired before
// now (their worker died). An expired item that has already been leased
// maxAttempts times is not leased again but set to error, so that a
// domain that crashes its workers cannot hold the scan up forever. Items
// are claimed in line order.
//
// With SQLite the transaction holds the write lock from its start
// (BEGIN IMMEDIATE), so two workers never claim the same item; with
// PostgreSQL the SELECT takes FOR UPDATE SKIP LOCKED (docs/scan.md).
func (s *Store) LeaseScanItems(ctx context.Context, scanID, owner string, n int, now, until time.Time, maxAttempts int) ([]ScanItem, error) {
	if n <= 0 {
		return nil, nil
	}
	if owner == "" {
		return nil, errors.New("store: lease scan items: empty owner")
	}
	var items []ScanItem
	err := s.inTx(ctx, "lease scan items", func(tx *sql.Tx) error {
		var err error
		items, err = s.leaseScanItems(ctx, tx, scanID, owner, n, now, until, maxAttempts)
		return err
	})
	return items, err
}

// leaseScanItems is LeaseScanItems in the transaction tx.
func (s *Store) leaseScanItems(ctx context.Context, tx *sql.Tx, scanID, owner string, n int, now, until time.Time, maxAttempts int) ([]ScanItem, error) {
	const what = "lease scan items"
	nowNs := clampToNanos(now)
	if maxAttempts > 0 {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE scan_items SET state = 'error', lease_owner = '', finished_ns = ?,
    error = 'gave up: the check of this domain was started ' || CAST(attempts AS TEXT) || ' times and never finished (worker crash or hang)'
    WHERE scan_id = ? AND state = 'running' AND lease_until_ns < ? AND attempts >= ?`),
			nowNs, scanID, nowNs, maxAttempts); err != nil {
			return nil, fmt.Errorf("store: lease scan items: give up: %w", err)
		}
	}
	sel := `SELECT line FROM scan_items WHERE scan_id = ? AND (state = 'pending' OR (state = 'running' AND lease_until_ns < ?))
    ORDER BY line LIMIT ?`
	if s.dialect == dialectPostgres {
		sel += ` FOR UPDATE SKIP LOCKED`
	}
	lines, err := queryRows(ctx, tx, what, scanValue[int64], s.q(sel), scanID, nowNs, n)
	if err != nil || len(lines) == 0 {
		return nil, err
	}
	args := []any{owner, clampToNanos(until), nowNs, scanID}
	for _, l := range lines {
		args = append(args, l)
	}
	in := "?" + strings.Repeat(", ?", len(lines)-1)
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE scan_items SET state = 'running', lease_owner = ?, lease_until_ns = ?, attempts = attempts + 1,
    started_ns = ? WHERE scan_id = ? AND line IN (`+in+`)`), args...); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return queryRows(ctx, tx, what, scanItem, s.q(`SELECT `+scanItemColumns+` FROM scan_items WHERE scan_id = ? AND line IN (`+in+`) ORDER BY line`),
		args[3:]...)
}

// RenewScanLeases extends owner's running leases of the scan to until and
// returns how many it holds.
func (s *Store) RenewScanLeases(ctx context.Context, scanID, owner string, until time.Time) (int64, error) {
	return execCount(ctx, s.db, "renew scan leases", s.q(`UPDATE scan_items SET lease_until_ns = ? WHERE scan_id = ? AND lease_owner = ? AND state = 'running'`),
		clampToNanos(until), scanID, owner)
}

// FinishScanItems stores the outcomes of items owner leased, in one
// transaction. An item owner no longer holds (its lease expired and
// another worker took it) is not changed; lost counts those. A result in
// state pending puts the item back to be checked again later (a
// transient failure); its attempts stay counted.
func (s *Store) FinishScanItems(ctx context.Context, scanID, owner string, results []ScanResult) (int, error) {
	if len(results) == 0 {
		return 0, nil
	}
	var lost int
	err := s.inTx(ctx, "finish scan items", func(tx *sql.Tx) error {
		var err error
		lost, err = s.finishScanItems(ctx, tx, scanID, owner, results)
		return err
	})
	if err != nil {
		return 0, err
	}
	return lost, nil
}

// finishScanItems is FinishScanItems in the transaction tx.
func (s *Store) finishScanItems(ctx context.Context, tx *sql.Tx, scanID, owner string, results []ScanResult) (lost int, err error) {
	up, err := tx.PrepareContext(ctx, s.q(`UPDATE scan_items SET state = ?, lease_owner = '', lease_until_ns = 0, started_ns = ?, finished_ns = ?,
    error = ?, colour = ?, qualified = ?, dnssec = ?, dane = ?, mta_sts = ?, valid_cert = ?, starttls = ?, result = ?
    WHERE scan_id = ? AND line = ? AND lease_owner = ? AND state = 'running'`))
	if err != nil {
		return 0, fmt.Errorf("store: finish scan items: %w", err)
	}
	defer up.Close()
	for _, r := range results {
		if r.State != ScanDone && r.State != ScanError && r.State != ScanPending {
			return 0, fmt.Errorf("store: finish scan item %d: state %q is not done, error or pending", r.Line, r.State)
		}
		sm := r.Summary
		res, err := up.ExecContext(ctx, r.State, optNanos(r.Started), optNanos(r.Finished), r.Error, sm.Colour,
			boolToInt(sm.Qualified), boolToInt(sm.DNSSEC), boolToInt(sm.DANE), boolToInt(sm.MTASTS), boolToInt(sm.ValidCert), boolToInt(sm.STARTTLS),
			string(r.Result), scanID, r.Line, owner)
		if err != nil {
			return 0, fmt.Errorf("store: finish scan item %d: %w", r.Line, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			lost++
		}
	}
	return lost, nil
}

// ReleaseScanItems puts owner's running items of the scan back to pending
// (an interrupted worker loses nothing) and returns how many.
func (s *Store) ReleaseScanItems(ctx context.Context, scanID, owner string) (int64, error) {
	return execCount(ctx, s.db, "release scan items", s.q(`UPDATE scan_items SET state = 'pending', lease_owner = '', lease_until_ns = 0,
    attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END
    WHERE scan_id = ? AND lease_owner = ? AND state = 'running'`), scanID, owner)
}

// ScanCounts counts the scan's items by state.
func (s *Store) ScanCounts(ctx context.Context, scanID string) (ScanCounts, error) {
	var c ScanCounts
	// One row of counts: states other than these four are not counted.
	err := s.db.QueryRowContext(ctx, s.q(`SELECT
    COUNT(CASE WHEN state = ? THEN 1 END), COUNT(CASE WHEN state = ? THEN 1 END),
    COUNT(CASE WHEN state = ? THEN 1 END), COUNT(CASE WHEN state = ? THEN 1 END)
    FROM scan_items WHERE scan_id = ?`), ScanPending, ScanRunning, ScanDone, ScanError, scanID).
		Scan(&c.Pending, &c.Running, &c.Done, &c.Error)
	if err != nil {
		return ScanCounts{}, fmt.Errorf("store: scan counts: %w", err)
	}
	return c, nil
}

// EachScanItem calls fn for every item of the scan in line order, reading
// in pages so that a scan of any size is streamed with bounded memory. An
// error from fn stops the walk and is returned.
func (s *Store) EachScanItem(ctx context.Context, scanID string, withResult bool, fn func(ScanItem) error) error {
	const page = 500
	cols := scanItemColumns
	if !withResult {
		cols = strings.Replace(cols, "result", "''", 1)
	}
	return eachInPages(page, func(after int64) ([]ScanItem, error) {
		return queryRows(ctx, s.db, "scan items", scanItem,
			s.q(`SELECT `+cols+` FROM scan_items WHERE scan_id = ? AND line > ? ORDER BY line LIMIT ?`), scanID, after, page)
	}, func(it ScanItem) int64 { return it.Line }, fn)
}
