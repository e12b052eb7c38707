package mtasts

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/kvrecord"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// Limits of RFC 8461.
const (
	// MaxPolicySize bounds the policy text (§3.3: senders may limit the
	// body to 64 KiB).
	MaxPolicySize = 64 << 10
	// MaxMaxAge is the largest max_age, about one year (§3.2).
	MaxMaxAge = 31557600 * time.Second
	// maxIDLength is the longest record id (§3.1: 1*32 ALPHA/DIGIT).
	maxIDLength = 32
)

// Errors of record and policy parsing.
var (
	// ErrNoRecord: no TXT record at _mta-sts starts with "v=STSv1": the
	// domain has no MTA-STS (RFC 8461 §3.1).
	ErrNoRecord = errors.New("mtasts: no MTA-STS record")
	// ErrMultipleRecords: more than one record starts with "v=STSv1"; §3.1
	// says to treat the domain as having no available policy.
	ErrMultipleRecords = errors.New("mtasts: more than one MTA-STS record")
	// ErrRecordSyntax: the record does not follow §3.1.
	ErrRecordSyntax = errors.New("mtasts: malformed MTA-STS record")
	// ErrPolicySyntax: the policy text does not follow §3.2.
	ErrPolicySyntax = errors.New("mtasts: malformed MTA-STS policy")
	// ErrPolicyTooLarge: the policy text exceeds MaxPolicySize.
	ErrPolicyTooLarge = errors.New("mtasts: policy larger than 64 KiB")
)

// Record is a parsed _mta-sts TXT record (RFC 8461 §3.1). The version is
// always STSv1.
type Record struct {
	// ID identifies the policy version: 1–32 letters and digits.
	ID string
	// Extensions are the other fields, in order (§3.1: "extensions"; they
	// are kept for reports but mean nothing to a sender).
	Extensions []Extension
}

// Extension is one name=value field of a record that is not "id".
type Extension = kvrecord.Field

// String formats the record as it would be published.
func (r Record) String() string {
	return kvrecord.Format(append([]kvrecord.Field{{Name: "v", Value: "STSv1"}, {Name: "id", Value: r.ID}}, r.Extensions...)...)
}

// ParseRecord parses the text of one TXT record (its strings already
// joined) by the grammar of RFC 8461 §3.1:
//
//	sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
//	sts-field-delim = *WSP ";" *WSP
//	sts-version     = %s"v=STSv1"
//	sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//	sts-extension   = sts-ext-name "=" sts-ext-value
//
// The id is required; when a field occurs twice the first counts (§3.2
// states this for policies; we apply it to the record too). Errors wrap
// ErrRecordSyntax.
func ParseRecord(txt string) (Record, error) {
	fail := func(format string, args ...any) (Record, error) {
		return Record{}, fmt.Errorf("%w: %s in %q", ErrRecordSyntax, fmt.Sprintf(format, args...), untrusted.Truncate(txt, 100))
	}
	rest, ok := strings.CutPrefix(txt, "v=STSv1")
	if !ok {
		return fail(`does not start with "v=STSv1"`)
	}
	var r Record
	haveID := false
	for {
		after, ok := kvrecord.CutDelim(rest)
		if !ok {
			if rest == "" {
				break
			}
			return fail("expected ';' before %q", untrusted.Truncate(rest, 20))
		}
		rest = after
		if rest == "" {
			if !haveID && r.Extensions == nil {
				return fail("no field after the version")
			}
			break // a trailing delimiter is allowed
		}
		eq := strings.IndexByte(rest, '=')
		if eq < 0 {
			return fail("field without '='")
		}
		name := rest[:eq]
		rest = rest[eq+1:]
		if !kvrecord.ValidExtName(name) {
			return fail("bad field name %q", untrusted.Truncate(name, 40))
		}
		var value string
		value, rest = kvrecord.CutValue(rest)
		if value == "" {
			return fail("empty value of %q", name)
		}
		if name == "id" {
			if len(value) > maxIDLength || !isAlnum(value) {
				return fail("id %q is not 1–32 letters and digits", untrusted.Truncate(value, 40))
			}
			if !haveID {
				r.ID, haveID = value, true
			}
			continue
		}
		r.Extensions = append(r.Extensions, Extension{Name: name, Value: value})
	}
	if !haveID {
		return fail("no id")
	}
	return r, nil
}

// PickRecord chooses the MTA-STS record among the TXT records found at
// _mta-sts.<domain> (RFC 8461 §3.1): records that do not start with
// "v=STSv1" followed by the field delimiter are discarded; exactly one
// must remain (ErrNoRecord, ErrMultipleRecords), and it must parse
// (ErrRecordSyntax).
func PickRecord(txts []string) (Record, error) {
	var found []string
	for _, t := range txts {
		if rest, ok := strings.CutPrefix(t, "v=STSv1"); ok {
			if _, ok := kvrecord.CutDelim(rest); ok {
				found = append(found, t)
			}
		}
	}
	switch len(found) {
	case 0:
		return Record{}, ErrNoRecord
	case 1:
		return ParseRecord(found[0])
	}
	return Record{}, fmt.Errorf("%w (%d)", ErrMultipleRecords, len(found))
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if !kvrecord.IsAlnum(s[i]) {
			return false
		}
	}
	return s != ""
}

