package mailauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec/internal/store"
)

// maxARCSets is the most ARC sets a chain may have (RFC 8617 §4.2.1);
// more make the chain fail before anything is verified.
const maxARCSets = 50

// maxSignedFields bounds the h= list of an ARC-Message-Signature.
const maxSignedFields = 1000

// The header fields of an ARC set (RFC 8617 §4.1).
const (
	arcSealField = "arc-seal"
	arcMsgField  = "arc-message-signature"
	arcAARField  = "arc-authentication-results"
)

// field is one header field as received: its name and the whole field,
// folding included, with CRLF line breaks and no final CRLF.
type field struct {
	name string // lower case
	raw  string
}

// splitMessage returns the header fields and the body of msg. Line
// breaks are taken as CRLF whether they came as CRLF or LF.
func splitMessage(msg []byte) ([]field, []byte) {
	var fields []field
	for len(msg) > 0 {
		line := msg
		rest := []byte(nil)
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, rest = msg[:i], msg[i+1:]
		}
		msg = rest
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			return fields, msg
		}
		if (line[0] == ' ' || line[0] == '\t') && len(fields) > 0 {
			fields[len(fields)-1].raw += "\r\n" + string(line)
			continue
		}
		name, _, _ := strings.Cut(string(line), ":")
		fields = append(fields, field{name: strings.ToLower(strings.TrimRight(name, " \t")), raw: string(line)})
	}
	return fields, nil
}

// value is the field's value: all after the first colon.
func (f field) value() string {
	_, v, _ := strings.Cut(f.raw, ":")
	return v
}

// canonHeader is f in the header canonicalization c (RFC 6376 §3.4.1
// simple, §3.4.2 relaxed), with a final CRLF.
func canonHeader(f field, relaxed bool) string {
	if !relaxed {
		return f.raw + "\r\n"
	}
	v := strings.ReplaceAll(f.value(), "\r\n", "")
	return f.name + ":" + strings.Trim(collapseWSP(v), " ") + "\r\n"
}

// collapseWSP turns each run of spaces and tabs into one space.
func collapseWSP(s string) string {
	var b strings.Builder
	space := false
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\t' {
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteByte(s[i])
	}
	if space {
		b.WriteByte(' ')
	}
	return b.String()
}

