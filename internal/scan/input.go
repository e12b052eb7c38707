// Package scan runs the inbound check (internal/inbound) for many domains:
// a list read line by line into the store, a job model with leases that
// several workers can share, bounded concurrency, politeness per
// destination (a cap on concurrent connections per MX address, and a
// cache of per-host results so that a hoster's MX is checked once for its
// thousands of domains), a global rate limit, progress, and the JSON Lines,
// CSV and HTML outputs. docs/scan.md describes the model.
//
// The runner works on a Checker (InboundChecker wires in inbound.Check)
// and reads the check's JSON by its documented schema (mailsec.check.v1),
// not by the Go types, so that stored results stay readable as the check
// grows.
package scan

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mailsec/mailsec/internal/untrusted"
)

// Limits of the input.
const (
	MaxLineBytes  = 4096 // a longer line is an error record (the rest of it is skipped)
	MaxLabelBytes = 200  // a longer label is an error record
)

// Line is one input line that is neither blank nor a comment.
type Line struct {
	N      int64  // 1-based line number
	Input  string // the domain field as given
	Domain string // A-label form, no trailing dot ("" when Err is set)
	Label  string
	Err    string // why the line does not name a domain ("" if it does)
}

// Normalizer turns a domain as a person typed it into its A-label form
// (dnsname.NormalizeDomain).
type Normalizer func(string) (string, error)

// ParseLine splits one input line into domain and label. The label is
// optional and follows the domain after a comma or after white space
// ("example.org,law firm", "example.org  authority"); a label in double
// quotes has them removed. skip is true for blank lines and comments
// (first non-blank character '#'). An unusable line gives Err, never a
// panic: a bad domain, a control character, an over-long label.
func ParseLine(n int64, raw string, norm Normalizer, defaultLabel string) (l Line, skip bool) {
	l.N = n
	s := strings.TrimRight(raw, "\r\n")
	if n == 1 {
		s = strings.TrimPrefix(s, "\uFEFF") // a byte order mark some editors write
	}
	t := strings.TrimSpace(s)
	if t == "" || strings.HasPrefix(t, "#") {
		return l, true
	}
	if !utf8.ValidString(t) {
		l.Input = strings.ToValidUTF8(t, "\uFFFD")
		l.Err = "not valid UTF-8"
		return l, false
	}
	dom, label := t, ""
	if i := strings.IndexByte(t, ','); i >= 0 {
		dom, label = t[:i], t[i+1:]
	} else if i := strings.IndexFunc(t, unicode.IsSpace); i >= 0 {
		dom, label = t[:i], t[i:]
	}
	dom = strings.TrimSpace(dom)
	label = strings.TrimSpace(label)
	if len(label) >= 2 && label[0] == '"' && label[len(label)-1] == '"' {
		label = strings.TrimSpace(label[1 : len(label)-1])
	}
	l.Input = dom
	if label == "" {
		label = defaultLabel
	}
	l.Label = label
	switch {
	case strings.IndexFunc(label, unicode.IsControl) >= 0:
		l.Label = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return '?'
			}
			return r
		}, label)
		l.Err = "the label contains a control character"
		return l, false
	case len(label) > MaxLabelBytes:
		l.Label = untrusted.Truncate(label, MaxLabelBytes)
		l.Err = fmt.Sprintf("the label is longer than %d bytes", MaxLabelBytes)
		return l, false
	case dom == "":
		l.Err = "no domain before the label"
		return l, false
	}
	d, err := norm(dom)
	if err != nil {
		l.Err = "not a domain name: " + err.Error()
		return l, false
	}
	l.Domain = d
	return l, false
}

// errStop ends ReadLines early without an error.
var errStop = errors.New("stop")

// ReadLines reads r line by line and calls fn for every line that is not
// blank or a comment, with bounded memory whatever the input: a line
// longer than MaxLineBytes becomes an error record and its rest is
// skipped. It returns the number of lines read. An error from fn stops
// the reading and is returned.
func ReadLines(r io.Reader, norm Normalizer, defaultLabel string, fn func(Line) error) (int64, error) {
	br := bufio.NewReaderSize(r, MaxLineBytes+2)
	var n int64
	for {
		frag, err := br.ReadSlice('\n')
		if len(frag) > 0 || err == nil {
			n++
			var l Line
			skip := false
			if errors.Is(err, bufio.ErrBufferFull) {
				head := string(frag[:min(len(frag), 60)])
				// Drop the rest of the over-long line.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = br.ReadSlice('\n')
				}
				l = Line{N: n, Input: strings.ToValidUTF8(strings.TrimSpace(head), "\uFFFD") + "…",
					Err: fmt.Sprintf("line longer than %d bytes", MaxLineBytes)}
			} else {
				l, skip = ParseLine(n, string(frag), norm, defaultLabel)
			}
			if !skip {
				if ferr := fn(l); ferr != nil {
					if errors.Is(ferr, errStop) {
						return n, nil
					}
					return n, ferr
				}
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return n, nil
		default:
			return n, fmt.Errorf("scan: read line %d: %w", n+1, err)
		}
	}
}
