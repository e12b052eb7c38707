package report

import (
	"regexp"
	"strings"
)

// Redact hides the local part of a mail address but its first character:
// "jane@example.org" → "j***@example.org" (the seed's form). The domain
// stays: it is what the test is about. The null reverse-path "" stays "";
// text without "@" is hidden whole ("***"), as it may be a bare local part.
func Redact(addr string) string {
	addr = strings.TrimSpace(addr)
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	if addr == "" {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "***"
	}
	local, domain := addr[:at], addr[at+1:]
	first := ""
	for _, r := range local {
		if r != '"' && r != ' ' {
			first = string(r)
			break
		}
	}
	return first + "***@" + strings.ToLower(domain)
}

// addrRe finds mail addresses in free text (verdict reasons, SMTP replies,
// inbound sentences). It is deliberately wide: a false positive costs a few
// characters of a reason, a miss leaks an address. The local part stops at
// every Unicode space (as strings.TrimSpace knows them, not only RE2's \s:
// \v, NEL, NBSP and the Z category), so Redact never trims part of a match
// away and joins what stood before it to the redacted address (the fuzzer
// found "0@\v0@0" → "0@0***@0").
var addrRe = regexp.MustCompile(`[^\s\v\x{85}\p{Z}<>()\[\],;:"'@]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?`)

// redactText redacts every mail address in s.
func redactText(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return addrRe.ReplaceAllStringFunc(s, Redact)
}

// RedactText is redactText for other packages' free text (logs, the web
// page's reasons).
func RedactText(s string) string { return redactText(s) }
