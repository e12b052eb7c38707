package scan

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/csvsafe"
	"github.com/mailsec/mailsec/internal/store"
)

// Record is one line of the JSON Lines output: one per input line that is
// neither blank nor a comment, in input order. The key facts are null when
// there is no result (a bad line, a duplicate, a failed or pending check).
type Record struct {
	Line      int64           `json:"line"`
	Input     string          `json:"input"`
	Domain    string          `json:"domain"`
	Label     string          `json:"label"`
	Kind      string          `json:"kind"`  // domain, invalid, duplicate
	State     string          `json:"state"` // done, error, pending, running
	Colour    colour.Colour   `json:"colour"`
	Qualified *bool           `json:"qualified"`
	DNSSEC    *bool           `json:"dnssec"`
	DANE      *bool           `json:"dane"`
	MTASTS    *bool           `json:"mta_sts"`
	ValidCert *bool           `json:"valid_cert"`
	STARTTLS  *bool           `json:"starttls"`
	Error     string          `json:"error"`
	Result    json.RawMessage `json:"result,omitempty"` // the check's JSON (mailsec.check.v1)
}

// RecordSchema names the JSON Lines records.
const RecordSchema = "mailsec.scan.v1"

func newRecord(it store.ScanItem) Record {
	r := Record{Line: it.Line, Input: it.Input, Domain: it.Domain, Label: it.Label, Kind: it.Kind, State: it.State,
		Colour: colour.Colour(it.Summary.Colour), Error: it.Error}
	if it.State == store.ScanPending || it.State == store.ScanRunning {
		r.Error = "not checked yet (the scan was interrupted; resume it)"
	}
	if it.Summary.Colour != "" { // the check gave a result (Result is not read for CSV and HTML)
		b := func(v bool) *bool { return &v }
		s := it.Summary
		r.Qualified, r.DNSSEC, r.DANE, r.MTASTS, r.ValidCert, r.STARTTLS =
			b(s.Qualified), b(s.DNSSEC), b(s.DANE), b(s.MTASTS), b(s.ValidCert), b(s.STARTTLS)
		r.Result = it.Result
	}
	return r
}

// WriteJSONL writes every item of the scan as a JSON Lines record.
func WriteJSONL(ctx context.Context, st *store.Store, id string, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	err := st.EachScanItem(ctx, id, true, func(it store.ScanItem) error {
		return enc.Encode(newRecord(it))
	})
	if err != nil {
		return fmt.Errorf("scan: JSON Lines: %w", err)
	}
	return bw.Flush()
}

// CSVHeader is the header row of the CSV output.
var CSVHeader = []string{"domain", "label", "colour", "qualified", "dnssec", "dane", "mta_sts", "valid_cert", "starttls", "error", "line", "input", "state"}

// WriteCSV writes every item of the scan as a CSV row (RFC 4180). Booleans
// are true/false, empty without a result. Text that a spreadsheet would
// take for a formula is prefixed with an apostrophe.
func WriteCSV(ctx context.Context, st *store.Store, id string, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	cw := csv.NewWriter(bw)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	err := st.EachScanItem(ctx, id, false, func(it store.ScanItem) error {
		r := newRecord(it)
		b := func(v *bool) string {
			if v == nil {
				return ""
			}
			return strconv.FormatBool(*v)
		}
		return cw.Write([]string{csvsafe.Cell(r.Domain), csvsafe.Cell(r.Label), string(r.Colour), b(r.Qualified), b(r.DNSSEC), b(r.DANE), b(r.MTASTS),
			b(r.ValidCert), b(r.STARTTLS), csvsafe.Cell(r.Error), strconv.FormatInt(r.Line, 10), csvsafe.Cell(r.Input), r.State})
	})
	if err != nil {
		return fmt.Errorf("scan: CSV: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("scan: CSV: %w", err)
	}
	return bw.Flush()
}
