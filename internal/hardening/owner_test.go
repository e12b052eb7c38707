package hardening

import (
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/reportsource"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/web"
)

// TestOwnerKeyCheck runs the suite's "R1 owner token" against the real web
// server and store on loopback (the lab runs it against the service).
func TestOwnerKeyCheck(t *testing.T) {
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := web.New(web.Options{
		Source: reportsource.Source{Store: st, ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example", DowngradeWindow: time.Minute,
			Evidence: evidence.Gatherer{Store: st, Rules: evidence.Rules{Quiet: 10 * time.Minute, PrefixV4: 24, PrefixV6: 48}}},
		ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example", StartLimit: 20, CheckLimit: 1,
	})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	s := &Suite{Env: Env{Web: ts.URL}}
	c := s.ownerKey(t.Context())
	if !c.OK || c.Figures["deleted"] != 2 || c.Figures["refused"].(int) < 20 {
		t.Fatalf("R1 owner token: %+v", c)
	}
}
