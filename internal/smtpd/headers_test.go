package smtpd

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestAddressedB: a test mail whose To or Cc names the test's B address
// marks the test (the sender had a mail for B); other headers do not.
func TestAddressedB(t *testing.T) {
	t.Parallel()
	ts := startServer(t, func(o *Options) { o.DowngradeWindow = 0 })
	const from = "sender@example.org"
	tests := []struct {
		name, id, header string
		want             bool
	}{
		{"To names A and B", "tok1", "To: <t-tok1@" + zoneA + ">, <T-TOK1@" + strings.ToUpper(zoneB) + ">\r\n", true},
		{"Cc names B", "tok2", "To: t-tok2@" + zoneA + "\r\nCc: Test B <t-tok2@" + zoneB + ">\r\n", true},
		{"only A", "tok3", "To: t-tok3@" + zoneA + "\r\n", false},
		{"another test's B", "tok4", "To: t-tok4@" + zoneA + ", t-tok1@" + zoneB + "\r\n", false},
		{"B in Bcc-like or body only", "tok5", "To: t-tok5@" + zoneA + "\r\nX-Note: t-tok5@" + zoneB + "\r\n", false},
		{"malformed To", "tok6", "To: <<t-tok6@" + zoneB + "\r\n", false},
	}
	for _, tc := range tests {
		ts.newTest(t, tc.id)
		c := dial(t, ts.addr())
		c.ehlo()
		msg := "From: <" + from + ">\r\n" + tc.header + "Subject: test\r\n\r\nHello t-" + tc.id + "@" + zoneB + ".\r\n"
		c.mail(from, []string{"t-" + tc.id + "@" + zoneA}, msg)
		c.quit()
		got, err := ts.st.Test(context.Background(), tc.id)
		if err != nil {
			t.Fatal(err)
		}
		if !got.AddressedB.IsZero() != tc.want {
			t.Errorf("%s: AddressedB %v, want set %v", tc.name, got.AddressedB, tc.want)
		}
		if tc.want && got.AddressedB.Before(time.Unix(1, 0)) {
			t.Errorf("%s: AddressedB %v is not a time", tc.name, got.AddressedB)
		}
	}
}
