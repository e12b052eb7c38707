// Package retention deletes what the service no longer needs to keep: tests
// past their retention with everything recorded for them, connections no
// test claimed, policy fetches too old to be any test's evidence, the
// downgrade-window state of clients with no connection left, inbound
// checks tied to no test, DNS queries past the query log's retention, and
// TLS-RPT report mails past theirs, and the shared caps' rows of scans
// whose workers all died (an hour old).
//
// It runs in its own loop whenever the service runs, whether or not the
// web server is enabled: the tables it prunes are written by the SMTP
// personas and the policy host, which face the Internet either way. (The
// DNS query log prunes itself: store.DNSQueryLog.)
package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/periodic"
	"github.com/mailsec/mailsec/internal/store"
)

// Defaults.
const (
	DefaultTests  = 30 * 24 * time.Hour
	DefaultTLSRPT = 30 * 24 * time.Hour
	DefaultEvery  = time.Hour

	// ScanSharesKept: rate windows and destination slots of scans
	// (store.PruneScanShares) older than this are deleted. Workers prune
	// their own scan's after a minute; this is for scans left behind.
	ScanSharesKept = time.Hour

	// ACMELoadsKept: a node that has not loaded the ACME challenge
	// records for this long is gone for good; its load row is deleted
	// (store.PruneACMEChallenges).
	ACMELoadsKept = 24 * time.Hour

	// purgeBatch and maxPurgeBatches bound one round's test deletions
	// (100,000 tests); the next round goes on.
	purgeBatch      = 1000
	maxPurgeBatches = 100
)

// Options configures a Purger. Zero durations take the defaults.
type Options struct {
	Store *store.Store
	// Tests: tests created longer ago are deleted with their connections,
	// results and checks (web.retention); so are connections as old that
	// no test claimed.
	Tests time.Duration
	// FetchWindow is how far before a test's creation policy fetches are
	// its evidence (evidence.Rules.FetchWindow). A fetch older than
	// Tests+FetchWindow is no longer evidence of any stored test and is
	// deleted.
	FetchWindow time.Duration
	// TLSRPT: TLS-RPT report mails received longer ago are deleted
	// (smtp.tlsrpt_retention).
	TLSRPT time.Duration
	// DNSQueries: logged DNS queries older than this are deleted
	// (dns.query_log_retention; the query log's writer prunes too, but
	// only while the DNS server runs). 0: left to the query log.
	DNSQueries time.Duration
	// Every is the interval between purges (default 1h).
	Every  time.Duration
	Logger *slog.Logger     // nil: discard
	Now    func() time.Time // nil: time.Now
}

// Purger deletes expired rows; see the package documentation.
type Purger struct{ o Options }

// Counts says what one purge deleted.
type Counts struct {
	Tests               int64 `json:"tests"`
	UntiedConnections   int64 `json:"untied_connections"`
	PolicyFetches       int64 `json:"policy_fetches"`
	TLSRPTReports       int64 `json:"tlsrpt_reports"`
	Clients             int64 `json:"clients"`
	UntiedInboundChecks int64 `json:"untied_inbound_checks"`
	DNSQueries          int64 `json:"dns_queries"`
	ScanShares          int64 `json:"scan_shares"`
	ACMEChallenges      int64 `json:"acme_challenges"`
}

// New returns a Purger for o.
func New(o Options) *Purger {
	option.Positive(&o.Tests, DefaultTests)
	option.Positive(&o.TLSRPT, DefaultTLSRPT)
	if o.FetchWindow < 0 {
		o.FetchWindow = 0
	}
	option.Positive(&o.Every, DefaultEvery)
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	return &Purger{o: o}
}

// Run purges at once and then every interval until ctx ends; a failed
// round is logged and retried at the next.
func (p *Purger) Run(ctx context.Context) error {
	periodic.Run(ctx, p.o.Every, p.o.Logger, "retention purge", func(ctx context.Context) error {
		// What was deleted is said even when the round then failed.
		c, err := p.Purge(ctx)
		if c != (Counts{}) {
			p.o.Logger.Info("retention purge", "tests", c.Tests, "untied_connections", c.UntiedConnections,
				"policy_fetches", c.PolicyFetches, "tlsrpt_reports", c.TLSRPTReports,
				"clients", c.Clients, "untied_inbound_checks", c.UntiedInboundChecks, "dns_queries", c.DNSQueries,
				"scan_shares", c.ScanShares, "acme_challenges", c.ACMEChallenges)
		}
		return err
	})
	return nil
}

// Purge deletes, once, everything past its retention. Each kind is tried
// even if another failed; the errors are joined.
func (p *Purger) Purge(ctx context.Context) (Counts, error) {
	return p.PurgeAt(ctx, p.o.Now())
}

// PurgeAt is Purge as if it were now: `mailsec store purge -as-of` shows
// what would be gone by a later time (on a copy of the store).
func (p *Purger) PurgeAt(ctx context.Context, now time.Time) (Counts, error) {
	var c Counts
	testsBefore := now.Add(-p.o.Tests)
	var errs []error
	n, err := p.purgeTests(ctx, testsBefore)
	c.Tests = n
	errs = append(errs, err)
	c.UntiedConnections, err = p.o.Store.PurgeUntiedConnections(ctx, testsBefore)
	errs = append(errs, err)
	c.PolicyFetches, err = p.o.Store.PrunePolicyFetches(ctx, testsBefore.Add(-p.o.FetchWindow))
	errs = append(errs, err)
	c.TLSRPTReports, err = p.o.Store.PruneTLSRPTReports(ctx, now.Add(-p.o.TLSRPT))
	errs = append(errs, err)
	// After the connections: a client whose connections are all gone.
	c.Clients, err = p.o.Store.PruneClients(ctx, testsBefore)
	errs = append(errs, err)
	c.UntiedInboundChecks, err = p.o.Store.PruneUntiedInboundChecks(ctx, testsBefore)
	errs = append(errs, err)
	// The shared caps of scans whose workers were all killed (a complete
	// scan prunes its own, scan.Run): a rate window or slot an hour old
	// holds nothing back.
	c.ScanShares, err = p.o.Store.PruneScanShares(ctx, "", now.Add(-ScanSharesKept))
	errs = append(errs, err)
	// ACME challenge records past their time (cluster.ChallengeHold) and
	// the load reports of nodes long gone.
	c.ACMEChallenges, err = p.o.Store.PruneACMEChallenges(ctx, now, now.Add(-ACMELoadsKept))
	errs = append(errs, err)
	if p.o.DNSQueries > 0 {
		c.DNSQueries, err = p.o.Store.PruneDNSQueries(ctx, now.Add(-p.o.DNSQueries))
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// purgeTests deletes the tests created before t, with everything recorded
// for them.
func (p *Purger) purgeTests(ctx context.Context, t time.Time) (int64, error) {
	st := p.o.Store
	var n int64
	for range maxPurgeBatches {
		ids, err := st.TestsCreatedBefore(ctx, t, purgeBatch)
		if err != nil {
			return n, err
		}
		for _, id := range ids {
			if err := st.DeleteTest(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
				return n, fmt.Errorf("retention: test %s: %w", id, err)
			}
			n++
		}
		if len(ids) < purgeBatch {
			break
		}
	}
	return n, nil
}
