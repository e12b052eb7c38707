package inbound

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/smtpclient"
)

func TestExchange(t *testing.T) {
	tests := []struct {
		name       string
		reply      smtpclient.Reply
		err        error
		delay      time.Duration
		wantOK     bool
		wantCode   int
		wantText   string
		wantStatus string
		wantDetail string
	}{
		{name: "a reply", reply: smtpclient.Reply{Code: 250, Lines: []string{"mx.example", "STARTTLS"}}, delay: 20 * time.Millisecond,
			wantOK: true, wantCode: 250, wantText: "mx.example\nSTARTTLS"},
		{name: "the server hangs up", err: io.EOF, wantStatus: StatusNotTestable,
			wantDetail: "the server closed the connection waiting for the EHLO reply"},
		{name: "no SMTP server", err: smtpclient.ErrMalformed, wantStatus: StatusError, wantDetail: "not an SMTP server: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{}
			o.defaults()
			a := &Address{}
			p := &probe{c: &checker{opts: o}, a: a, ctx: context.Background()}
			code, text, ok := p.exchange(&a.Timings.EHLO, "waiting for the EHLO reply", func() (smtpclient.Reply, error) {
				time.Sleep(tc.delay)
				return tc.reply, tc.err
			})
			if ok != tc.wantOK || code != tc.wantCode || text != tc.wantText {
				t.Errorf("exchange = %d %q %v, want %d %q %v", code, text, ok, tc.wantCode, tc.wantText, tc.wantOK)
			}
			if a.Status != tc.wantStatus || !strings.HasPrefix(a.Detail, tc.wantDetail) {
				t.Errorf("status %q, detail %q; want %q, %q…", a.Status, a.Detail, tc.wantStatus, tc.wantDetail)
			}
			if least := float64(tc.delay / time.Millisecond); a.Timings.EHLO < least {
				t.Errorf("timings_ms.ehlo %v, want at least %v", a.Timings.EHLO, least)
			}
		})
	}
}
