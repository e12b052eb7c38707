package tlsrpt

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/untrusted"
)

// Media types of a report (RFC 8460 §6.4, §6.5).
const (
	MediaTypeJSON = "application/tlsrpt+json"
	MediaTypeGzip = "application/tlsrpt+gzip"
)

// Bounds of the MIME walk: a report mail is a multipart/report of two or
// three parts (RFC 8460 §5.3); a deeper or wider mail is not one.
const (
	maxMIMEDepth = 4
	maxMIMEParts = 16
)

// ErrNoReportPart: the mail carries no part of a report media type.
var ErrNoReportPart = errors.New("tlsrpt: no application/tlsrpt+json or application/tlsrpt+gzip part")

// MailReport is a report taken from a mail (RFC 8460 §5.3).
type MailReport struct {
	Report Report
	// JSON is the report's JSON, uncompressed, as received.
	JSON []byte
	// Domain and Submitter are the TLS-Report-Domain and
	// TLS-Report-Submitter header fields (§5.3; "" when absent), bounded
	// and printable.
	Domain, Submitter string
}

// Decode reads a report body of the given media type (the Content-Type of
// an HTTPS POST, RFC 8460 §5.4, or of a mail's part, §5.3):
// application/tlsrpt+json, or application/tlsrpt+gzip, decompressed within
// MaxReportBytes and MaxGzipRatio. It returns the report and its JSON.
// Errors wrap ErrReport, ErrTooLarge or ErrGzipBomb.
func Decode(mediaType string, body []byte) (Report, []byte, error) {
	mt, _, err := mime.ParseMediaType(mediaType)
	if err != nil {
		return Report{}, nil, fmt.Errorf("%w: media type %q: %v", ErrReport, untrusted.Printable(mediaType, 100), err)
	}
	data := body
	switch mt {
	case MediaTypeJSON:
	case MediaTypeGzip:
		if data, err = Gunzip(body); err != nil {
			return Report{}, nil, err
		}
	default:
		return Report{}, nil, fmt.Errorf("%w: media type %q, want %s or %s", ErrReport, untrusted.Printable(mt, 100), MediaTypeJSON, MediaTypeGzip)
	}
	r, err := ParseReport(data)
	if err != nil {
		return Report{}, nil, err
	}
	return r, data, nil
}

// ParseMail finds the report in a report mail (RFC 8460 §5.3): the first
// part of media type application/tlsrpt+json or application/tlsrpt+gzip,
// base64 or quoted-printable transfer encoding undone, in a
// multipart/report (or any multipart, as some reporters send
// multipart/mixed) or as the whole body. It reads at most MaxReportBytes
// of the part and walks at most maxMIMEDepth levels and maxMIMEParts
// parts. Errors wrap ErrNoReportPart, ErrReport, ErrTooLarge or
// ErrGzipBomb.
func ParseMail(raw []byte) (MailReport, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return MailReport{}, fmt.Errorf("%w: mail header: %v", ErrReport, err)
	}
	out := MailReport{
		Domain:    untrusted.Printable(strings.TrimSpace(msg.Header.Get("TLS-Report-Domain")), 255),
		Submitter: untrusted.Printable(strings.TrimSpace(msg.Header.Get("TLS-Report-Submitter")), 255),
	}
	parts := 0
	mt, body, err := findReportPart(msg.Header, msg.Body, 0, &parts)
	if err != nil {
		return MailReport{}, err
	}
	out.Report, out.JSON, err = Decode(mt, body)
	if err != nil {
		return MailReport{}, err
	}
	return out, nil
}

// header is what findReportPart needs of a mail's or a part's header.
type header interface {
	Get(string) string
}

// findReportPart returns the media type and decoded body of the first
// report part below h and body.
func findReportPart(h header, body io.Reader, depth int, parts *int) (string, []byte, error) {
	*parts++
	if *parts > maxMIMEParts {
		return "", nil, fmt.Errorf("%w: more than %d MIME parts", ErrReport, maxMIMEParts)
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain" // RFC 2045 §5.2
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", nil, fmt.Errorf("%w: Content-Type %q: %v", ErrReport, untrusted.Printable(ct, 100), err)
	}
	switch {
	case mt == MediaTypeJSON || mt == MediaTypeGzip:
		data, err := decodeTransfer(h.Get("Content-Transfer-Encoding"), body)
		if err != nil {
			return "", nil, err
		}
		return mt, data, nil
	case strings.HasPrefix(mt, "multipart/"):
		if depth >= maxMIMEDepth {
			return "", nil, fmt.Errorf("%w: MIME parts nested more than %d deep", ErrReport, maxMIMEDepth)
		}
		if params["boundary"] == "" {
			return "", nil, fmt.Errorf("%w: %s without a boundary", ErrReport, mt)
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart() // transfer encodings are undone here, for every one
			if errors.Is(err, io.EOF) {
				return "", nil, ErrNoReportPart
			}
			if err != nil {
				return "", nil, fmt.Errorf("%w: MIME: %v", ErrReport, err)
			}
			mt, data, err := findReportPart(p.Header, p, depth+1, parts)
			if errors.Is(err, ErrNoReportPart) {
				continue
			}
			return mt, data, err
		}
	}
	return "", nil, ErrNoReportPart
}

