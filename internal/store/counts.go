package store

import (
	"context"
	"database/sql"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// newWriteSeconds is the histogram of write transactions: from the
// millisecond of a plain commit to the seconds of a store that waits on
// its disk or on a long writer.
func newWriteSeconds() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "mailsec", Name: "store_write_seconds",
		Help:    "Duration of the store's write transactions (inTx, inDurableTx), waiting for the one SQLite writer included.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
}

// timeWrite records a write transaction begun at start; deferred by the
// transaction helpers.
func (s *Store) timeWrite(start time.Time) { s.writeSeconds.Observe(time.Since(start).Seconds()) }

// WriteSeconds is the histogram of write transactions, for the operator's
// metrics (registered there, not globally).
func (s *Store) WriteSeconds() prometheus.Histogram { return s.writeSeconds }

// Count is a number of rows and the values of what they were grouped by,
// in the order Counts documents.
type Count struct {
	Labels []string
	N      int64
}

// Counts are the rows the store holds now, grouped the way an operator
// watches the service. They fall when the retention purge runs: they are
// what is held, not what happened since the start.
type Counts struct {
	Tests         []Count // by state (open, acked, final)
	Verdicts      []Count // final tests by the frozen verdict's policy
	ResultMails   []Count // final tests by mail_state (pending, sent, failed, withheld, none)
	MailAttempts  []Count // result mail delivery attempts by status
	Connections   []Count // SMTP connections by persona (0: unknown yet) and state
	PolicyFetches []Count // fetches of zone A's policy by HTTP status
	TLSRPTReports int64
	InboundChecks int64
	ScanItems     []Count // by state (pending, running, done, error)
}

// Counts counts the held rows; each statement is one grouped scan of its
// table (the tables' sizes are bounded by the retention settings).
func (s *Store) Counts(ctx context.Context) (Counts, error) {
	var c Counts
	verdictPolicy := `json_extract(verdict, '$.policy')`
	if s.dialect == dialectPostgres {
		verdictPolicy = `(verdict::json ->> 'policy')`
	}
	// Labels are selected as text (persona and status are integers), the
	// count last.
	grouped := []struct {
		into   *[]Count
		labels int
		what   string
		query  string
	}{
		{&c.Tests, 1, "count tests", `SELECT state, count(*) FROM tests GROUP BY state`},
		{&c.Verdicts, 1, "count verdicts", `SELECT COALESCE(` + verdictPolicy + `, ''), count(*) FROM test_results GROUP BY 1`},
		{&c.ResultMails, 1, "count result mails", `SELECT mail_state, count(*) FROM test_results GROUP BY mail_state`},
		{&c.MailAttempts, 1, "count result mail attempts", `SELECT status, count(*) FROM result_mail_attempts GROUP BY status`},
		{&c.Connections, 2, "count connections", `SELECT CAST(persona AS TEXT), state, count(*) FROM smtp_connections GROUP BY persona, state`},
		{&c.PolicyFetches, 1, "count policy fetches", `SELECT CAST(status AS TEXT), count(*) FROM policy_fetches GROUP BY status`},
		{&c.ScanItems, 1, "count scan items", `SELECT state, count(*) FROM scan_items GROUP BY state`},
	}
	for _, g := range grouped {
		rows, err := queryRows(ctx, s.db, g.what, scanCount(g.labels), s.q(g.query))
		if err != nil {
			return Counts{}, err
		}
		*g.into = rows
	}
	for _, sc := range c.ScanItems {
		if sc.Labels[0] == "pending" || sc.Labels[0] == "running" {
		}
	}
	for _, one := range []struct {
		into  *int64
		query string
	}{
		{&c.TLSRPTReports, `SELECT count(*) FROM tlsrpt_reports`},
		{&c.InboundChecks, `SELECT count(*) FROM inbound_checks`},
	} {
		n, err := queryOne(ctx, s.db, "count rows", scanValue[int64], one.query)
		if err != nil {
			return Counts{}, err
		}
		*one.into = n
	}
	return c, nil
}

// scanCount reads a row of text label columns followed by a count.
func scanCount(labels int) func(rowScanner) (Count, error) {
	return func(row rowScanner) (Count, error) {
		c := Count{Labels: make([]string, labels)}
		dest := make([]any, 0, labels+1)
		for i := range c.Labels {
			dest = append(dest, &c.Labels[i])
		}
		err := row.Scan(append(dest, &c.N)...)
		return c, err
	}
}

// Ping says whether the store answers a read and grants the write lock
// (an empty write transaction: a writer stuck holding it, or a database
// that cannot be written, fails here before a test's evidence is lost).
func (s *Store) Ping(ctx context.Context) error {
	if _, err := queryOne(ctx, s.db, "ping", scanValue[int64], `SELECT count(*) FROM schema_migrations`); err != nil {
		return err
	}
	return s.inTx(ctx, "ping", func(*sql.Tx) error { return nil })
}