// canonBody is the body in the body canonicalization (RFC 6376 §3.4.3
// simple, §3.4.4 relaxed).
func canonBody(body []byte, relaxed bool) []byte {
	lines := strings.Split(string(body), "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		l = strings.TrimSuffix(l, "\r")
		if relaxed {
			l = strings.TrimRight(collapseWSP(l), " ")
		}
		lines[i] = l
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		if relaxed {
			return nil
		}
		return []byte("\r\n")
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}

// withoutSignature is f with the value of its b= tag removed (RFC 6376
// §3.7: the signature field is hashed with an empty b=).
func withoutSignature(f field) field {
	name, value, _ := strings.Cut(f.raw, ":")
	parts := strings.Split(value, ";")
	for i, p := range parts {
		k, _, ok := strings.Cut(p, "=")
		if ok && strings.Trim(k, TagWhiteSpace) == "b" {
			parts[i] = p[:strings.IndexByte(p, '=')+1]
		}
	}
	return field{name: f.name, raw: name + ":" + strings.Join(parts, ";")}
}

// arcSet is the three fields of one ARC instance (indices into the
// header fields).
type arcSet struct{ seal, msg, aar int }

// VerifyARC validates the message's ARC chain (RFC 8617 §5.2): its
// structure, the newest ARC-Message-Signature over the message as
// received, and every ARC-Seal from the newest to the first. Keys are
// looked up through dnsc. The result (RFC 8617 §4.4's chain validation
// status) is ResultNone without ARC header fields, else ResultPass,
// ResultFail, or ResultTempError when a key could not be fetched (RFC
// 8601 §2.7.1), with the reason for the latter two.
func VerifyARC(ctx context.Context, dnsc DNS, msg []byte) store.ARCCheck {
	fields, body := splitMessage(msg)
	sets := map[int]*arcSet{}
	n := 0
	for idx, f := range fields {
		if f.name != arcSealField && f.name != arcMsgField && f.name != arcAARField {
			continue
		}
		if n++; n > 3*maxARCSets {
			return store.ARCCheck{Instances: len(sets), Result: ResultFail, Reason: "more than 50 ARC sets (RFC 8617 §4.2.1)"}
		}
		i, err := strconv.Atoi(TagList(f.value())["i"])
		if err != nil || i < 1 || i > maxARCSets {
			return store.ARCCheck{Instances: len(sets), Result: ResultFail, Reason: "an ARC header field without a valid i= (1 to 50)"}
		}
		s := sets[i]
		if s == nil {
			s = &arcSet{seal: -1, msg: -1, aar: -1}
			sets[i] = s
		}
		slot := map[string]*int{arcSealField: &s.seal, arcMsgField: &s.msg, arcAARField: &s.aar}[f.name]
		if *slot >= 0 {
			return store.ARCCheck{Instances: len(sets), Result: ResultFail, Reason: fmt.Sprintf("ARC set %d has two %s fields", i, f.name)}
		}
		*slot = idx
	}
	if len(sets) == 0 {
		return store.ARCCheck{Result: ResultNone}
	}
	res := store.ARCCheck{Instances: len(sets)}
	fail := func(reason string, args ...any) store.ARCCheck {
		res.Result, res.Reason = ResultFail, fmt.Sprintf(reason, args...)
		return res
	}
	// Structure (RFC 8617 §5.2 steps 2–4): sets 1..N, each complete;
	// cv=none on the first, pass on the others.
	top := len(sets)
	for i := 1; i <= top; i++ {
		s := sets[i]
		if s == nil {
			return fail("the ARC sets are not numbered 1 to %d", top)
		}
		if s.seal < 0 || s.msg < 0 || s.aar < 0 {
			return fail("ARC set %d is incomplete", i)
		}
		cv := strings.ToLower(TagList(fields[s.seal].value())["cv"])
		switch {
		case i == top && cv == "fail":
			return fail("the newest ARC-Seal (i=%d) says the chain had failed (cv=fail)", i)
		case i == 1 && cv != "none", i > 1 && cv != "pass":
			return fail("ARC-Seal i=%d has cv=%s", i, untrustedName(cv))
		}
	}
	lookup := LookupTXT(ctx, dnsc)
	// Step 5: the newest ARC-Message-Signature, over the message.
	if err := verifyARCMessage(lookup, fields, sets[top].msg, body); err != nil {
		return arcError(res, fmt.Sprintf("ARC-Message-Signature i=%d", top), err)
	}
	// Step 7: every ARC-Seal, newest first.
	for i := top; i >= 1; i-- {
		if err := verifyARCSeal(lookup, fields, sets, i); err != nil {
			return arcError(res, fmt.Sprintf("ARC-Seal i=%d", i), err)
		}
	}
	res.Result = ResultPass
	return res
}

// errKeyUnavailable marks a key look-up that failed temporarily.
var errKeyUnavailable = errors.New("key unavailable")

// arcError is res failed (or temperror) by what the ARC field failed on.
func arcError(res store.ARCCheck, what string, err error) store.ARCCheck {
	res.Result = ResultFail
	if errors.Is(err, errKeyUnavailable) {
		res.Result = ResultTempError
	}
	res.Reason = what + ": " + untrustedName(err.Error())
	return res
}

// verifyARCMessage verifies the ARC-Message-Signature fields[at], a DKIM
// signature without DKIM's version and policy (RFC 8617 §4.1.2): the body
// hash, then the signature over the fields it names and itself.
func verifyARCMessage(lookup func(string) ([]string, error), fields []field, at int, body []byte) error {
	sig := fields[at]
	tags := TagList(sig.value())
	headerCanon, bodyCanon, _ := strings.Cut(strings.ToLower(tags["c"]), "/")
	if headerCanon == "" {
		headerCanon = "simple"
	}
	if bodyCanon == "" {
		bodyCanon = "simple"
	}
	for _, c := range []string{headerCanon, bodyCanon} {
		if c != "simple" && c != "relaxed" {
			return fmt.Errorf("unsupported canonicalization %q", c)
		}
	}
	names := strings.Split(tags["h"], ":")
	if len(names) > maxSignedFields {
		// Each name is looked for among all fields: bounded work.
		return fmt.Errorf("h= names more than %d fields", maxSignedFields)
	}
	canon := canonBody(body, bodyCanon == "relaxed")
	if l, ok := tags["l"]; ok {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return errors.New("malformed l=")
		}
		if n < len(canon) {
			canon = canon[:n]
		}
	}
	bh, err := base64.StdEncoding.DecodeString(tags["bh"])
	if err != nil {
		return errors.New("malformed bh=")
	}
	sum := sha256.Sum256(canon)
	if subtle.ConstantTimeCompare(sum[:], bh) != 1 {
		return errors.New("body hash mismatch")
	}
	h := sha256.New()
	used := map[int]bool{at: true}
	for _, name := range names {
		name = strings.ToLower(strings.Trim(name, TagWhiteSpace))
		// RFC 6376 §5.4.2: the instances of a repeated name from the
		// bottom up; a name with none left adds nothing.
		for i := len(fields) - 1; i >= 0; i-- {
			if !used[i] && fields[i].name == name {
				used[i] = true
				h.Write([]byte(canonHeader(fields[i], headerCanon == "relaxed")))
				break
			}
		}
	}
	h.Write([]byte(strings.TrimSuffix(canonHeader(withoutSignature(sig), headerCanon == "relaxed"), "\r\n")))
	return verifySignature(lookup, tags, h.Sum(nil))
}

