package dnszone

import (
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/persona"
)

// The result mails' DKIM key is published at <selector>._domainkey, split
// into character-strings of at most 255 octets (RFC 6376 §3.6.2.2 joins
// them again).
func TestDKIMRecord(t *testing.T) {
	long := "v=DKIM1; k=rsa; p=" + strings.Repeat("A", 392)
	z, err := BuildTestZone(TestZoneSpec{Zone: persona.ZoneB, Origin: "b.example.", TTL: 300, MXTTL: 60, NegativeTTL: 30,
		DKIM: map[string]string{"mailsec1": long}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	res := z.Lookup("mailsec1._domainkey.b.example.", dns.TypeTXT, false)
	if res.Rcode != dns.RcodeSuccess || len(res.Answer) != 1 {
		t.Fatalf("rcode %d, answer %v", res.Rcode, res.Answer)
	}
	txt := res.Answer[0][0].(*dns.TXT)
	if strings.Join(txt.Txt, "") != long || len(txt.Txt) != 2 {
		t.Errorf("TXT %q", txt.Txt)
	}
}
