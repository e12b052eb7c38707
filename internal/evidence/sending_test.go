package evidence

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

func addSendingTest(t *testing.T, st *store.Store, id string, created time.Time, addrs ...string) store.Test {
	t.Helper()
	tt := store.Test{ID: id, Created: created, Updated: created, Kind: store.TestToken, State: store.TestOpen, SendingServer: addrs[0]}
	for _, a := range addrs {
		tt.SendingAddrs = append(tt.SendingAddrs, netip.MustParseAddr(a))
	}
	if err := st.CreateTest(t.Context(), tt); err != nil {
		t.Fatal(err)
	}
	return tt
}

func connIDs(conns []store.SMTPConnection) []int64 {
	var out []int64
	for _, c := range conns {
		out = append(out, c.ID)
	}
	return out
}

func TestGatherTiesSendingServer(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		g := Gatherer{Store: st, Rules: Rules{TestExpiry: 2 * time.Hour}}
		tt := addSendingTest(t, st, "t1", t0, "192.0.2.25", "2001:db8::25")
		before := addConn(t, st, "", "192.0.2.25", t0.Add(-time.Second)) // before the test
		v4 := addConn(t, st, "", "192.0.2.25", t0.Add(time.Minute))
		v6 := addConn(t, st, "", "2001:db8::25", t0.Add(2*time.Minute))
		neighbour := addConn(t, st, "", "192.0.2.26", t0.Add(3*time.Minute)) // same network, not named
		claimed := addConn(t, st, "other", "192.0.2.25", t0.Add(4*time.Minute))
		addFetch(t, st, "192.0.2.99", t0.Add(5*time.Minute), 200) // the tied connection's network

		// Read three hours on, the connections are older than TestExpiry:
		// not tied.
		if n, err := g.TieSendingServer(t.Context(), tt, t0.Add(3*time.Hour)); err != nil || n != 0 {
			t.Errorf("tie past expiry = %d, %v; want 0", n, err)
		}
		obs, err := g.Gather(t.Context(), tt, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := connIDs(obs.Connections), []int64{v4.ID, v6.ID}; !slices.Equal(got, want) {
			t.Errorf("connections %v, want %v (not %d before the test, %d a neighbour, %d another test's)", got, want, before.ID, neighbour.ID, claimed.ID)
		}
		for _, c := range obs.Connections {
			if c.TiedBy != store.TiedBySendingServer {
				t.Errorf("connection %d tied by %q", c.ID, c.TiedBy)
			}
		}
		if len(obs.PolicyFetches) != 1 {
			t.Errorf("policy fetches %v, want the one from the tied connection's network", obs.PolicyFetches)
		}
		// A final test ties nothing more.
		addConn(t, st, "", "192.0.2.25", t0.Add(90*time.Minute))
		tt.State = store.TestFinal
		if n, err := g.TieSendingServer(t.Context(), tt, t0.Add(100*time.Minute)); err != nil || n != 0 {
			t.Errorf("final test tied %d, %v", n, err)
		}
	})
}

// Two open tests naming one address: a connection from it that no RCPT
// claimed could be either's and is tied to neither; each test is told.
func TestGatherSharedSendingServerIsAmbiguous(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		g := Gatherer{Store: st}
		a := addSendingTest(t, st, "ta", t0, "192.0.2.25")
		b := addSendingTest(t, st, "tb", t0.Add(time.Second), "192.0.2.25")
		c := addConn(t, st, "", "192.0.2.25", t0.Add(time.Minute))
		for _, tt := range []store.Test{a, b} {
			obs, err := g.Gather(t.Context(), tt, t0.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(obs.Connections) != 0 {
				t.Errorf("%s: connections %v, want none (connection %d is ambiguous)", tt.ID, connIDs(obs.Connections), c.ID)
			}
			shared, err := g.SharedSendingAddrs(t.Context(), tt)
			if err != nil || !slices.Equal(shared, []netip.Addr{netip.MustParseAddr("192.0.2.25")}) {
				t.Errorf("%s: shared %v, %v", tt.ID, shared, err)
			}
		}
		// What a test mail's RCPT claims stays that test's; the untied rest
		// stays untied.
		byRCPT := addConn(t, st, "tb", "192.0.2.25", t0.Add(2*time.Minute))
		obs, err := g.Gather(t.Context(), b, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if got := connIDs(obs.Connections); !slices.Equal(got, []int64{byRCPT.ID}) {
			t.Errorf("tb: connections %v, want only %d", got, byRCPT.ID)
		}
	})
}