// verifyARCSeal verifies ARC-Seal i (RFC 8617 §5.1.1): relaxed header
// canonicalization of every ARC set up to i, in the order AAR, AMS, AS,
// the seal itself last with an empty b=.
func verifyARCSeal(lookup func(string) ([]string, error), fields []field, sets map[int]*arcSet, i int) error {
	h := sha256.New()
	for k := 1; k <= i; k++ {
		s := sets[k]
		h.Write([]byte(canonHeader(fields[s.aar], true)))
		h.Write([]byte(canonHeader(fields[s.msg], true)))
		if k < i {
			h.Write([]byte(canonHeader(fields[s.seal], true)))
		}
	}
	seal := fields[sets[i].seal]
	h.Write([]byte(strings.TrimSuffix(canonHeader(withoutSignature(seal), true), "\r\n")))
	return verifySignature(lookup, TagList(seal.value()), h.Sum(nil))
}

// verifySignature checks the b= of tags over the SHA-256 hash with the
// key at s=._domainkey.d= (RFC 6376 §3.6.2; rsa-sha256, and
// ed25519-sha256 of RFC 8463).
func verifySignature(lookup func(string) ([]string, error), tags map[string]string, hash []byte) error {
	sig, err := base64.StdEncoding.DecodeString(tags["b"])
	if err != nil || len(sig) == 0 {
		return errors.New("malformed b=")
	}
	if tags["d"] == "" || tags["s"] == "" {
		return errors.New("no d= or s=")
	}
	name := tags["s"] + "._domainkey." + tags["d"]
	txts, err := lookup(name)
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return fmt.Errorf("no key at %s", name)
	case err != nil:
		return fmt.Errorf("%w: %s", errKeyUnavailable, name)
	case len(txts) == 0:
		return fmt.Errorf("no key at %s", name)
	}
	key := TagList(strings.Join(txts, ""))
	if len(txts) > 1 {
		// One key record per selector; several cannot be told apart.
		return fmt.Errorf("%d key records at %s", len(txts), name)
	}
	pub, err := base64.StdEncoding.DecodeString(key["p"])
	if err != nil || len(pub) == 0 {
		return fmt.Errorf("no usable key at %s (revoked or malformed p=)", name)
	}
	switch alg := strings.ToLower(tags["a"]); {
	case alg == "rsa-sha256" && (key["k"] == "" || key["k"] == "rsa"):
		k, err := parseRSAKey(pub)
		if err != nil {
			return fmt.Errorf("key at %s: %w", name, err)
		}
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, hash, sig) != nil {
			return errors.New("signature mismatch")
		}
	case alg == "ed25519-sha256" && key["k"] == "ed25519":
		if len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("key at %s: not an Ed25519 key", name)
		}
		if !ed25519.Verify(ed25519.PublicKey(pub), hash, sig) {
			return errors.New("signature mismatch")
		}
	default:
		return fmt.Errorf("algorithm %q does not fit the key at %s", untrustedName(tags["a"]), name)
	}
	return nil
}

// parseRSAKey reads an RSA public key as DKIM publishes it
// (SubjectPublicKeyInfo, or a bare RSAPublicKey), at least 1024 bits (RFC
// 8301 §3.2).
func parseRSAKey(der []byte) (*rsa.PublicKey, error) {
	var k *rsa.PublicKey
	if p, err := x509.ParsePKIXPublicKey(der); err == nil {
		rk, ok := p.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("not an RSA key")
		}
		k = rk
	} else if k, err = x509.ParsePKCS1PublicKey(der); err != nil {
		return nil, errors.New("malformed RSA key")
	}
	if k.N.BitLen() < 1024 {
		return nil, errors.New("RSA key shorter than 1024 bits")
	}
	return k, nil
}
