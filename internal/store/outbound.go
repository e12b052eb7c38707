package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// This file holds the tables of the outbound test (migration 0003): tests,
// the downgrade-window clients, the SMTP connection history and the raw
// TLS-RPT reports. The types are in outbound_types.go.

// defaultConnectionLimit bounds a Connections result when the filter does
// not (ConnectionFilter.Limit 0).
const defaultConnectionLimit = 10000

// optTimeToNanos is timeToNanos for columns where 0 means "not set": the
// zero time is stored as 0 and read back as the zero time by optNanosToTime.
func optTimeToNanos(t time.Time) (int64, error) {
	if t.IsZero() {
		return 0, nil
	}
	return timeToNanos(t)
}

// optNanosToTime is the inverse of optTimeToNanos.
func optNanosToTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return nanosToTime(ns)
}

// validTest checks the fields every stored test must have.
func validTest(t Test) error {
	switch {
	case t.ID == "":
		return errors.New("empty test id")
	case t.ID != strings.ToLower(t.ID):
		return fmt.Errorf("test id %q is not lower-case", t.ID)
	case t.Kind != TestToken && t.Kind != TestFixed:
		return fmt.Errorf("test %s: unknown kind %q", t.ID, t.Kind)
	case t.State != TestOpen && t.State != TestAcked && t.State != TestFinal:
		return fmt.Errorf("test %s: unknown state %q", t.ID, t.State)
	case t.Created.IsZero():
		return fmt.Errorf("test %s: creation time not set", t.ID)
	}
	return nil
}

// testTimes converts the times of t to stored nanoseconds.
func testTimes(t Test) (created, acked, updated int64, err error) {
	if created, err = timeToNanos(t.Created); err != nil {
		return 0, 0, 0, err
	}
	if acked, err = optTimeToNanos(t.Acked); err != nil {
		return 0, 0, 0, err
	}
	if updated, err = optTimeToNanos(t.Updated); err != nil {
		return 0, 0, 0, err
	}
	return created, acked, updated, nil
}

// CreateTest stores a new test, with its sending server's addresses. It
// returns an error wrapping ErrExists if a test with the same id exists.
// Fixed-address tests are created with CreateFixedTest, which records
// their client and applies the caps.
func (s *Store) CreateTest(ctx context.Context, t Test) error {
	if len(t.SendingAddrs) == 0 && t.OwnerKey == "" {
		return s.createTest(ctx, s.db, t, "")
	}
	// The test, its addresses and its key in one transaction.
	return s.inTx(ctx, "create test "+t.ID, func(tx *sql.Tx) error { return s.createTest(ctx, tx, t, "") })
}

// createTest inserts t; fixedClient is the client network of a fixed test
// ("" for others). The test is due for the finaliser's first look at its
// creation (DueTests).
func (s *Store) createTest(ctx context.Context, db querier, t Test, fixedClient string) error {
	if err := validTest(t); err != nil {
		return fmt.Errorf("store: create test: %w", err)
	}
	created, acked, updated, err := testTimes(t)
	if err != nil {
		return fmt.Errorf("store: create test %s: %w", t.ID, err)
	}
	addrs, err := sendingAddrs(t)
	if err != nil {
		return fmt.Errorf("store: create test %s: %w", t.ID, err)
	}
	creator := ""
	if t.CreatorPrefix.IsValid() {
		creator = t.CreatorPrefix.Masked().String()
	}
	lang := t.Lang
	if lang == "" {
		lang = "en"
	}
	what := "create test " + t.ID
	if err := insertNew(ctx, db, what, s.q(`INSERT INTO tests
    (id, created_ns, kind, sender, state, acked_ns, updated_ns, due_ns, fixed_client, sending_server, sending_addrs, creator_prefix, slot, lang)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (id) DO NOTHING`),
		t.ID, created, t.Kind, t.Sender, t.State, acked, updated, created, fixedClient, t.SendingServer, strings.Join(addrs, " "), creator, t.Slot, lang); err != nil {
		return err
	}
	for _, a := range addrs {
		if _, err := db.ExecContext(ctx, s.q(`INSERT INTO test_sending_addresses (test_id, addr) VALUES (?, ?)`), t.ID, a); err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
	}
	if t.OwnerKey != "" {
		return s.addOwnerKey(ctx, db, t.ID, t.OwnerKey, KeyCreated, t.Created)
	}
	return nil
}

