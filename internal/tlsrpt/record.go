// Package tlsrpt parses SMTP TLS Reporting DNS records (RFC 8460 §3): the
// TXT record at _smtp._tls.<domain> that says where to send TLS reports.
//
// TXT records: a TXT RR may hold several character-strings; the caller
// joins them without separators (as internal/resolver's LookupTXT does)
// before ParseRecord or Select, one element per RR.
package tlsrpt

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec/internal/kvrecord"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// Errors of record parsing and selection.
var (
	// ErrNoRecord: no TXT record starts with "v=TLSRPTv1"; the domain does
	// not ask for reports.
	ErrNoRecord = errors.New("tlsrpt: no TLS-RPT record")
	// ErrMultipleRecords: more than one record starts with "v=TLSRPTv1";
	// RFC 8460 §3: no reports are sent then.
	ErrMultipleRecords = errors.New("tlsrpt: more than one TLS-RPT record")
	// ErrSyntax: the record does not follow RFC 8460 §3; the error text
	// says where.
	ErrSyntax = errors.New("tlsrpt: malformed TLS-RPT record")
)

const version = "v=TLSRPTv1"

// Record is a parsed TLS-RPT record. The version is always TLSRPTv1.
type Record struct {
	// RUA are the report URIs in order, each mailto: or https: and
	// validated; as written (percent-encoding kept).
	RUA []string
	// Extensions are the other fields, in order.
	Extensions []Extension
}

// Extension is one tlsrpt-ext-name=tlsrpt-ext-value field.
type Extension = kvrecord.Field

// String formats the record as it would be published.
func (r *Record) String() string {
	return kvrecord.Format(append([]kvrecord.Field{{Name: "v", Value: "TLSRPTv1"}, {Name: "rua", Value: strings.Join(r.RUA, ",")}}, r.Extensions...)...)
}

