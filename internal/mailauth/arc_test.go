package mailauth_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/mailauth"
	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/store"
)

// arcSigner seals messages with dkimpy's arcsign (Debian python3-dkim), an
// independent ARC implementation, as a forwarder would.
type arcSigner struct {
	t       *testing.T
	arcsign string
	keyFile string
}

func newARCSigner(t *testing.T) (*arcSigner, *rsa.PrivateKey) {
	t.Helper()
	arcsign := peertest.Require(t, "arcsign")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "arc.key")
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	return &arcSigner{t: t, arcsign: arcsign, keyFile: keyFile}, key
}

// seal adds one ARC set of domain (selector arc) for the hop srvID; the
// message must carry that hop's Authentication-Results field.
func (s *arcSigner) seal(domain, srvID, msg string) string {
	s.t.Helper()
	cmd := exec.Command(s.arcsign, "arc", domain, s.keyFile, srvID)
	cmd.Stdin = strings.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || !bytes.HasPrefix(out, []byte("ARC-Seal: ")) {
		s.t.Fatalf("arcsign: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	return string(out)
}

// keyRecord is the DKIM key record of key in zone file syntax, split into
// strings of at most 200 bytes.
func keyRecord(name string, key *rsa.PrivateKey) string {
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		panic(err)
	}
	txt := "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(der)
	var parts []string
	for len(txt) > 200 {
		parts, txt = append(parts, txt[:200]), txt[200:]
	}
	parts = append(parts, txt)
	return fmt.Sprintf(`%s 60 IN TXT "%s"`, name, strings.Join(parts, `" "`))
}

// TestVerifyARC: chains sealed by dkimpy, one and two hops, verified
// through mailsec's resolver; changes on the way make them fail where
// RFC 8617 §5.2 says they do, and only there.
func TestVerifyARC(t *testing.T) {
	signer, key := newARCSigner(t)
	f := peertest.StartDNS(t)
	f.Set(t, keyRecord("arc._domainkey.relay.example.", key), keyRecord("arc._domainkey.list.example.", key))
	res, err := resolver.New(f.Addr)
	if err != nil {
		t.Fatal(err)
	}
	msg := "Authentication-Results: mx.relay.example; spf=pass smtp.mailfrom=user.example\r\n" +
		"From: Jane <jane@user.example>\r\nTo: list@relay.example\r\nSubject: hello\r\n\r\nHello.\r\n"
	hop1 := signer.seal("relay.example", "mx.relay.example", msg)
	second := func(m string) string {
		return signer.seal("list.example", "mx.list.example", "Authentication-Results: mx.list.example; arc=pass\r\n"+m)
	}
	hop2 := second(hop1)
	// A list that changes the body after the first hop, then seals: only
	// the newest ARC-Message-Signature must verify (§5.2 step 5).
	hop2Changed := second(strings.Replace(hop1, "Hello.", "Hello. [list footer]", 1))

	for _, tc := range []struct {
		name string
		msg  string
		want store.ARCCheck
	}{
		{"no ARC", msg, store.ARCCheck{Result: "none"}},
		{"one hop", hop1, store.ARCCheck{Instances: 1, Result: "pass"}},
		{"one hop, LF line ends", strings.ReplaceAll(hop1, "\r\n", "\n"), store.ARCCheck{Instances: 1, Result: "pass"}},
		{"two hops", hop2, store.ARCCheck{Instances: 2, Result: "pass"}},
		{"body changed before the second hop sealed", hop2Changed, store.ARCCheck{Instances: 2, Result: "pass"}},
		{"body changed after the last hop", strings.Replace(hop2, "Hello.", "Hello!", 1),
			store.ARCCheck{Instances: 2, Result: "fail", Reason: "ARC-Message-Signature i=2: body hash mismatch"}},
		{"signed header changed after the last hop", strings.Replace(hop1, "Subject: hello", "Subject: HELLO", 1),
			store.ARCCheck{Instances: 1, Result: "fail", Reason: "ARC-Message-Signature i=1: signature mismatch"}},
		{"first hop's results changed", strings.Replace(hop2, "i=1; mx.relay.example; spf=pass", "i=1; mx.relay.example; spf=fail", 1),
			store.ARCCheck{Instances: 2, Result: "fail", Reason: "ARC-Seal i=2: signature mismatch"}},
		{"the first set removed", strings.Replace(hop2, hop1, msg, 1),
			store.ARCCheck{Instances: 1, Result: "fail", Reason: "the ARC sets are not numbered 1 to 1"}},
		{"cv=fail on the newest seal", strings.Replace(hop2, "cv=pass", "cv=fail", 1),
			store.ARCCheck{Instances: 2, Result: "fail", Reason: "the newest ARC-Seal (i=2) says the chain had failed (cv=fail)"}},
		{"no key published", strings.ReplaceAll(hop1, "d=relay.example", "d=other.example"),
			store.ARCCheck{Instances: 1, Result: "fail", Reason: "ARC-Message-Signature i=1: no key at arc._domainkey.other.example"}},
	} {
		got := mailauth.VerifyARC(t.Context(), res, []byte(tc.msg))
		if got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// Without a resolver the keys are unavailable: temperror, not fail.
	if got := mailauth.VerifyARC(t.Context(), nil, []byte(hop1)); got.Result != "temperror" {
		t.Errorf("no resolver: %+v", got)
	}
}

// TestVerifyARCStructure: chains that fail on their form alone, before
// any key is looked up (RFC 8617 §5.2 steps 2–4).
func TestVerifyARCStructure(t *testing.T) {
	set := func(i int, cv string) string {
		return fmt.Sprintf("ARC-Seal: i=%d; cv=%s; a=rsa-sha256; d=x.example; s=s; b=AAAA\r\n"+
			"ARC-Message-Signature: i=%d; a=rsa-sha256; d=x.example; s=s; h=from; bh=AAAA; b=AAAA\r\n"+
			"ARC-Authentication-Results: i=%d; mx.x.example; spf=pass\r\n", i, cv, i, i)
	}
	body := "From: a@x.example\r\n\r\nx\r\n"
	for _, tc := range []struct {
		name, msg, reason string
	}{
		{"gap", set(1, "none") + set(3, "pass") + body, "the ARC sets are not numbered 1 to 2"},
		{"incomplete", "ARC-Seal: i=1; cv=none; b=AAAA\r\n" + body, "ARC set 1 is incomplete"},
		{"two seals of one instance", set(1, "none") + "ARC-Seal: i=1; cv=none; b=AAAA\r\n" + body, "ARC set 1 has two arc-seal fields"},
		{"first cv not none", set(1, "pass") + body, "ARC-Seal i=1 has cv=pass"},
		{"later cv not pass", set(1, "none") + set(2, "none") + body, "ARC-Seal i=2 has cv=none"},
		{"h= too long", strings.Replace(set(1, "none"), "h=from;", "h="+strings.Repeat("x:", 1000)+"from;", 1) + body, "ARC-Message-Signature i=1: h= names more than 1000 fields"},
		{"bad instance", strings.Replace(set(1, "none"), "ARC-Seal: i=1", "ARC-Seal: i=51", 1) + body, "an ARC header field without a valid i= (1 to 50)"},
	} {
		got := mailauth.VerifyARC(t.Context(), nil, []byte(tc.msg))
		if got.Result != "fail" || got.Reason != tc.reason {
			t.Errorf("%s: %+v, want fail: %s", tc.name, got, tc.reason)
		}
	}
}