// sendingAddrs checks a new test's sending server and returns its
// addresses in stored form (unmapped text), without repeats.
func sendingAddrs(t Test) ([]string, error) {
	switch {
	case t.SendingServer == "" && len(t.SendingAddrs) > 0:
		return nil, errors.New("sending addresses without a sending server")
	case t.SendingServer != "" && len(t.SendingAddrs) == 0:
		return nil, fmt.Errorf("sending server %q without addresses", t.SendingServer)
	case len(t.SendingAddrs) > MaxSendingAddrs:
		return nil, fmt.Errorf("%d sending addresses, more than %d", len(t.SendingAddrs), MaxSendingAddrs)
	case strings.ContainsAny(t.SendingServer, " \t\r\n"):
		return nil, fmt.Errorf("sending server %q contains white space", t.SendingServer)
	}
	var out []string
	for _, a := range t.SendingAddrs {
		if !a.IsValid() {
			return nil, errors.New("invalid sending address")
		}
		if s := a.Unmap().WithZone("").String(); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

const testColumns = `id, created_ns, kind, sender, state, acked_ns, updated_ns, addressed_b_ns,
    sending_server, sending_addrs, creator_prefix, slot, lang`

// scanTest reads one row of testColumns.
func scanTest(row rowScanner) (Test, error) { return scanTestAnd(row) }

// scanTestAnd reads one row of testColumns followed by the columns of extra.
func scanTestAnd(row rowScanner, extra ...any) (Test, error) {
	var (
		t                                   Test
		created, acked, updated, addressedB int64
		addrs, creator                      string
	)
	dest := append([]any{&t.ID, &created, &t.Kind, &t.Sender, &t.State, &acked, &updated, &addressedB,
		&t.SendingServer, &addrs, &creator, &t.Slot, &t.Lang}, extra...)
	if err := row.Scan(dest...); err != nil {
		return Test{}, err
	}
	for _, f := range strings.Fields(addrs) {
		a, err := netip.ParseAddr(f)
		if err != nil {
			return Test{}, fmt.Errorf("test %s: stored sending address: %w", t.ID, err)
		}
		t.SendingAddrs = append(t.SendingAddrs, a)
	}
	if creator != "" {
		p, err := netip.ParsePrefix(creator)
		if err != nil {
			return Test{}, fmt.Errorf("test %s: stored creator prefix: %w", t.ID, err)
		}
		t.CreatorPrefix = p
	}
	t.Created = nanosToTime(created)
	t.Acked = optNanosToTime(acked)
	t.Updated = optNanosToTime(updated)
	t.AddressedB = optNanosToTime(addressedB)
	return t, nil
}

// MarkAddressedB records that a mail of test id named its B address in To
// or Cc, at time at; the first time is kept.
func (s *Store) MarkAddressedB(ctx context.Context, id string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q(`UPDATE tests SET addressed_b_ns = ? WHERE id = ? AND addressed_b_ns = 0`),
		at.UnixNano(), strings.ToLower(id))
	if err != nil {
		return fmt.Errorf("store: marking test %s addressed to B: %w", id, err)
	}
	return nil
}

// Test returns the test with the given id (compared lower-case). It returns
// an error wrapping ErrNotFound if there is none.
func (s *Store) Test(ctx context.Context, id string) (Test, error) {
	return queryOne(ctx, s.db, "test "+id, scanTest, s.q(`SELECT `+testColumns+` FROM tests WHERE id = ?`), strings.ToLower(id))
}

// UpdateTest stores the mutable fields of t (Sender, State, Acked,
// Updated) for the test t.ID; ID, Created and Kind are fixed at creation.
// Updates only move forward (see updateTest): a stale copy cannot undo an
// acknowledgement or a final state, nor replace a sender once set.
// It returns an error wrapping ErrNotFound if the test does not exist.
func (s *Store) UpdateTest(ctx context.Context, t Test) error {
	return s.updateTest(ctx, s.db, t)
}

func (s *Store) updateTest(ctx context.Context, db querier, t Test) error {
	if err := validTest(t); err != nil {
		return fmt.Errorf("store: update test: %w", err)
	}
	_, acked, updated, err := testTimes(t)
	if err != nil {
		return fmt.Errorf("store: update test %s: %w", t.ID, err)
	}
	// Monotonic: sessions of one test run concurrently (a sender delivers
	// to A and B at once), each with the copy of the test it read. A copy
	// read before another session acknowledged the test must not undo that
	// (the lost update made a test stay open, unacknowledged, for good).
	// So the state only moves forward (open < acked < final), a sender and
	// an acknowledgement time once set stay, and updated_ns only grows.
	return execOne(ctx, db, "update test "+t.ID, s.q(`UPDATE tests SET
    sender = CASE WHEN sender = '' THEN ? ELSE sender END,
    state = CASE
        WHEN state = ? THEN state
        WHEN state = ? AND ? = ? THEN state
        ELSE ? END,
    acked_ns = CASE WHEN acked_ns <> 0 THEN acked_ns ELSE ? END,
    updated_ns = CASE WHEN updated_ns > ? THEN updated_ns ELSE ? END
WHERE id = ?`),
		t.Sender,
		TestFinal,
		TestAcked, t.State, TestOpen,
		t.State,
		acked,
		updated, updated,
		t.ID)
}

// ClientWindowStart returns the start of the downgrade window of the
// client (an address prefix in text form) in its current episode. A client
// never seen before is recorded with now as its first connection and as its
// window start; the first writer wins, also between several processes or
// nodes: INSERT ... ON CONFLICT DO NOTHING followed by a SELECT (portable to
// PostgreSQL). The start moves only through RestartClientWindow.
func (s *Store) ClientWindowStart(ctx context.Context, client string, now time.Time) (time.Time, error) {
	what := "client window start " + client
	if client == "" {
		return time.Time{}, errors.New("store: client window start: empty client")
	}
	ns, err := timeToNanos(now)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: %s: %w", what, err)
	}
	// Read first: a known client (every connection after its window asks)
	// costs no write.
	if start, err := s.clientWindowStart(ctx, client); !errors.Is(err, ErrNotFound) {
		return start, err
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO smtp_clients (client, first_seen_ns, window_start_ns) VALUES (?, ?, ?)
    ON CONFLICT (client) DO NOTHING`), client, ns, ns); err != nil {
		return time.Time{}, fmt.Errorf("store: %s: %w", what, err)
	}
	return s.clientWindowStart(ctx, client)
}

func (s *Store) clientWindowStart(ctx context.Context, client string) (time.Time, error) {
	ns, err := queryOne(ctx, s.db, "client window start "+client, scanValue[int64],
		s.q(`SELECT window_start_ns FROM smtp_clients WHERE client = ?`), client)
	if err != nil {
		return time.Time{}, err
	}
	return nanosToTime(ns), nil
}

// RestartClientWindow starts a new episode of the client at now, if its
// window still starts at from, and returns the window start the store holds
// afterwards. It is a compare-and-swap: of several connections (on one node
// or several) that decide at once that the client's episode is over, one
// restarts the window and the others read that start, so they all share the
// new window.
func (s *Store) RestartClientWindow(ctx context.Context, client string, from, now time.Time) (time.Time, error) {
	what := "restart client window " + client
	fromNS, err := timeToNanos(from)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: %s: %w", what, err)
	}
	nowNS, err := timeToNanos(now)
	if err != nil {
		return time.Time{}, fmt.Errorf("store: %s: %w", what, err)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE smtp_clients SET window_start_ns = ? WHERE client = ? AND window_start_ns = ?`),
		nowNS, client, fromNS); err != nil {
		return time.Time{}, fmt.Errorf("store: %s: %w", what, err)
	}
	return s.clientWindowStart(ctx, client)
}

