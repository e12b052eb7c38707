package delivery

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/store"
)

// The result mail's link opens the test: it carries an owner key made for
// the mail (store.KeyResultMail) when the mail is composed. For a test
// started by mail to a fixed address the mail is the first time its owner
// learns of the test; for the others it is the sender's way back to the
// report, as the link with the test id was before (issue 16).
//
// The store keeps only the key's hash, but the composed message is kept
// too (retries send the very message; `mailsec test show -mail`). So while
// the mail is pending its stored copy holds the key; once its fate is
// decided (sent, or failed for good) the key in the stored copy is
// replaced by x's (withoutLinkKeys) and the plain key is gone from the
// database.

// mailLink makes the key of test id's result mail and the link that
// carries it into in; nothing without a web UI (no link to give).
func (d *Deliverer) mailLink(ctx context.Context, in *report.Input, now time.Time) error {
	if d.o.Source.BaseURL == "" {
		return nil
	}
	key, err := store.NewOwnerKey()
	if err != nil {
		return err
	}
	if err := d.o.Store.AddOwnerKey(ctx, in.Test.ID, key, store.KeyResultMail, now); err != nil {
		return err
	}
	in.URL = d.o.Source.URL(key)
	return nil
}

// qpSoftBreak is a quoted-printable soft line break (RFC 2045 §6.7 rule
// 5): the encoder may put one anywhere in a long line, inside the link too.
const qpSoftBreak = `(?:=\r\n)?`

// linkKeysPattern matches the links prefix+key of a composed message
// (text and HTML parts, quoted-printable), soft line breaks included.
func linkKeysPattern(prefix string) (link, head *regexp.Regexp) {
	var b strings.Builder
	for _, c := range prefix {
		b.WriteString(regexp.QuoteMeta(string(c)))
		b.WriteString(qpSoftBreak)
	}
	h := b.String()
	return regexp.MustCompile(h + `(?:[a-z2-7]` + qpSoftBreak + `){` + strconv.Itoa(store.OwnerKeyLen-1) + `}[a-z2-7]`), regexp.MustCompile(`^` + h)
}

// withoutLinkKeys returns msg with the key of every link to a test's page
// (Source.URL) replaced by x's, soft line breaks kept.
func (d *Deliverer) withoutLinkKeys(msg []byte) []byte {
	prefix := d.o.Source.URL("")
	if prefix == "" {
		return msg
	}
	link, head := linkKeysPattern(prefix)
	return link.ReplaceAllFunc(msg, func(m []byte) []byte {
		out := bytes.Clone(m)
		for i := len(head.Find(m)); i < len(out); i++ {
			if c := out[i]; c >= 'a' && c <= 'z' || c >= '2' && c <= '7' {
				out[i] = 'x'
			}
		}
		return out
	})
}