// IsTLSRPT reports whether a TXT record starts with "v=TLSRPTv1" followed
// by the end, white space or ';' (so "v=TLSRPTv10" is not one).
func IsTLSRPT(txt string) bool {
	rest, ok := strings.CutPrefix(txt, version)
	return ok && (rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t')
}

// ParseRecord parses one TLS-RPT record (its strings joined) by the
// grammar of RFC 8460 §3:
//
//	tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//	field-delim      = *WSP ";" *WSP
//	tlsrpt-version   = %s"v=TLSRPTv1"
//	tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//	tlsrpt-uri       = URI   ; mailto: or https:, "," and ";" %-encoded
//	tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
//
// The version must come first and rua is required, once. Trailing white
// space is tolerated. Errors wrap ErrSyntax.
func ParseRecord(txt string) (*Record, error) {
	fail := func(format string, args ...any) (*Record, error) {
		return nil, fmt.Errorf("%w: %s in %q", ErrSyntax, fmt.Sprintf(format, args...), untrusted.Truncate(txt, 100))
	}
	rest, ok := strings.CutPrefix(txt, version)
	if !ok {
		return fail(`does not start with %q`, version)
	}
	r := &Record{}
	haveRUA := false
	for {
		after, ok := kvrecord.CutDelim(rest)
		if !ok {
			if strings.TrimLeft(rest, " \t") == "" {
				break
			}
			return fail("expected ';' before %q", untrusted.Truncate(rest, 30))
		}
		rest = after
		if rest == "" {
			break // a trailing delimiter is allowed
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return fail("field %q without '='", untrusted.Truncate(rest, 30))
		}
		name := rest[:eq]
		rest = rest[eq+1:]
		if !kvrecord.ValidExtName(name) {
			return fail("bad field name %q", untrusted.Truncate(name, 40))
		}
		if name == "rua" {
			if haveRUA {
				return fail("rua given twice")
			}
			var err error
			if r.RUA, rest, err = parseRUA(rest); err != nil {
				return fail("%s", err)
			}
			haveRUA = true
			continue
		}
		if name == "v" {
			return fail("version field repeated")
		}
		var value string
		value, rest = kvrecord.CutValue(rest)
		if value == "" {
			return fail("empty value of %q", name)
		}
		r.Extensions = append(r.Extensions, Extension{Name: name, Value: value})
	}
	if !haveRUA {
		return fail("no rua field (RFC 8460 §3: required)")
	}
	return r, nil
}

// parseRUA reads tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri) up to the next
// field delimiter and validates each URI.
func parseRUA(s string) (uris []string, rest string, err error) {
	end := strings.IndexByte(s, ';')
	if end < 0 {
		end = len(s)
	}
	// The value ends at ';' or at white space not followed by ',' or ';'.
	value := strings.TrimRight(s[:end], " \t")
	rest = s[len(value):]
	if value == "" {
		return nil, "", errors.New("empty rua")
	}
	for _, u := range strings.Split(value, ",") {
		u = strings.Trim(u, " \t")
		if err := checkURI(u); err != nil {
			return nil, "", err
		}
		uris = append(uris, u)
	}
	return uris, rest, nil
}

// checkURI accepts the two schemes of RFC 8460 §3: mailto: with one
// address and https: with a host.
func checkURI(s string) error {
	if s == "" {
		return errors.New("empty rua URI (a stray ','?)")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f {
			return fmt.Errorf("rua URI %q contains %q (RFC 3986: %%-encode it)", untrusted.Truncate(s, 60), c)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("rua URI %q: %v", untrusted.Truncate(s, 60), err)
	}
	switch strings.ToLower(u.Scheme) {
	case "mailto":
		if u.Opaque == "" {
			return fmt.Errorf("rua URI %q: no address after mailto:", untrusted.Truncate(s, 60))
		}
		addr, err := url.PathUnescape(u.Opaque)
		if err != nil {
			return fmt.Errorf("rua URI %q: bad %%-encoding", untrusted.Truncate(s, 60))
		}
		a, err := mail.ParseAddress(addr)
		if err != nil || a.Address != addr || a.Name != "" {
			return fmt.Errorf("rua URI %q: %q is not one e-mail address", untrusted.Truncate(s, 60), untrusted.Truncate(addr, 60))
		}
		at := strings.LastIndexByte(addr, '@')
		if !validHost(addr[at+1:]) {
			return fmt.Errorf("rua URI %q: bad domain %q", untrusted.Truncate(s, 60), untrusted.Truncate(addr[at+1:], 60))
		}
	case "https":
		if u.Opaque != "" || u.Host == "" {
			return fmt.Errorf("rua URI %q: https URI without a host", untrusted.Truncate(s, 60))
		}
		if u.User != nil {
			return fmt.Errorf("rua URI %q: user information not allowed", untrusted.Truncate(s, 60))
		}
		if !validHost(u.Hostname()) {
			return fmt.Errorf("rua URI %q: bad host %q", untrusted.Truncate(s, 60), untrusted.Truncate(u.Hostname(), 60))
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("rua URI %q: invalid port %q", untrusted.Truncate(s, 60), untrusted.Truncate(p, 10))
			}
		}
	case "":
		return fmt.Errorf("rua URI %q has no scheme (commas inside a URI must be %%-encoded, RFC 8460 §3)", untrusted.Truncate(s, 60))
	default:
		return fmt.Errorf("rua URI %q: scheme %q not supported (RFC 8460 §3: mailto or https)", untrusted.Truncate(s, 60), u.Scheme)
	}
	return nil
}

// validHost accepts a DNS name of letters, digits, '-', '_' and dots
// (labels of 1–63 octets, at most 253, one trailing dot allowed) or an IP
// literal as url.URL.Hostname gives it.
func validHost(h string) bool {
	if strings.Contains(h, ":") { // IPv6 literal (brackets removed)
		return true
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !kvrecord.IsAlnum(c) && c != '-' && c != '_' {
				return false
			}
		}
	}
	return true
}

// Select chooses the TLS-RPT record among the TXT records at
// _smtp._tls.<domain> (RFC 8460 §3): records not starting with
// "v=TLSRPTv1" (IsTLSRPT) are discarded; exactly one must remain
// (ErrNoRecord, ErrMultipleRecords — then no reports are sent), and it
// must parse (ErrSyntax).
func Select(txts []string) (*Record, error) {
	var found []string
	for _, t := range txts {
		if IsTLSRPT(t) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return nil, ErrNoRecord
	case 1:
		return ParseRecord(found[0])
	}
	return nil, fmt.Errorf("%w (%d; RFC 8460 §3: no reports are sent)", ErrMultipleRecords, len(found))
}