// ClientEpisode is what the store knows of a client's connections since
// its window started: the facts the rule of a new episode reads
// (docs/smtp.md). All of it is in the store, so every node decides alike.
type ClientEpisode struct {
	// LastStart is the start of the client's newest connection (zero if it
	// has none).
	LastStart time.Time
	// Offered: a connection since the window start was offered STARTTLS
	// (the client has been past the window in this episode).
	Offered bool
	// Untied: a connection since the window start belongs to no test (yet).
	Untied bool
	// OpenTest: a connection since the window start belongs to a test that
	// is not final.
	OpenTest bool
}

// ClientEpisodeSince returns the facts of the client's connections that
// started at or after since (its window start). The lookups use the index
// on (client_key, started_ns); each EXISTS stops at its first row. (An
// EXISTS is an integer in SQLite and a boolean in PostgreSQL: CASE makes
// it 0/1 in both.)
func (s *Store) ClientEpisodeSince(ctx context.Context, client string, since time.Time) (ClientEpisode, error) {
	what := "client episode " + client
	sinceNS, err := timeToNanos(since)
	if err != nil {
		return ClientEpisode{}, fmt.Errorf("store: %s: %w", what, err)
	}
	const conns = `SELECT 1 FROM smtp_connections c WHERE c.client_key = ? AND c.started_ns >= ?`
	return queryOne(ctx, s.db, what, func(row rowScanner) (ClientEpisode, error) {
		var (
			e                        ClientEpisode
			last                     int64
			offered, untied, openTst int64
		)
		if err := row.Scan(&last, &offered, &untied, &openTst); err != nil {
			return e, err
		}
		e.LastStart = optNanosToTime(last)
		e.Offered, e.Untied, e.OpenTest = offered != 0, untied != 0, openTst != 0
		return e, nil
	}, s.q(`SELECT
    COALESCE((SELECT MAX(started_ns) FROM smtp_connections WHERE client_key = ?), 0),
    CASE WHEN EXISTS (`+conns+` AND c.starttls_offered = 1) THEN 1 ELSE 0 END,
    CASE WHEN EXISTS (`+conns+` AND c.test_id = '') THEN 1 ELSE 0 END,
    CASE WHEN EXISTS (`+conns+` AND EXISTS (SELECT 1 FROM tests t WHERE t.id = c.test_id AND t.state <> ?)) THEN 1 ELSE 0 END`),
		client, client, sinceNS, client, sinceNS, client, sinceNS, TestFinal)
}

