package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
)

// Limits of a report (RFC 8460 §5.3: a report is a small JSON document).
const (
	// MaxReportBytes bounds a report's JSON, compressed or not.
	MaxReportBytes = 1 << 20
	// MaxGzipRatio bounds how much a gzip body may expand: a report's JSON
	// compresses to about a tenth; a thousandfold expansion is a bomb.
	MaxGzipRatio = 100
	// maxPolicies and maxFailureDetails bound the lists a report holds.
	maxPolicies       = 1000
	maxFailureDetails = 1000
)

// Sentinel errors; every error of ParseReport and Gunzip wraps one.
var (
	ErrReport   = errors.New("tlsrpt: not a valid TLS report")
	ErrTooLarge = errors.New("tlsrpt: report too large")
	ErrGzipBomb = errors.New("tlsrpt: gzip body expands too much")
)

// Policy types (RFC 8460 §4.4, "policy-type").
const (
	PolicyTLSA     = "tlsa"
	PolicySTS      = "sts"
	PolicyNotFound = "no-policy-found"
)

// ResultTypes are the failure result types of RFC 8460 §4.3; a report may
// name others (extensions), which are kept as sent.
var ResultTypes = []string{
	"starttls-not-supported", "certificate-host-mismatch", "certificate-expired", "certificate-not-trusted",
	"validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required",
	"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
}

// Report is an aggregate TLS report (RFC 8460 §4.4).
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyResult `json:"policies"`
}

// DateRange is the time a report covers.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// PolicyResult is what the reporter saw for one policy.
type PolicyResult struct {
	Policy         Policy          `json:"policy"`
	Summary        Summary         `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details"`
}

// Policy is the policy the reporter applied.
type Policy struct {
	Type   string   `json:"policy-type"`
	String []string `json:"policy-string"`
	Domain string   `json:"policy-domain"`
	// MXHost: the RFC's example gives one string, its grammar a list;
	// reporters send both, and both are read.
	MXHost StringList `json:"mx-host"`
}

// Summary counts the sessions.
type Summary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

// FailureDetail is one kind of failure seen (RFC 8460 §4.4).
type FailureDetail struct {
	ResultType            string `json:"result-type"`
	SendingMTAIP          string `json:"sending-mta-ip"`
	ReceivingMXHostname   string `json:"receiving-mx-hostname"`
	ReceivingMXHelo       string `json:"receiving-mx-helo"`
	ReceivingIP           string `json:"receiving-ip"`
	FailedSessionCount    int64  `json:"failed-session-count"`
	AdditionalInformation string `json:"additional-information"`
	FailureReasonCode     string `json:"failure-reason-code"`
}

// StringList is a JSON list of strings that also accepts one string.
type StringList []string

// UnmarshalJSON reads a string or a list of strings.
func (l *StringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = StringList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("a string or a list of strings: %w", err)
	}
	*l = many
	return nil
}

// ParseReport reads and checks a report's JSON (not compressed): the
// fields RFC 8460 §4.4 requires are present, the date range is ordered,
// each policy has a known type and a domain, counts are not negative, and
// each failure detail names its result type. Unknown fields are ignored
// (the format may be extended).
func ParseReport(data []byte) (Report, error) {
	if len(data) > MaxReportBytes {
		return Report{}, fmt.Errorf("%w: %d octets, more than %d", ErrTooLarge, len(data), MaxReportBytes)
	}
	var r Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrReport, err)
	}
	if dec.More() {
		return Report{}, fmt.Errorf("%w: data after the JSON object", ErrReport)
	}
	if err := r.check(); err != nil {
		return Report{}, fmt.Errorf("%w: %v", ErrReport, err)
	}
	return r, nil
}

func (r Report) check() error {
	switch {
	case strings.TrimSpace(r.OrganizationName) == "":
		return errors.New("no organization-name")
	case strings.TrimSpace(r.ReportID) == "":
		return errors.New("no report-id")
	case r.DateRange.Start.IsZero() || r.DateRange.End.IsZero():
		return errors.New("no date-range")
	case r.DateRange.End.Before(r.DateRange.Start):
		return errors.New("date-range ends before it starts")
	case len(r.Policies) == 0:
		return errors.New("no policies")
	case len(r.Policies) > maxPolicies:
		return fmt.Errorf("%d policies, more than %d", len(r.Policies), maxPolicies)
	}
	for i, p := range r.Policies {
		switch p.Policy.Type {
		case PolicyTLSA, PolicySTS, PolicyNotFound:
		default:
			return fmt.Errorf("policy %d: unknown policy-type %q", i, p.Policy.Type)
		}
		if _, err := dnsname.NormalizeDomain(p.Policy.Domain); err != nil {
			return fmt.Errorf("policy %d: policy-domain %q: %v", i, p.Policy.Domain, err)
		}
		if p.Summary.Successful < 0 || p.Summary.Failed < 0 {
			return fmt.Errorf("policy %d: negative session count", i)
		}
		if len(p.FailureDetails) > maxFailureDetails {
			return fmt.Errorf("policy %d: %d failure details, more than %d", i, len(p.FailureDetails), maxFailureDetails)
		}
		for j, f := range p.FailureDetails {
			if strings.TrimSpace(f.ResultType) == "" {
				return fmt.Errorf("policy %d, failure %d: no result-type", i, j)
			}
			if f.FailedSessionCount < 0 {
				return fmt.Errorf("policy %d, failure %d: negative failed-session-count", i, j)
			}
		}
	}
	return nil
}

// Gunzip decompresses a gzip body (application/tlsrpt+gzip, RFC 8460 §5)
// of at most MaxReportBytes into at most MaxReportBytes, and refuses a body
// that expands more than MaxGzipRatio times.
func Gunzip(body []byte) ([]byte, error) {
	if len(body) > MaxReportBytes {
		return nil, fmt.Errorf("%w: %d octets compressed, more than %d", ErrTooLarge, len(body), MaxReportBytes)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %v", ErrReport, err)
	}
	limit := min(int64(MaxReportBytes), int64(len(body))*MaxGzipRatio)
	out, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: gzip: %v", ErrReport, err)
	}
	if int64(len(out)) > limit {
		if limit < MaxReportBytes {
			return nil, fmt.Errorf("%w: more than %d times its %d octets", ErrGzipBomb, MaxGzipRatio, len(body))
		}
		return nil, fmt.Errorf("%w: more than %d octets uncompressed", ErrTooLarge, MaxReportBytes)
	}
	return out, nil
}