// decodeTransfer undoes a part's Content-Transfer-Encoding (RFC 2045 §6),
// reading at most MaxReportBytes of the decoded body.
func decodeTransfer(cte string, body io.Reader) ([]byte, error) {
	var r io.Reader
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &lineStripper{r: bufio.NewReader(body)})
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "", "7bit", "8bit", "binary":
		r = body
	default:
		return nil, fmt.Errorf("%w: Content-Transfer-Encoding %q", ErrReport, untrusted.Printable(cte, 50))
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxReportBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: report part: %v", ErrReport, err)
	}
	if len(data) > MaxReportBytes {
		return nil, fmt.Errorf("%w: report part of more than %d octets", ErrTooLarge, MaxReportBytes)
	}
	return data, nil
}

// lineStripper drops the line breaks and blanks of a base64 body (RFC
// 2045 §6.8: they are not part of the encoding).
type lineStripper struct{ r *bufio.Reader }

func (l *lineStripper) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c, err := l.r.ReadByte()
		if err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, err
		}
		switch c {
		case '\r', '\n', ' ', '\t':
			continue
		}
		p[n] = c
		n++
	}
	return n, nil
}

// Envelope is what ComposeMail needs besides the report.
type Envelope struct {
	From, To  string
	Submitter string // the reporter's domain (TLS-Report-Submitter)
	Date      time.Time
	// Gzip sends the report as application/tlsrpt+gzip (what large
	// reporters send), else as application/tlsrpt+json.
	Gzip bool
}

// ComposeMail returns a report mail as RFC 8460 §5.3 describes it: a
// multipart/report (report-type "tlsrpt") of a human-readable part and
// the report, base64, named as §5.1 asks; Subject, TLS-Report-Domain and
// TLS-Report-Submitter from the report's first policy domain. The lab's
// reporter and the tests send what it makes.
func ComposeMail(env Envelope, report []byte) ([]byte, error) {
	r, err := ParseReport(report)
	if err != nil {
		return nil, err
	}
	domain := r.Policies[0].Policy.Domain
	mt, ext, body := MediaTypeJSON, "json", report
	if env.Gzip {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		if _, err := zw.Write(report); err != nil {
			return nil, fmt.Errorf("tlsrpt: compose: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("tlsrpt: compose: %w", err)
		}
		mt, ext, body = MediaTypeGzip, "json.gz", b.Bytes()
	}
	// §5.1: sender!policy-domain!begin-timestamp!end-timestamp[!unique-id].extension
	name := fmt.Sprintf("%s!%s!%d!%d.%s", env.Submitter, domain, r.DateRange.Start.Unix(), r.DateRange.End.Unix(), ext)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := func(k, v string) { fmt.Fprintf(&buf, "%s: %s\r\n", k, v) }
	h("From", env.From)
	h("To", env.To)
	h("Date", env.Date.UTC().Format(time.RFC1123Z))
	h("Subject", fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", domain, env.Submitter, r.ReportID))
	h("TLS-Report-Domain", domain)
	h("TLS-Report-Submitter", env.Submitter)
	h("MIME-Version", "1.0")
	h("Content-Type", mime.FormatMediaType("multipart/report", map[string]string{"report-type": "tlsrpt", "boundary": mw.Boundary()}))
	buf.WriteString("\r\n")
	text, err := mw.CreatePart(textprotoHeader("Content-Type", "text/plain; charset=us-ascii"))
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: compose: %w", err)
	}
	fmt.Fprintf(text, "This is an aggregate TLS report from %s for %s.\r\n", env.Submitter, domain)
	part, err := mw.CreatePart(textprotoHeader(
		"Content-Type", mime.FormatMediaType(mt, map[string]string{"name": name}),
		"Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}),
		"Content-Transfer-Encoding", "base64"))
	if err != nil {
		return nil, fmt.Errorf("tlsrpt: compose: %w", err)
	}
	enc := base64.StdEncoding.EncodeToString(body)
	for len(enc) > 76 {
		fmt.Fprintf(part, "%s\r\n", enc[:76])
		enc = enc[76:]
	}
	fmt.Fprintf(part, "%s\r\n", enc)
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("tlsrpt: compose: %w", err)
	}
	return buf.Bytes(), nil
}

func textprotoHeader(kv ...string) textproto.MIMEHeader {
	h := textproto.MIMEHeader{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}