// connRow is an SMTPConnection in its stored form.
type connRow struct {
	started, ended     int64
	clientAddr         string
	clientPort         int64
	local              string
	offered            int64
	rcpt, sigs, auth   string
	persona, msgBytes  int64
	certPersona        int64
	state              string
	testID, key, ehlo  string
	sni, ver, cipher   string
	mailFrom, reply, e string
	node               string
}

// storedAddrPort is the text form of a local address (unmapped, so one
// listener is recorded the same way whichever socket family it used).
func storedAddrPort(ap netip.AddrPort) string {
	if !ap.IsValid() {
		return ""
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// toRow converts c for storage, checking what the columns cannot hold.
func toRow(c *SMTPConnection) (connRow, error) {
	var r connRow
	var err error
	if c.Started.IsZero() {
		return r, errors.New("start time not set")
	}
	if r.started, err = timeToNanos(c.Started); err != nil {
		return r, err
	}
	if r.ended, err = optTimeToNanos(c.Ended); err != nil {
		return r, err
	}
	for _, rc := range c.RcptTo {
		// Recipients are stored one per line; SMTP paths never hold line
		// breaks (RFC 5321 §4.1.2), so one would be a caller's bug.
		if strings.ContainsAny(rc, "\r\n") {
			return r, fmt.Errorf("recipient %q contains a line break", rc)
		}
	}
	sigs := c.Signatures
	if sigs == nil {
		sigs = []Signature{}
	}
	b, err := json.Marshal(sigs)
	if err != nil {
		return r, fmt.Errorf("signatures: %w", err)
	}
	if c.Authentication != nil {
		a, err := json.Marshal(c.Authentication)
		if err != nil {
			return r, fmt.Errorf("authentication: %w", err)
		}
		r.auth = string(a)
	}
	r.clientAddr, r.clientPort = storedClient(c.Client)
	r.local = storedAddrPort(c.Local)
	r.offered = boolToInt(c.STARTTLSOffered)
	r.rcpt = strings.Join(c.RcptTo, "\n")
	r.sigs = string(b)
	r.persona = int64(c.Persona)
	r.certPersona = int64(c.CertPersona)
	r.msgBytes = c.MessageBytes
	r.state = string(c.State)
	if r.state == "" {
		r.state = string(StateNone)
	}
	r.testID, r.key, r.ehlo = c.TestID, c.ClientKey, c.EHLO
	r.sni, r.ver, r.cipher = c.SNI, c.TLSVersion, c.TLSCipher
	r.mailFrom, r.reply, r.e = c.MailFrom, c.Reply, c.Error
	r.node = c.Node
	return r, nil
}

// args lists the columns in the order of connColumns without id.
func (r connRow) args() []any {
	return []any{r.testID, r.started, r.ended, r.clientAddr, r.clientPort, r.local, r.key, r.ehlo,
		r.offered, r.persona, r.sni, r.ver, r.cipher, r.state, r.mailFrom, r.rcpt, r.reply, r.msgBytes, r.sigs, r.e, r.certPersona, r.auth, r.node}
}

const connColumns = `test_id, started_ns, ended_ns, client_addr, client_port, local_addr, client_key, ehlo,
    starttls_offered, persona, sni, tls_version, tls_cipher, state, mail_from, rcpt_to, reply, message_bytes, signatures, error,
    cert_persona, authentication, node`

const insertConnectionSQL = `INSERT INTO smtp_connections (` + connColumns + `)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    RETURNING id`

// InsertConnection stores a new connection record and sets c.ID.
func (s *Store) InsertConnection(ctx context.Context, c *SMTPConnection) error {
	return insertConnection(ctx, c, func(args ...any) *sql.Row {
		return s.db.QueryRowContext(ctx, s.q(insertConnectionSQL), args...)
	})
}

// insertConnection runs the insert through query (a plain or prepared
// statement).
func insertConnection(ctx context.Context, c *SMTPConnection, query func(args ...any) *sql.Row) error {
	r, err := toRow(c)
	if err != nil {
		return fmt.Errorf("store: insert connection: %w", err)
	}
	// RETURNING is understood by SQLite (3.35+) and PostgreSQL alike;
	// LastInsertId is not (PostgreSQL drivers do not implement it).
	var id int64
	if err := query(r.args()...).Scan(&id); err != nil {
		return fmt.Errorf("store: insert connection: %w", err)
	}
	c.ID = id
	return nil
}

// UpdateConnection stores every field of c in the record c.ID. It returns
// an error wrapping ErrNotFound if there is no such record.
func (s *Store) UpdateConnection(ctx context.Context, c *SMTPConnection) error {
	return s.updateConnection(ctx, s.db, c)
}

func (s *Store) updateConnection(ctx context.Context, db querier, c *SMTPConnection) error {
	r, err := toRow(c)
	if err != nil {
		return fmt.Errorf("store: update connection %d: %w", c.ID, err)
	}
	return execOne(ctx, db, fmt.Sprintf("update connection %d", c.ID), s.q(`UPDATE smtp_connections SET
    test_id = ?, started_ns = ?, ended_ns = ?, client_addr = ?, client_port = ?, local_addr = ?, client_key = ?, ehlo = ?,
    starttls_offered = ?, persona = ?, sni = ?, tls_version = ?, tls_cipher = ?, state = ?, mail_from = ?, rcpt_to = ?,
    reply = ?, message_bytes = ?, signatures = ?, error = ?, cert_persona = ?, authentication = ?, node = ?
WHERE id = ?`), append(r.args(), c.ID)...)
}

// ConnectionRecorder writes the rows of live connections with prepared
// statements. The SMTP personas write a row about seven times per
// connection (each state before the reply that depends on it); a prepared
// statement saves SQLite's parse of every write, and updating only the
// columns that change during a connection spares the index on
// (client_addr, started_ns). Safe for concurrent use; Close it before the
// store.
type ConnectionRecorder struct {
	insert, update *sql.Stmt
}

// NewConnectionRecorder prepares the statements of a ConnectionRecorder.
func (s *Store) NewConnectionRecorder(ctx context.Context) (*ConnectionRecorder, error) {
	ins, err := s.db.PrepareContext(ctx, s.q(insertConnectionSQL))
	if err != nil {
		return nil, fmt.Errorf("store: connection recorder: %w", err)
	}
	upd, err := s.db.PrepareContext(ctx, s.q(`UPDATE smtp_connections SET
    test_id = ?, ended_ns = ?, ehlo = ?, starttls_offered = ?, persona = ?, sni = ?, tls_version = ?, tls_cipher = ?,
    state = ?, mail_from = ?, rcpt_to = ?, reply = ?, message_bytes = ?, signatures = ?, error = ?, cert_persona = ?,
    authentication = ?
WHERE id = ?`))
	if err != nil {
		ins.Close()
		return nil, fmt.Errorf("store: connection recorder: %w", err)
	}
	return &ConnectionRecorder{insert: ins, update: upd}, nil
}

// Insert is InsertConnection with the prepared statement.
func (r *ConnectionRecorder) Insert(ctx context.Context, c *SMTPConnection) error {
	return insertConnection(ctx, c, func(args ...any) *sql.Row { return r.insert.QueryRowContext(ctx, args...) })
}

// Update stores the fields of c that change during a connection: all but
// Started, Client, Local and ClientKey, which are fixed by Insert. It
// returns an error wrapping ErrNotFound if there is no record c.ID.
func (r *ConnectionRecorder) Update(ctx context.Context, c *SMTPConnection) error {
	row, err := toRow(c)
	if err != nil {
		return fmt.Errorf("store: update connection %d: %w", c.ID, err)
	}
	res, err := r.update.ExecContext(ctx, row.testID, row.ended, row.ehlo, row.offered, row.persona, row.sni, row.ver, row.cipher,
		row.state, row.mailFrom, row.rcpt, row.reply, row.msgBytes, row.sigs, row.e, row.certPersona, row.auth, c.ID)
	if err != nil {
		return fmt.Errorf("store: update connection %d: %w", c.ID, err)
	}
	return expectOneRow(res, fmt.Sprintf("update connection %d", c.ID))
}

// Close releases the prepared statements.
func (r *ConnectionRecorder) Close() error {
	return errors.Join(r.insert.Close(), r.update.Close())
}

// AckConnection stores the test t and the connection c in one transaction:
// the acknowledgement of a mail (test state and Acked time, connection state
// and reply) is recorded entirely or not at all, and is on disk, with the
// history before it, when it returns (inDurableTx): the 250 follows. The
// test is due for the finaliser at once (DueTests): a verdict settled on
// its look-ups may be final as soon as A's mail is accepted
// (verdict.Final).
func (s *Store) AckConnection(ctx context.Context, t Test, c *SMTPConnection) error {
	return s.inDurableTx(ctx, fmt.Sprintf("ack connection %d", c.ID), func(tx *sql.Tx) error {
		if err := s.updateTest(ctx, tx, t); err != nil {
			return err
		}
		if !t.Updated.IsZero() {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE tests SET due_ns = CASE WHEN due_ns > ? THEN ? ELSE due_ns END WHERE id = ? AND state <> ?`),
				t.Updated.UnixNano(), t.Updated.UnixNano(), t.ID, TestFinal); err != nil {
				return fmt.Errorf("store: ack connection %d: test due: %w", c.ID, err)
			}
		}
		return s.updateConnection(ctx, tx, c)
	})
}

// Connections returns the connections matching f, ordered by start time
// (equal times in insertion order).
func (s *Store) Connections(ctx context.Context, f ConnectionFilter) ([]SMTPConnection, error) {
	limit, err := limitOrDefault("connections", f.Limit, defaultConnectionLimit)
	if err != nil {
		return nil, err
	}
	var w filter
	if f.TestID != "" {
		w.add("test_id = ?", f.TestID)
	}
	if f.ClientAddr.IsValid() {
		w.add("client_addr = ?", f.ClientAddr.Unmap().String())
	}
	w.timeRange("started_ns", f.Since, f.Until)
	query := `SELECT ` + connSelectColumns + ` FROM smtp_connections` + w.where() + "\nORDER BY started_ns, id\nLIMIT ?"
	return queryRows(ctx, s.db, "connections", scanConnection, s.q(query), append(w.args, int64(limit))...)
}

// connSelectColumns are the columns a connection is read from: its id,
// connColumns, and tied_by, which only the tie rules write.
const connSelectColumns = `id, ` + connColumns + `, tied_by`

// scanConnection reads one row of connSelectColumns.
func scanConnection(row rowScanner) (SMTPConnection, error) {
	var (
		c SMTPConnection
		r connRow
	)
	if err := row.Scan(&c.ID, &r.testID, &r.started, &r.ended, &r.clientAddr, &r.clientPort, &r.local, &r.key, &r.ehlo,
		&r.offered, &r.persona, &r.sni, &r.ver, &r.cipher, &r.state, &r.mailFrom, &r.rcpt, &r.reply, &r.msgBytes, &r.sigs, &r.e, &r.certPersona,
		&r.auth, &r.node, &c.TiedBy); err != nil {
		return SMTPConnection{}, err
	}
	if err := fromRow(&c, r); err != nil {
		return SMTPConnection{}, fmt.Errorf("connection %d: %w", c.ID, err)
	}
	return c, nil
}

// fromRow fills c from its stored form.
func fromRow(c *SMTPConnection, r connRow) error {
	c.TestID = r.testID
	c.Started = nanosToTime(r.started)
	c.Ended = optNanosToTime(r.ended)
	if r.clientAddr != "" {
		a, err := netip.ParseAddr(r.clientAddr)
		if err != nil {
			return fmt.Errorf("stored client address: %w", err)
		}
		c.Client = netip.AddrPortFrom(a, uint16(r.clientPort))
	}
	if r.local != "" {
		ap, err := netip.ParseAddrPort(r.local)
		if err != nil {
			return fmt.Errorf("stored local address: %w", err)
		}
		c.Local = ap
	}
	c.ClientKey, c.EHLO = r.key, r.ehlo
	c.STARTTLSOffered = r.offered != 0
	c.Persona = int(r.persona)
	c.CertPersona = int(r.certPersona)
	c.SNI, c.TLSVersion, c.TLSCipher = r.sni, r.ver, r.cipher
	c.State = ConnState(r.state)
	c.MailFrom = r.mailFrom
	if r.rcpt != "" {
		c.RcptTo = strings.Split(r.rcpt, "\n")
	}
	c.Reply = r.reply
	c.MessageBytes = r.msgBytes
	if r.sigs != "" {
		if err := json.Unmarshal([]byte(r.sigs), &c.Signatures); err != nil {
			return fmt.Errorf("stored signatures: %w", err)
		}
		if len(c.Signatures) == 0 {
			c.Signatures = nil
		}
	}
	if r.auth != "" {
		c.Authentication = new(Authentication)
		if err := json.Unmarshal([]byte(r.auth), c.Authentication); err != nil {
			return fmt.Errorf("stored authentication: %w", err)
		}
	}
	c.Error = r.e
	c.Node = r.node
	return nil
}

// TieConnections assigns the test testID to the connections of client that
// are not tied to a test yet and started in [since, until), and returns how
// many it tied. It ties connections that never reached RCPT TO (an aborted
// TLS handshake, a plain connection that was left) to the test a later
// connection of the same client named; connections already tied keep
// their test. The rows tied are marked TiedByClient.
func (s *Store) TieConnections(ctx context.Context, testID string, client netip.Addr, since, until time.Time) (int64, error) {
	if testID == "" {
		return 0, errors.New("store: tie connections: empty test id")
	}
	if !client.IsValid() {
		return 0, errors.New("store: tie connections: invalid client address")
	}
	return execCount(ctx, s.db, "tie connections to "+testID, s.q(`UPDATE smtp_connections SET test_id = ?, tied_by = ?
WHERE test_id = '' AND client_addr = ? AND started_ns >= ? AND started_ns < ?`),
		testID, TiedByClient, client.Unmap().String(), clampToNanos(since), clampToNanos(until))
}

// TieSlotAddress assigns the test testID to the connections to the local
// address local (any port) that are not tied to a test yet and started in
// [since, until), and returns how many it tied; they are marked
// TiedBySlotAddress. The address is one of a test slot's own (the
// IPv6-only host's, docs/dns.md "IPv6-only host"), and the window the
// time testID held the slot: such a connection names no recipient, and
// its client address (the sender's IPv6 one) is on none of its others.
func (s *Store) TieSlotAddress(ctx context.Context, testID string, local netip.Addr, since, until time.Time) (int64, error) {
	if testID == "" {
		return 0, errors.New("store: tie by slot address: empty test id")
	}
	if !local.IsValid() {
		return 0, errors.New("store: tie by slot address: invalid address")
	}
	// local_addr is storedAddrPort's "ip:port" or "[ip]:port"; an
	// address without its zone holds no LIKE wildcard (% or _).
	pattern := strings.TrimSuffix(storedAddrPort(netip.AddrPortFrom(local.WithZone(""), 0)), "0") + "%"
	return execCount(ctx, s.db, "tie connections by slot address to "+testID, s.q(`UPDATE smtp_connections SET test_id = ?, tied_by = ?
WHERE test_id = '' AND local_addr LIKE ? AND started_ns >= ? AND started_ns < ?`),
		testID, TiedBySlotAddress, pattern, clampToNanos(since), clampToNanos(until))
}

// TieSendingServer assigns the test testID to the connections from its
// sending addresses (Test.SendingAddrs) that are not tied to a test yet,
// have ended, and started in [since, until), and returns how many it tied;
// they are marked TiedBySendingServer. A connection is left untied when
// another test names its address and was open when it started (created at
// or before its start and not final before it): it could be either test's,
// and only a test mail's RCPT TO can tell (SharedSendingAddrs). A
// connection still open is left to name its test itself.
func (s *Store) TieSendingServer(ctx context.Context, testID string, since, until time.Time) (int64, error) {
	if testID == "" {
		return 0, errors.New("store: tie by sending server: empty test id")
	}
	return execCount(ctx, s.db, "tie connections by sending server to "+testID, s.q(`UPDATE smtp_connections SET test_id = ?, tied_by = ?
WHERE test_id = '' AND ended_ns <> 0 AND started_ns >= ? AND started_ns < ?
    AND client_addr IN (SELECT addr FROM test_sending_addresses WHERE test_id = ?)
    AND NOT EXISTS (SELECT 1 FROM test_sending_addresses o JOIN tests u ON u.id = o.test_id
        WHERE o.addr = smtp_connections.client_addr AND o.test_id <> ?
            AND u.created_ns <= smtp_connections.started_ns
            AND NOT EXISTS (SELECT 1 FROM test_results r WHERE r.test_id = u.id AND r.final_ns <= smtp_connections.started_ns))`),
		testID, TiedBySendingServer, clampToNanos(since), clampToNanos(until), testID, testID)
}

// SharedSendingAddrs returns the sending addresses of test testID that
// another test not final names too, in text order: the connections from
// them that no RCPT TO claims are tied to neither (TieSendingServer).
func (s *Store) SharedSendingAddrs(ctx context.Context, testID string) ([]netip.Addr, error) {
	return queryRows(ctx, s.db, "shared sending addresses of "+testID, scanAddr, s.q(`SELECT DISTINCT m.addr FROM test_sending_addresses m
    JOIN test_sending_addresses o ON o.addr = m.addr AND o.test_id <> m.test_id
    JOIN tests u ON u.id = o.test_id
WHERE m.test_id = ? AND u.state <> ?
ORDER BY m.addr`), testID, TestFinal)
}

// scanAddr reads one IP address in text form.
func scanAddr(row rowScanner) (netip.Addr, error) {
	var s string
	if err := row.Scan(&s); err != nil {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(s)
}

// UntiedConnections returns the newest connections that no test claimed
// from the client networks nets (compared with the connections' client
// key, the downgrade-window network: nets must have the same sizes,
// smtp.client_prefix_v4/v6) that started at or after since, newest
// first, at most limit (0: 50). No networks select nothing.
func (s *Store) UntiedConnections(ctx context.Context, nets []netip.Prefix, since time.Time, limit int) ([]SMTPConnection, error) {
	limit, err := limitOrDefault("untied connections", limit, defaultUntiedLimit)
	if err != nil {
		return nil, err
	}
	var keys []any
	for _, p := range nets {
		if p.IsValid() {
			keys = append(keys, p.Masked().String())
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	query := `SELECT ` + connSelectColumns + ` FROM smtp_connections
WHERE test_id = '' AND client_key IN (?` + strings.Repeat(", ?", len(keys)-1) + `) AND started_ns >= ?
ORDER BY started_ns DESC, id DESC
LIMIT ?`
	return queryRows(ctx, s.db, "untied connections", scanConnection, s.q(query), append(keys, clampToNanos(since), int64(limit))...)
}

// defaultUntiedLimit bounds an UntiedConnections result when the caller
// does not.
const defaultUntiedLimit = 50

// InterruptedConnectionError is the error stored for a connection that was
// still open when the service stopped without ending it (a crash, kill -9,
// power loss): EndInterruptedConnections.
const InterruptedConnectionError = "interrupted: the service stopped during the connection (its end time is not known)"

// EndInterruptedConnections ends the connection records of node still
// open: the ones it left behind when it stopped without closing them (a
// crash, kill -9, power loss). Records from before connections named their
// node (node ”, a single process wrote them) count as its own too. Their
// end time is not known, so it is set to their start, which adds no
// activity to their test's quiet time, and Error says why. Without it such
// a record stays open for ever, and verdict.Final never calls its test
// final (an open connection may still deliver). Call it only while node
// holds no connection: at start, once this process holds the SMTP
// listeners and before it accepts. Other nodes' open records are their
// live sessions and stay (EndDeadNodesConnections ends those of a node
// that died). It returns how many it ended.
func (s *Store) EndInterruptedConnections(ctx context.Context, node string) (int64, error) {
	return execCount(ctx, s.db, "end interrupted connections",
		s.q(`UPDATE smtp_connections SET ended_ns = started_ns, error = ? WHERE ended_ns = 0 AND node IN (?, '')`),
		InterruptedConnectionError, node)
}
