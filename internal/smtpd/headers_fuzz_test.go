package smtpd

import (
	"bytes"
	"context"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailsec/mailsec/internal/mailauth"
	"github.com/mailsec/mailsec/internal/store"
)

// maxFuzzMessage bounds the fuzzed header blocks so that a run is fast;
// the properties do not depend on size.
const maxFuzzMessage = 16 << 10

// headerSeeds are header blocks as senders write them: folded fields,
// bare LF, several signatures, encoded words, group syntax, garbage.
var headerSeeds = []string{
	"From: a@example.org\r\nTo: <t-tok1@" + zoneA + ">, <T-TOK1@" + strings.ToUpper(zoneB) + ">\r\nSubject: x\r\n",
	"To: t-tok1@" + zoneA + "\r\nCc: Test B <t-tok1@" + zoneB + ">\r\n",
	"To: undisclosed-recipients:;\r\nCc: \"a, b\" <test@" + zoneB + ">, =?utf-8?q?J=C3=B6rg?= <x@example.org>\r\n",
	"To: <<t-tok1@" + zoneB + "\r\n",
	"To: Group: t-tok1@" + zoneB + ", (comment) t-tok1@" + zoneA + ";\r\n",
	"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=Example.ORG;\r\n\ts=se\r\n l1; h=from:to:subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n b=dzdVyOfAKCdLXdJOc9G2q8LoXSlEniSbav+yuU4zGeeruD00lszZVoG4ZHRNiYzR\r\nARC-Seal: i=2; a=rsa-sha256; cv=pass; d=example.com; s=arc; b=x\r\n",
	"dkim-signature: v=1; d=; s==; i=@x; d=second\n\tARC-Seal: i=99999999999999999999\n",
	"DKIM-Signature: d=a\x00b\x1b[2J; s=\xff\xfe\r\nDKIM-Signature:;;;=;==;\r\n",
	"ARC-Seal: i=-1\r\nARC-Seal: i= 3 \r\nARC-Seal: i\r\n",
	" leading continuation\r\nX: y\r\n\tcontinued\r\n",
	"",
	"\r\n",
}

// FuzzHeaderFields checks the unfolding of header fields (RFC 5322
// §2.2.3) and the DKIM/ARC tag-list parser (RFC 6376 §3.2) on arbitrary
// header blocks: no field holds a line feed or comes from
// the body;
// tag names are non-empty and trimmed, values hold no white space, and a
// tag list written back from the parsed tags parses to the same tags.
func FuzzHeaderFields(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s), []byte("body\r\nDKIM-Signature: d=body.example\r\n"))
	}
	f.Fuzz(func(t *testing.T, header, body []byte) {
		if len(header)+len(body) > maxFuzzMessage {
			t.Skip()
		}
		header = headerOnly(header)
		fields := headerFields(header)
		withBody := headerFields(append(append(append([]byte(nil), header...), "\r\n\r\n"...), body...))
		if len(fields) != len(withBody) {
			t.Fatalf("the body changed the fields: %q, then %q", fields, withBody)
		}
		if max := bytes.Count(header, []byte("\n")) + 1; len(fields) > max {
			t.Fatalf("%d fields from %d lines", len(fields), max)
		}
		for i, field := range fields {
			if field != withBody[i] {
				t.Fatalf("the body changed field %d: %q, then %q", i, field, withBody[i])
			}
			// A bare CR is no line break (RFC 5322 §2.2 forbids it, and
			// it stays in the field, where mailauth.TagList drops it as space).
			if strings.Contains(field, "\n") {
				t.Fatalf("field %q holds a line break", field)
			}
			_, value, _ := strings.Cut(field, ":")
			checkTagList(t, value)
		}
	})
}

// checkTagList checks mailauth.TagList's promises on value.
func checkTagList(t *testing.T, value string) {
	t.Helper()
	tags := mailauth.TagList(value)
	var b strings.Builder
	for k, v := range tags {
		if k == "" || k != strings.Trim(k, mailauth.TagWhiteSpace) || strings.ContainsAny(k, ";=") {
			t.Fatalf("%q: tag name %q", value, k)
		}
		if strings.ContainsAny(v, " \t\r\n;") {
			t.Fatalf("%q: tag %s value %q holds white space or ';'", value, k, v)
		}
		b.WriteString(k + "=" + v + "; ")
	}
	again := mailauth.TagList(b.String())
	if len(again) != len(tags) {
		t.Fatalf("%q: %q written back as %q parses to %q", value, tags, b.String(), again)
	}
	for k, v := range tags {
		if again[k] != v {
			t.Fatalf("%q: %q written back as %q parses to %q", value, tags, b.String(), again)
		}
	}
}

