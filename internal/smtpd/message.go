package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/mailsec/mailsec/internal/mailauth"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// signatures lists the message's DKIM signatures (RFC 6376), verified, and
// its ARC-Seal instances (RFC 8617 §4.1.3), in header order. At most
// maxDKIMVerifications signatures are verified (the rest have no result)
// and at most maxRecordedSignatures recorded.
func (s *Server) signatures(msg []byte) []store.Signature {
	var sigs []store.Signature
	var dkimIdx []int // positions of DKIM-Signature fields in sigs
	for _, f := range headerFields(msg) {
		if len(sigs) >= maxRecordedSignatures {
			break
		}
		name, value, _ := strings.Cut(f, ":")
		name = strings.TrimSpace(name)
		switch {
		case strings.EqualFold(name, "DKIM-Signature"):
			tags := mailauth.TagList(value)
			dkimIdx = append(dkimIdx, len(sigs))
			sigs = append(sigs, store.Signature{Type: "dkim", Domain: signatureText(strings.ToLower(tags["d"])), Selector: signatureText(tags["s"])})
		case strings.EqualFold(name, "ARC-Seal"):
			i, _ := strconv.Atoi(mailauth.TagList(value)["i"])
			sigs = append(sigs, store.Signature{Type: "arc", Instance: i})
		}
	}
	if len(dkimIdx) == 0 {
		return sigs
	}

	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DKIMTimeout)
	defer cancel()
	// Keys through the service's own resolver (RFC 6376 §3.6.2.2).
	lookup := mailauth.LookupTXT(ctx, s.opts.DNS)
	verifs, err := s.verifyDKIM(msg, lookup)
	unexpected := err != nil && !errors.Is(err, dkim.ErrTooManySignatures)
	for k, at := range dkimIdx {
		switch {
		case unexpected:
			// The message could not be processed as a whole (for
			// example no header/body separator).
			sigs[at].Result = "permerror"
			sigs[at].Reason = dkimReason(err)
		case k < len(verifs):
			sigs[at].Result = dkimResult(verifs[k].Err)
			sigs[at].Reason = dkimReason(verifs[k].Err)
			if sigs[at].Domain == "" {
				sigs[at].Domain = signatureText(strings.ToLower(verifs[k].Domain))
			}
		}
	}
	return sigs
}

// authenticate evaluates a test mail's authentication (internal/mailauth:
// SPF of MAIL FROM and HELO, DMARC, ARC) from the connection c it came
// on, its reverse-path and the signatures verified; one evaluation, which
// the store keeps for the report, the API and the result mail's decision.
func (s *Server) authenticate(c store.SMTPConnection, from string, msg []byte, sigs []store.Signature) store.Authentication {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.DKIMTimeout)
	defer cancel()
	env := mailauth.Envelope{Client: c.Client.Addr(), HELO: c.EHLO, MailFrom: from}
	return mailauth.Evaluate(ctx, s.opts.DNS, env, msg, sigs)
}

// signatureText bounds a tag value for the store and the report: it is
// the sender's text, which may be anything (a DKIM-Signature field is not
// checked before it is recorded).
func signatureText(s string) string {
	return untrusted.Printable(s, maxSignatureText)
}

// verifyDKIM runs go-msgauth on hostile input. A panic there must not
// cost the mail its answer: it becomes an error (and is counted, so the
// fuzz target reports it).
func (s *Server) verifyDKIM(msg []byte, lookup func(string) ([]string, error)) (verifs []*dkim.Verification, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.panics.Add(1)
			text := fmt.Sprintf("panic in DKIM verification: %v\n%s", p, debug.Stack())
			s.lastPanic.Store(&text)
			s.log.Error("smtp: panic in DKIM verification", "panic", p)
			verifs, err = nil, fmt.Errorf("dkim: %v", p)
		}
	}()
	return dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT:        lookup,
		MaxVerifications: maxDKIMVerifications,
	})
}

// dkimResult names a verification result as RFC 8601 §2.7.1 does.
func dkimResult(err error) string {
	switch {
	case err == nil:
		return "pass"
	case dkim.IsTempFail(err):
		return "temperror"
	case dkim.IsPermFail(err):
		return "permerror"
	}
	return "fail"
}

// dkimReason says why a DKIM signature did not pass, in go-msgauth's
// words where they are clear ("signature has expired", "no key for
// signature: …") and shorter where they are not; "" when it passed.
func dkimReason(err error) string {
	if err == nil {
		return ""
	}
	text := strings.TrimPrefix(err.Error(), "dkim: ")
	switch {
	case text == "body hash did not verify":
		// RFC 6376 §6.1.3: the body hash of bh= is not the body's.
		text = "body hash mismatch"
	case strings.HasPrefix(text, "signature did not verify"):
		// RFC 6376 §6.1.3: b= does not verify over the signed header
		// fields.
		text = "signature mismatch (a signed header field was changed)"
	}
	return untrusted.Printable(text, maxSignatureText)
}

// headerFields returns the unfolded fields of the message header (RFC 5322
// §2.2.3), up to the first empty line.
func headerFields(msg []byte) []string {
	var fields []string
	var cur []byte
	flush := func() {
		if cur != nil {
			fields = append(fields, string(cur))
			cur = nil
		}
	}
	for len(msg) > 0 {
		line := msg
		msg = nil
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, msg = line[:i], line[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && cur != nil {
			cur = append(cur, ' ')
			cur = append(cur, bytes.TrimSpace(line)...)
			continue
		}
		flush()
		cur = append([]byte(nil), line...)
	}
	flush()
	return fields
}
