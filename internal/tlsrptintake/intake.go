// Package tlsrptintake takes in TLS-RPT reports (RFC 8460), by mail to the
// rua mailbox (internal/smtpd, §5.3) and by HTTPS POST (internal/policyhost,
// §5.4): it finds and parses the report, ties it to its test
// (evidence.Gatherer.TieTLSRPT, docs/tlsrpt.md) and stores it with its
// ties, within the store's quota. A report that does not parse changes
// nothing and gets an error saying why, which the two paths send back (SMTP
// 5xx text, HTTP 4xx body). The size of what is read, and the rate per
// client, are bounded by the paths before Accept; the report's own bounds
// (compressed and uncompressed size, gzip ratio, lists) by internal/tlsrpt.
package tlsrptintake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/tlsrpt"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// ErrBadReport wraps every refusal of the report itself (malformed,
// oversize, a gzip bomb, no report in the mail): permanent, the reporter
// should not retry it.
var ErrBadReport = errors.New("tlsrptintake: bad report")

// Submission is one report as it arrived.
type Submission struct {
	Source   string // store.TLSRPTByMail or store.TLSRPTByHTTPS
	Client   netip.Addr
	MailFrom string // the envelope sender of a mail
	// Raw is the mail, or the POST body.
	Raw []byte
	// ContentType is the POST's Content-Type (RFC 8460 §5.4); "" for a
	// mail, whose parts carry theirs.
	ContentType string
}

// Result is what became of an accepted report.
type Result struct {
	ID int64 // the stored report; 0 for a duplicate
	// Tests are the tests it is tied to (none: kept, shown on no test).
	Tests []string
	// Duplicate: the same report (organization-name and report-id) was
	// received already, by either path, and is not stored again.
	Duplicate bool
}

// Options configures an Intake.
type Options struct {
	Evidence evidence.Gatherer // its Store stores the reports. Required.
	Quota    store.TLSRPTQuota
	Logger   *slog.Logger     // nil: discard
	Now      func() time.Time // nil: time.Now
}

// Intake accepts reports; safe for concurrent use.
type Intake struct {
	o Options
}

// New returns an Intake.
func New(o Options) *Intake {
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	return &Intake{o: o}
}

// Accept parses s, ties and stores it. Errors: ErrBadReport (wrapping the
// parser's sentinel, with a text fit to send back), store.ErrTLSRPTFull
// (try later), or a store failure.
func (in *Intake) Accept(ctx context.Context, s Submission) (Result, error) {
	var (
		report tlsrpt.Report
		data   []byte
		err    error
	)
	if s.Source == store.TLSRPTByMail {
		var m tlsrpt.MailReport
		m, err = tlsrpt.ParseMail(s.Raw)
		report, data = m.Report, m.JSON
	} else {
		report, data, err = tlsrpt.Decode(s.ContentType, s.Raw)
	}
	if err != nil {
		in.o.Logger.Info("tlsrpt: report refused", "source", s.Source, "client", s.Client, "err", untrusted.Terminal(err.Error()))
		return Result{}, fmt.Errorf("%w: %w", ErrBadReport, err)
	}
	tests, err := in.o.Evidence.TieTLSRPT(ctx, report)
	if err != nil {
		return Result{}, err
	}
	row := &store.TLSRPTReport{Received: in.o.Now(), Client: s.Client, MailFrom: s.MailFrom, Source: s.Source,
		Raw: s.Raw, Report: data, Key: store.TLSRPTKey(report.OrganizationName, report.ReportID), Tests: tests}
	err = in.o.Evidence.Store.AddTLSRPTReport(ctx, row, in.o.Quota)
	if errors.Is(err, store.ErrTLSRPTDuplicate) {
		return Result{Duplicate: true}, nil
	}
	if err != nil {
		return Result{}, err
	}
	in.o.Logger.Info("tlsrpt: report stored", "id", row.ID, "source", s.Source, "client", s.Client,
		"organization", untrusted.Printable(report.OrganizationName, 100), "report_id", untrusted.Printable(report.ReportID, 100), "tests", tests)
	return Result{ID: row.ID, Tests: tests}, nil
}
