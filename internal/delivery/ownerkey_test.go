package delivery

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/report"
	"github.com/mailsec/mailsec/internal/reportsource"
	"github.com/mailsec/mailsec/internal/resultmail"
	"github.com/mailsec/mailsec/internal/store"
)

// TestWithoutLinkKeys: the stored copy of a decided result mail keeps its
// link but not its key, also where the quoted-printable encoder broke the
// link over lines (a long base URL puts the soft breaks inside the key).
func TestWithoutLinkKeys(t *testing.T) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id := resultmail.Identity{From: "results@a.mailtest.example", Domain: "a.mailtest.example", Selector: "s", Key: priv}
	split := 0 // links whose key the encoder broke over lines
	for _, base := range []string{"https://mailsec.example", "https://" + strings.Repeat("long-", 9) + "mailsec.example", "https://a.example/" + strings.Repeat("p", 40)} {
		d := &Deliverer{o: Options{Source: reportsource.Source{BaseURL: base}}}
		key, err := store.NewOwnerKey()
		if err != nil {
			t.Fatal(err)
		}
		link := d.o.Source.URL(key)
		msg, _, err := resultmail.Compose(id, report.Report{Test: "keytest", Policy: "dane", URL: link}, "jane@user.example", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(decodeQP(t, msg), link) {
			t.Fatalf("%s: the composed mail lacks its link %s", base, link)
		}
		split += strings.Count(decodeQP(t, msg), key) - bytes.Count(msg, []byte(key))
		kept := d.withoutLinkKeys(msg)
		text := decodeQP(t, kept)
		if strings.Contains(text, key) || bytes.Contains(kept, []byte(key)) {
			t.Errorf("%s: the key survives in the stored copy", base)
		}
		if n := strings.Count(text, d.o.Source.URL(strings.Repeat("x", store.OwnerKeyLen))); n < 2 {
			t.Errorf("%s: %d redacted links (text and HTML), want them kept with x's:\n%s", base, n, text)
		}
		if len(kept) != len(msg) {
			t.Errorf("%s: the stored copy changed length %d -> %d: more than the key was touched", base, len(msg), len(kept))
		}
	}
	if split == 0 {
		t.Error("no case has a key broken over lines: the soft breaks are not tested")
	}
}

// decodeQP is msg with quoted-printable soft line breaks and "=3D"
// undone (headers and bodies alike: enough to search the text).
func decodeQP(t *testing.T, msg []byte) string {
	t.Helper()
	return strings.NewReplacer("=\r\n", "", "=3D", "=").Replace(string(msg))
}
