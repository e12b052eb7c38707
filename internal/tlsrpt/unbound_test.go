package tlsrpt_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/resolver"
	"github.com/mailsec/mailsec/internal/tlsrpt"
)

// TestSelectThroughUnbound reads TLS-RPT records from a real Unbound
// (local-data) through internal/resolver's LookupTXT, as the inbound check
// does: a record split over two strings, a name with two records, a name
// with a non-TLS-RPT TXT only.
func TestSelectThroughUnbound(t *testing.T) {
	u := peertest.StartUnbound(t, peertest.UnboundOptions{Extra: `  local-zone: "rpt.test." static
  local-data: '_smtp._tls.one.rpt.test. TXT "v=TLSRPTv1; rua=mailto:tls@one.rpt.test," "https://r.one.rpt.test/v1"'
  local-data: '_smtp._tls.one.rpt.test. TXT "v=spf1 -all"'
  local-data: '_smtp._tls.two.rpt.test. TXT "v=TLSRPTv1; rua=mailto:a@two.rpt.test"'
  local-data: '_smtp._tls.two.rpt.test. TXT "v=TLSRPTv1; rua=mailto:b@two.rpt.test"'
  local-data: '_smtp._tls.other.rpt.test. TXT "hello"'
`})
	res, err := resolver.New(u.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	get := func(name string) (*tlsrpt.Record, error) {
		t.Helper()
		txts, err := res.LookupTXT(ctx, name)
		if err != nil {
			t.Fatalf("TXT %s: %v", name, err)
		}
		return tlsrpt.Select(txts)
	}
	r, err := get("_smtp._tls.one.rpt.test")
	if err != nil || len(r.RUA) != 2 || r.RUA[1] != "https://r.one.rpt.test/v1" {
		t.Fatalf("one: %+v, %v", r, err)
	}
	if _, err := get("_smtp._tls.two.rpt.test"); !errors.Is(err, tlsrpt.ErrMultipleRecords) {
		t.Fatalf("two: %v", err)
	}
	if _, err := get("_smtp._tls.other.rpt.test"); !errors.Is(err, tlsrpt.ErrNoRecord) {
		t.Fatalf("other: %v", err)
	}
}
