package resultmail

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/report"
)

// Identity is who the result mails come from and how they are signed.
type Identity struct {
	From     string // envelope and header sender, in zone A (SPF, DMARC)
	Name     string // display name
	Domain   string // DKIM d= (zone A, no trailing dot)
	Selector string
	Key      crypto.Signer
}

// signedHeaders are the fields the DKIM signature covers (RFC 6376 §5.4.1:
// From is required; the rest are those a forger would change).
var signedHeaders = []string{"From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type", "Auto-Submitted"}

// Compose builds the result mail for r, to the envelope recipient rcpt:
// multipart/alternative with the text and the HTML rendering (RFC 2046
// §5.1.4), DKIM-signed (RFC 6376). It returns the message and its
// Message-ID.
func Compose(id Identity, r report.Report, rcpt string, now time.Time) ([]byte, string, error) {
	text, err := report.Text(r)
	if err != nil {
		return nil, "", err
	}
	html, err := report.HTML(r)
	if err != nil {
		return nil, "", err
	}
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, "", err
	}
	boundary := "mailsec-" + hex.EncodeToString(rnd[:])
	msgID := fmt.Sprintf("<%s.%s@%s>", r.Test, hex.EncodeToString(rnd[:6]), id.Domain)
	// In the report's language (the test's, chosen when it was created);
	// the subject ends in the policy (lab/resultcheck.py checks it).
	subject := i18n.T(r.Lang, "mail.subject", r.Test, r.Policy)
	if !r.Final {
		subject = i18n.T(r.Lang, "mail.subject-not-final", subject)
	}
	var b bytes.Buffer
	h := func(name, value string) { fmt.Fprintf(&b, "%s: %s\r\n", name, value) }
	from := id.From
	if id.Name != "" {
		from = mime.QEncoding.Encode("utf-8", id.Name) + " <" + id.From + ">"
	}
	h("From", from)
	h("To", "<"+rcpt+">")
	h("Subject", mime.QEncoding.Encode("utf-8", subject))
	h("Date", now.UTC().Format(time.RFC1123Z))
	h("Message-ID", msgID)
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/alternative; boundary="`+boundary+`"`)
	// RFC 3834 §5: an automatic answer; auto-responders must not answer it.
	h("Auto-Submitted", "auto-replied")
	b.WriteString("\r\n")
	part := func(ctype, body string) error {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary, ctype)
		w := quotedprintable.NewWriter(&b)
		if _, err := w.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n"))); err != nil {
			return err
		}
		if err := w.Close(); err != nil {
			return err
		}
		b.WriteString("\r\n")
		return nil
	}
	if err := part("text/plain", text); err != nil {
		return nil, "", err
	}
	if err := part("text/html", html); err != nil {
		return nil, "", err
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)

	var signed bytes.Buffer
	if err := dkim.Sign(&signed, &b, &dkim.SignOptions{
		Domain: id.Domain, Selector: id.Selector, Signer: id.Key,
		HeaderKeys: signedHeaders,
		// RFC 6376 §3.4.4: relaxed header canonicalization survives the
		// usual re-folding; the body is quoted-printable, simple is safe.
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationSimple,
	}); err != nil {
		return nil, "", fmt.Errorf("resultmail: DKIM signing: %w", err)
	}
	return signed.Bytes(), msgID, nil
}
