package mailauth_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/mailauth"
)

// FuzzFromDomain reads the author domain (RFC 7489 §3.1) of arbitrary
// messages: it never panics, and a domain it returns is lower case, has at
// least two labels and no trailing dot, and is written in the message's
// header.
func FuzzFromDomain(f *testing.F) {
	for _, s := range []string{
		"From: Jane <jane@User.Example>\r\nTo: x@a.example\r\n\r\nbody\r\n",
		"From: a@x.example, b@y.example\r\n\r\n",
		"From: =?utf-8?q?J=C3=B6rg?= <j@xn--bcher-kva.example>\r\n\r\n",
		"From: a@x.example\r\nFrom: a@x.example\r\n\r\n",
		"From: group:a@x.example;\r\n\r\n",
		"From: a@[127.0.0.1]\r\n\r\n",
		"From:\r\n\r\n",
		"Subject: no from\r\n\r\nFrom: a@body.example\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > 16<<10 {
			t.Skip()
		}
		d, err := mailauth.FromDomain(msg)
		if err != nil {
			if d != "" {
				t.Fatalf("domain %q with error %v", d, err)
			}
			return
		}
		if d != strings.ToLower(d) || strings.HasSuffix(d, ".") || !strings.Contains(d, ".") {
			t.Fatalf("domain %q", d)
		}
		header, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
		if !bytes.Contains(bytes.ToLower(header), []byte(d)) && !bytes.Contains(bytes.ToLower(msg), []byte(d)) {
			t.Fatalf("domain %q is not in the message", d)
		}
	})
}

// FuzzVerifyARC validates the ARC chains of arbitrary messages without a
// resolver: it never panics, a chain never passes (no key can be
// fetched), the result is one of RFC 8617's and temperror, the number of
// sets is bounded, and the reason is bounded, printable text.
func FuzzVerifyARC(f *testing.F) {
	set := "ARC-Seal: i=1; cv=none; a=rsa-sha256; d=x.example; s=s; b=AAAA\r\n" +
		"ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/simple; d=x.example; s=s; h=from : to; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA\r\n" +
		"ARC-Authentication-Results: i=1; mx.x.example; spf=pass\r\n"
	for _, s := range []string{
		set + "From: a@x.example\r\n\r\n",
		set + "From: a@x.example\r\n\r\nbody  \r\n\r\n\r\n",
		strings.ReplaceAll(set, "i=1", "i=2") + set + "From: a@x.example\r\n\r\nx\r\n",
		"arc-seal:i=1;cv=none\narc-message-signature:i=1;l=3;c=simple\n\tfolded;bh=;b=\nARC-Authentication-Results:i=1\n\nbody",
		"ARC-Seal: i=0\r\n\r\n",
		"ARC-Seal: i=99999999999999999999\r\n\r\n",
		"From: no arc\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > 16<<10 {
			t.Skip()
		}
		got := mailauth.VerifyARC(t.Context(), nil, msg)
		switch got.Result {
		case "none":
			if got.Instances != 0 || got.Reason != "" {
				t.Fatalf("none with %+v", got)
			}
		case "fail", "temperror":
			if got.Reason == "" {
				t.Fatalf("%s without a reason", got.Result)
			}
		default:
			t.Fatalf("result %+v", got)
		}
		if got.Instances > 50 {
			t.Fatalf("%d sets", got.Instances)
		}
		if len(got.Reason) > 400 || strings.ContainsFunc(got.Reason, func(r rune) bool { return r < ' ' || r == 0x7f }) {
			t.Fatalf("reason %q", got.Reason)
		}
	})
}
