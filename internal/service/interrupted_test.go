package service

import (
	"net/netip"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// TestStartEndsInterruptedConnections: a connection record that a kill -9
// left open (ended 0) is ended when the service starts again. Left open,
// it keeps its test from ever being final (verdict.Final waits for open
// connections): lab/hardening's "R4 crash" saw tests not final within its
// bound after kills that hit sessions in flight.
func TestStartEndsInterruptedConnections(t *testing.T) {
	cfg := loopbackConfig(t)
	if _, err := BuildZones(&cfg, time.Now(), CreateZoneKeys); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := st.CreateTest(t.Context(), store.Test{ID: "crashtestaaaaaaa", Created: now.Add(-time.Minute), Updated: now, Kind: store.TestToken, State: store.TestOpen}); err != nil {
		t.Fatal(err)
	}
	c := store.SMTPConnection{TestID: "crashtestaaaaaaa", Started: now.Add(-30 * time.Second), State: store.StateMail,
		Client: netip.MustParseAddrPort("127.0.0.9:40000"), Local: netip.MustParseAddrPort("127.0.0.1:25"), ClientKey: "127.0.0.0/24"}
	if err := st.InsertConnection(t.Context(), &c); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	run := startLoopback(t, cfg)
	got, err := run.Store.Connections(t.Context(), store.ConnectionFilter{TestID: "crashtestaaaaaaa"})
	if err != nil || len(got) != 1 {
		t.Fatalf("Connections = %d, %v", len(got), err)
	}
	if got[0].Ended.IsZero() || got[0].Error != store.InterruptedConnectionError {
		t.Fatalf("after the start the record is ended %v with error %q; want ended, %q", got[0].Ended, got[0].Error, store.InterruptedConnectionError)
	}
}
