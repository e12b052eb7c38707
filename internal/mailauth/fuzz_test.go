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