// ParsePolicy parses a policy text (RFC 8461 §3.2). Lines end in CRLF or LF;
// each is "key:" *WSP value, trailing white space ignored. The first line
// must be "version: STSv1"; "mode" (enforce, testing or none) and
// "max_age" (0..31557600 seconds) are required; "mx" may repeat and is
// required at least once unless the mode is none. Unknown keys are ignored
// (§3.2); for the known keys other than mx only the first occurrence
// counts (§3.2). Blank lines are tolerated. The mx patterns come back in
// lower case without a trailing dot, so that the parsed policy formats
// (Policy.String) to a text that parses to the same policy. Errors wrap
// ErrPolicySyntax or ErrPolicyTooLarge.
func ParsePolicy(text string) (Policy, error) {
	if len(text) > MaxPolicySize {
		return Policy{}, fmt.Errorf("%w (%d octets)", ErrPolicyTooLarge, len(text))
	}
	lineNo := 0
	fail := func(format string, args ...any) (Policy, error) {
		return Policy{}, fmt.Errorf("%w: line %d: %s", ErrPolicySyntax, lineNo, fmt.Sprintf(format, args...))
	}
	var p Policy
	seen := map[string]bool{}
	for line := range strings.SplitSeq(text, "\n") {
		lineNo++
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimRight(line, " \t") == "" {
			if lineNo == 1 {
				return fail(`the first line must be "version: STSv1"`)
			}
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return fail("no ':' in %q", untrusted.Truncate(line, 40))
		}
		if !kvrecord.ValidExtName(key) {
			return fail("bad key %q", untrusted.Truncate(key, 40))
		}
		value = strings.Trim(value, " \t")
		if lineNo == 1 && key != "version" {
			return fail(`the first line must be "version: STSv1"`)
		}
		if seen[key] && key != "mx" {
			continue // §3.2: only the first instance counts
		}
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return fail("version %q, want STSv1", untrusted.Truncate(value, 20))
			}
		case "mode":
			m := Mode(value)
			if m != ModeEnforce && m != ModeTesting && m != ModeNone {
				return fail("mode %q, want enforce, testing or none", untrusted.Truncate(value, 20))
			}
			p.Mode = m
		case "max_age":
			// sts-policy-max-age-value = 1*10(DIGIT)
			if len(value) == 0 || len(value) > 10 || strings.Trim(value, "0123456789") != "" {
				return fail("max_age %q is not 1–10 digits", untrusted.Truncate(value, 20))
			}
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil || time.Duration(n)*time.Second > MaxMaxAge {
				return fail("max_age %s exceeds %d", value, int64(MaxMaxAge/time.Second))
			}
			p.MaxAge = time.Duration(n) * time.Second
		case "mx":
			mx, err := parseMXPattern(value)
			if err != nil {
				return fail("%v", err)
			}
			p.MX = append(p.MX, mx)
		default:
			// §3.2: unknown fields are ignored.
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return fail("missing %q", k)
		}
	}
	if p.Mode != ModeNone && len(p.MX) == 0 {
		return fail("mode %s needs at least one mx", p.Mode)
	}
	return p, nil
}

// parseMXPattern checks an mx value: ["*."] Domain, with Domain in A-labels
// (RFC 8461 §3.2; RFC 5321 §4.1.2). It returns it lower case without a
// trailing dot.
func parseMXPattern(v string) (string, error) {
	name := dnsname.Canonical(v)
	host, wildcard := strings.CutPrefix(name, "*.")
	if !validHostname(host) {
		return "", fmt.Errorf("mx %q is not a host name or *.pattern", untrusted.Truncate(v, 80))
	}
	if wildcard {
		return "*." + host, nil
	}
	return host, nil
}

// validHostname checks an LDH host name (RFC 5321 §4.1.2 sub-domain: a
// letter or digit, then letters, digits and hyphens, ending in a letter
// or digit), at most 63 octets a label and 253 in all.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || !kvrecord.IsAlnum(label[0]) || !kvrecord.IsAlnum(label[len(label)-1]) {
			return false
		}
		for i := 0; i < len(label); i++ {
			if !kvrecord.IsAlnum(label[i]) && label[i] != '-' {
				return false
			}
		}
	}
	return true
}

// Matches tells whether host may receive mail under the policy: it equals
// an mx pattern, or a "*." pattern with exactly one more label in front
// (RFC 8461 §4.1: "*.example.com" matches "mx.example.com" but neither
// "example.com" nor "a.mx.example.com"). The comparison ignores case and
// trailing dots.
func (p Policy) Matches(host string) bool {
	h := dnsname.Canonical(host)
	if h == "" {
		return false
	}
	for _, pat := range p.MX {
		pat = dnsname.Canonical(pat)
		if suffix, ok := strings.CutPrefix(pat, "*."); ok {
			first, rest, ok := strings.Cut(h, ".")
			if ok && first != "" && rest == suffix {
				return true
			}
			continue
		}
		if h == pat {
			return true
		}
	}
	return false
}
