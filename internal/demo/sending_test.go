package demo

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// TestNoSNIVerifierBySendingServer (issue 13 point 2): a verifying sender
// that sends no SNI sees only persona 2's self-signed certificate on the
// shared address and refuses every host before MAIL FROM, so nothing it
// does names its test. The user names its address as the sending server
// when starting the test through the API, and that alone gets the test
// its verdict, frozen by the finaliser: nothing else ties or injects.
func TestNoSNIVerifierBySendingServer(t *testing.T) {
	s, ctx := startEpisodeService(t, 32, "one sender that never delivers: about 30 s")
	src := netip.MustParseAddr("127.0.0.80")

	// What a user does: start a test naming the sending server.
	resp, err := http.Post(s.run.WebURL+"/api/v1/tests", "application/json", strings.NewReader(`{"sending_server": "`+src.String()+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("starting the test: %d %s", resp.StatusCode, body)
	}
	var created struct {
		ID               string   `json:"id"`
		SendingAddresses []string `json:"sending_addresses"`
	}
	if err := json.Unmarshal(body, &created); err != nil || len(created.SendingAddresses) != 1 {
		t.Fatalf("answer %s: %v", body, err)
	}

	ref := reference(t, "verify")
	snd, err := referenceSender(s.run, ref, src, false, s.dns, s.roots, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var out Result
	deliver(ctx, s.cfg, snd, ref, created.ID, &out, slog.New(slog.DiscardHandler))
	if out.DeliveredA || out.DeliveredB {
		t.Fatalf("the no-SNI verifier delivered (A %v, B %v): it should have refused every certificate", out.DeliveredA, out.DeliveredB)
	}

	if v := s.waitFinal(t, created.ID); v != verdict.PolicyVerify {
		t.Errorf("frozen verdict %s, want %s", v, verdict.PolicyVerify)
	}
	cs := s.conns(t, store.ConnectionFilter{TestID: created.ID})
	if len(cs) == 0 {
		t.Fatal("no connection tied to the test")
	}
	for _, c := range cs {
		if c.TiedBy != store.TiedBySendingServer || c.Client.Addr() != src || c.SNI != "" || c.State.Rank() >= store.StateMail.Rank() {
			t.Errorf("connection %d: from %s, tied by %q, SNI %q, state %s", c.ID, c.Client.Addr(), c.TiedBy, c.SNI, c.State)
		}
	}
	if rest := s.conns(t, store.ConnectionFilter{ClientAddr: src}); len(rest) != len(cs) {
		t.Errorf("%d of the sender's %d connections tied", len(cs), len(rest))
	}
}
