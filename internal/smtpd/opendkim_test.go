package smtpd

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/store"
)

// openDKIMKey makes a key pair with opendkim-genkey for selector sel1 of
// user.example and returns the private key file and the TXT record as
// published (the strings of sel1.txt joined).
func openDKIMKey(t *testing.T, dir string) (keyFile, record string) {
	t.Helper()
	genkey := peertest.Require(t, "opendkim-genkey")
	out, err := exec.Command(genkey, "--domain=user.example", "--selector=sel1", "--directory="+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("opendkim-genkey: %v\n%s", err, out)
	}
	zone, err := os.ReadFile(filepath.Join(dir, "sel1.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, m := range regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(string(zone), -1) {
		parts = append(parts, m[1])
	}
	return filepath.Join(dir, "sel1.private"), strings.Join(parts, "")
}

// insHeader is how opendkim's test mode (-t) prints the header field it
// would add as a milter.
var insHeader = regexp.MustCompile(`(?s)### INSHEADER: idx=\d+ hname='DKIM-Signature' hvalue='(.*?)'\n`)

// openDKIMSign signs msg with the opendkim milter itself, in its test mode
// (-t): the code that signs beside a Postfix, rsa-sha256.
func openDKIMSign(t *testing.T, dir, keyFile, msg string) string {
	t.Helper()
	opendkim := peertest.Require(t, "opendkim")
	conf := filepath.Join(dir, "opendkim.conf")
	// RequireSafeKeys off: the test's temporary directory lies under a
	// world-writable /tmp, which opendkim refuses for keys otherwise.
	if err := os.WriteFile(conf, []byte("Domain user.example\nSelector sel1\nKeyFile "+keyFile+
		"\nMode s\nSignatureAlgorithm rsa-sha256\nCanonicalization relaxed/relaxed\nSyslog no\nRequireSafeKeys no\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "msg")
	if err := os.WriteFile(in, []byte(msg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, opendkim, "-x", conf, "-t", in, "-vv").CombinedOutput()
	m := insHeader.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("opendkim -t: %v\n%s", err, out)
	}
	return "DKIM-Signature: " + strings.ReplaceAll(m[1], "\n", "\r\n") + "\r\n" + msg
}

// TestOpenDKIMSignatures: a real signer. OpenDKIM (Debian's opendkim, the
// milter beside a Postfix) signs a message; mailsec verifies it as pass
// with d= and s=, a changed copy as fail with the reason, and evaluates
// DMARC as passing by the aligned signature. opendkim-testmsg, which signs
// with rsa-sha1 only, gives a permerror: the key's h=sha256 (RFC 6376
// §3.6.1) excludes it, as RFC 8301 §3.1 excludes sha1 altogether.
func TestOpenDKIMSignatures(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	keyFile, record := openDKIMKey(t, dir)
	keys := &fakeTXT{m: map[string][]string{
		"sel1._domainkey.user.example": {record},
		"_dmarc.user.example":          {"v=DMARC1; p=reject; adkim=s"},
	}}
	s := &Server{opts: Options{DKIMTimeout: 5 * time.Second, DNS: lookupDNS(keys.LookupTXT)}}
	msg := "From: Jane <jane@user.example>\r\nTo: t-x@" + zoneA + "\r\nSubject: hello\r\nDate: Sun, 6 Dec 2026 06:00:00 +0000\r\n\r\nHello.\r\n"
	signed := openDKIMSign(t, dir, keyFile, msg)

	for _, tc := range []struct {
		name, msg      string
		result, reason string
	}{
		{"as signed", signed, "pass", ""},
		{"body changed", strings.Replace(signed, "Hello.", "Hello!", 1), "fail", "body hash mismatch"},
		{"signed header changed", strings.Replace(signed, "Subject: hello", "Subject: HELLO!", 1), "fail", "signature mismatch (a signed header field was changed)"},
	} {
		got := s.signatures([]byte(tc.msg))
		want := store.Signature{Type: "dkim", Domain: "user.example", Selector: "sel1", Result: tc.result, Reason: tc.reason}
		if len(got) != 1 || got[0] != want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, want)
		}
		c := store.SMTPConnection{Client: netip.MustParseAddrPort("127.0.0.9:4000"), EHLO: "mail.user.example"}
		a := s.authenticate(c, "jane@user.example", []byte(tc.msg), got)
		if pass := tc.result == "pass"; a.DMARC.DKIMAligned != pass || (a.DMARC.Result == "pass") != pass || a.DMARC.Policy != "reject" {
			t.Errorf("%s: DMARC %+v", tc.name, a.DMARC)
		}
	}

	testmsg := peertest.Require(t, "opendkim-testmsg")
	cmd := exec.Command(testmsg, "-C", "-d", "user.example", "-k", keyFile, "-s", "sel1")
	cmd.Stdin = strings.NewReader(msg)
	sha1Signed, err := cmd.Output()
	if err != nil || !strings.Contains(string(sha1Signed), "a=rsa-sha1") {
		t.Fatalf("opendkim-testmsg: %v\n%s", err, sha1Signed)
	}
	got := s.signatures(sha1Signed)
	if len(got) != 1 || got[0].Result != "permerror" || got[0].Reason != "inappropriate hash algorithm" {
		t.Errorf("rsa-sha1 signature: %+v, want permerror: inappropriate hash algorithm", got)
	}
}