// FuzzSignatures reads the DKIM and ARC signature list of arbitrary
// messages (every key lookup answers NXDOMAIN, as for a forged
// signature). The list is bounded, in header order, one entry per
// DKIM-Signature and ARC-Seal field, and what it records for the report
// (d=, s=) is bounded, printable text.
func FuzzSignatures(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s + "\r\nbody\r\n"))
	}
	s := &Server{opts: Options{DKIMTimeout: time.Second, DNS: lookupDNS(func(ctx context.Context, d string) ([]string, error) {
		return nil, &net.DNSError{Err: "no such host", Name: d, IsNotFound: true}
	})}}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > maxFuzzMessage {
			t.Skip()
		}
		sigs := s.signatures(msg)
		if n := s.panics.Load(); n != 0 {
			t.Fatalf("panic in DKIM verification: %s", *s.lastPanic.Load())
		}
		if len(sigs) > maxRecordedSignatures {
			t.Fatalf("%d signatures recorded, at most %d", len(sigs), maxRecordedSignatures)
		}
		var want []string
		for _, field := range headerFields(msg) {
			name, _, _ := strings.Cut(field, ":")
			switch name = strings.TrimSpace(name); {
			case strings.EqualFold(name, "DKIM-Signature"):
				want = append(want, "dkim")
			case strings.EqualFold(name, "ARC-Seal"):
				want = append(want, "arc")
			}
		}
		want = want[:min(len(want), maxRecordedSignatures)]
		if len(sigs) != len(want) {
			t.Fatalf("%d signatures recorded, want %d (%q)", len(sigs), len(want), want)
		}
		verified := 0
		for i, sig := range sigs {
			if sig.Type != want[i] {
				t.Fatalf("signature %d is %q, want %q", i, sig.Type, want[i])
			}
			checkStoredText(t, "d=", sig.Domain, maxSignatureText)
			checkStoredText(t, "s=", sig.Selector, maxSignatureText)
			checkStoredText(t, "reason", sig.Reason, maxSignatureText)
			if (sig.Result == "" || sig.Result == "pass") != (sig.Reason == "") {
				t.Fatalf("signature %d: result %q with reason %q", i, sig.Result, sig.Reason)
			}
			if sig.Domain != strings.ToLower(sig.Domain) {
				t.Fatalf("d= %q is not lower case", sig.Domain)
			}
			switch sig.Result {
			case "":
			case "pass":
				t.Fatalf("signature %d passes without a key: %+v", i, sig)
			case "fail", "temperror", "permerror":
				verified++
			default:
				t.Fatalf("signature %d: result %q", i, sig.Result)
			}
			if sig.Type == "arc" && (sig.Domain != "" || sig.Selector != "" || sig.Result != "") {
				t.Fatalf("ARC-Seal recorded as %+v", sig)
			}
		}
		if verified > maxDKIMVerifications {
			t.Fatalf("%d signatures verified, at most %d", verified, maxDKIMVerifications)
		}
	})
}

// checkStoredText checks text that goes to the store and the report.
func checkStoredText(t *testing.T, what, s string, n int) {
	t.Helper()
	if len(s) > n+len("…") || !utf8.ValidString(s) {
		t.Fatalf("%s %q: longer than %d bytes or not UTF-8", what, s, n)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			t.Fatalf("%s %q holds a control character", what, s)
		}
	}
}

// FuzzHeaderNamesB checks the To/Cc reading (RFC 5322 §3.6.3) of
// arbitrary headers: it never looks at the body, at other fields or
// past its bound on addresses, and it finds the B address when a
// well-formed Cc field names it.
func FuzzHeaderNamesB(f *testing.F) {
	for _, s := range headerSeeds {
		f.Add([]byte(s), []byte("Hello t-tok1@"+zoneB+"\r\nTo: t-tok1@"+zoneB+"\r\n"))
	}
	s := &Server{zoneA: zoneA, zoneB: zoneB, fixed: map[string]bool{"test": true}}
	test := store.Test{ID: "tok1", Kind: store.TestToken}
	f.Fuzz(func(t *testing.T, header, body []byte) {
		if len(header)+len(body) > maxFuzzMessage {
			t.Skip()
		}
		header = headerOnly(header)
		msg := func(parts ...string) []byte {
			return []byte(strings.Join(parts, ""))
		}
		h := string(header)
		got := s.headerNamesB(msg(h, "\r\n\r\n"), test)
		if s.headerNamesB(msg(h, "\r\n\r\n", string(body)), test) != got {
			t.Fatalf("the body changed the answer (%v without it)", got)
		}
		if len(h) > 0 && s.headerNamesB(msg(h, "\r\nX-Note: t-tok1@", zoneB, "\r\n\r\n"), test) != got {
			t.Fatalf("an X-Note field changed the answer (%v without it)", got)
		}
		// RFC 5322 §3.6.3 allows one Cc field: with none in the header,
		// one naming B is found (unless To is over the bound).
		if !hasField(header, "Cc") && !hasField(header, "To") && len(header) > 0 &&
			!s.headerNamesB(msg(h, "\r\nCc: <t-tok1@", strings.ToUpper(zoneB), ">\r\n\r\n"), test) {
			if _, err := parseHeaderOnly(h); err == nil {
				t.Fatalf("a Cc field naming B after %q is not found", h)
			}
		}
	})
}

// headerOnly cuts b to a header block: up to its first empty line, with
// no line break at the end.
func headerOnly(b []byte) []byte {
	if bytes.HasPrefix(b, []byte("\n")) || bytes.HasPrefix(b, []byte("\r\n")) {
		return nil
	}
	b, _, _ = bytes.Cut(b, []byte("\n\n"))
	b, _, _ = bytes.Cut(b, []byte("\n\r\n"))
	return bytes.TrimRight(b, "\r\n")
}

// hasField tells whether header has a field of the name, by the same
// unfolding as the signature list.
func hasField(header []byte, name string) bool {
	for _, f := range headerFields(header) {
		n, _, _ := strings.Cut(f, ":")
		if strings.EqualFold(strings.TrimSpace(n), name) {
			return true
		}
	}
	return false
}

// parseHeaderOnly reports whether header, alone, is a header net/mail
// reads.
func parseHeaderOnly(h string) (bool, error) {
	_, err := mail.ReadMessage(strings.NewReader(h + "\r\n\r\n"))
	return err == nil, err
}
