package evidence

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

var t0 = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func openStore(t *testing.T, driver string) *store.Store {
	t.Helper()
	return storetest.Open(t, driver)
}

func addConn(t *testing.T, st *store.Store, testID, client string, started time.Time) store.SMTPConnection {
	t.Helper()
	c := store.SMTPConnection{TestID: testID, Started: started, Ended: started.Add(time.Second),
		Client: netip.AddrPortFrom(netip.MustParseAddr(client), 4000), EHLO: "mx.sender.example", State: store.StateNone}
	if err := st.InsertConnection(t.Context(), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func addFetch(t *testing.T, st *store.Store, client string, at time.Time, status int) {
	t.Helper()
	if err := st.AddPolicyFetch(t.Context(), store.PolicyFetch{Time: at, Client: netip.AddrPortFrom(netip.MustParseAddr(client), 443),
		Path: "/.well-known/mta-sts.txt", Status: status}); err != nil {
		t.Fatal(err)
	}
}

func addTest(t *testing.T, st *store.Store, id, kind string, created time.Time) store.Test {
	t.Helper()
	tt := store.Test{ID: id, Created: created, Updated: created, Kind: kind, State: store.TestOpen}
	if err := st.CreateTest(t.Context(), tt); err != nil {
		t.Fatal(err)
	}
	return tt
}

func fetchTimes(obsFetches []store.PolicyFetch) []time.Duration {
	var out []time.Duration
	for _, f := range obsFetches {
		out = append(out, f.Time.Sub(t0))
	}
	return out
}

func TestGatherPolicyFetches(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		g := Gatherer{Store: st, Rules: Rules{Quiet: time.Minute}}
		tt := addTest(t, st, "t1", store.TestToken, t0)
		addConn(t, st, "t1", "192.0.2.10", t0.Add(time.Minute))
		addConn(t, st, "t1", "2001:db8:5::25", t0.Add(2*time.Minute))
		addConn(t, st, "other", "203.0.113.1", t0.Add(time.Minute))
		now := t0.Add(time.Hour)

		addFetch(t, st, "192.0.2.99", t0.Add(-DefaultFetchWindow), 200)             // the window's first instant
		addFetch(t, st, "192.0.2.99", t0.Add(-DefaultFetchWindow-time.Second), 200) // too old
		addFetch(t, st, "2001:db8:5:ffff::1", t0.Add(30*time.Minute), 200)          // the v6 /48
		addFetch(t, st, "2001:db8:6::1", t0.Add(31*time.Minute), 200)               // another /48
		addFetch(t, st, "192.0.2.10", t0.Add(32*time.Minute), 404)                  // no policy served
		addFetch(t, st, "203.0.113.1", t0.Add(33*time.Minute), 200)                 // another test's network
		addFetch(t, st, "192.0.2.200", now.Add(fetchSlack-time.Nanosecond), 200)    // just recorded
		addFetch(t, st, "192.0.2.200", now.Add(fetchSlack), 200)                    // after now
		addFetch(t, st, "198.51.100.7", t0.Add(34*time.Minute), 200)                // the in-flight connection's network

		obs, err := g.Gather(t.Context(), tt, now)
		if err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{time.Hour + fetchSlack - time.Nanosecond, 30 * time.Minute, -DefaultFetchWindow}
		if got := fetchTimes(obs.PolicyFetches); !reflect.DeepEqual(got, want) {
			t.Errorf("fetches at %v, want %v (newest first)", got, want)
		}
		if len(obs.Connections) != 2 || !obs.Now.Equal(now) || obs.Quiet != time.Minute || obs.SenderDone || obs.SentToB {
			t.Errorf("observations %+v", obs)
		}

		// The in-flight connection is new: it is added, and its network counts.
		fl := store.SMTPConnection{ID: 0, TestID: "t1", Started: now, Client: netip.MustParseAddrPort("[::ffff:198.51.100.8]:25"), State: store.StateMail}
		obs, err = g.Gather(t.Context(), tt, now, InFlight(fl), SenderDone(), SentToB())
		if err != nil {
			t.Fatal(err)
		}
		if len(obs.Connections) != 3 || len(obs.PolicyFetches) != 4 || !obs.SenderDone || !obs.SentToB {
			t.Errorf("with the in-flight connection: %d connections, fetches %v, done %v, B %v", len(obs.Connections), fetchTimes(obs.PolicyFetches), obs.SenderDone, obs.SentToB)
		}

		// The limit keeps the newest.
		g.Rules.FetchLimit = 1
		if obs, err = g.Gather(t.Context(), tt, now); err != nil || len(obs.PolicyFetches) != 1 || !obs.PolicyFetches[0].Time.Equal(now.Add(fetchSlack-time.Nanosecond)) {
			t.Errorf("limit 1: %v %v", fetchTimes(obs.PolicyFetches), err)
		}
	})
}

func TestGatherInFlightReplacesItsRow(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		g := Gatherer{Store: st}
		tt := addTest(t, st, "t1", store.TestToken, t0)
		c := addConn(t, st, "t1", "192.0.2.10", t0.Add(time.Minute))
		c.State, c.RcptTo = store.StateMail, []string{"t-t1@a.example"}
		obs, err := g.Gather(t.Context(), tt, t0.Add(2*time.Minute), InFlight(c))
		if err != nil {
			t.Fatal(err)
		}
		if len(obs.Connections) != 1 || obs.Connections[0].State != store.StateMail || len(obs.Connections[0].RcptTo) != 1 {
			t.Fatalf("connections %+v", obs.Connections)
		}
	})
}

func TestGatherNoConnectionsNoFetches(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		tt := addTest(t, st, "t1", store.TestToken, t0)
		addFetch(t, st, "192.0.2.1", t0, 200)
		obs, err := Gatherer{Store: st}.Gather(t.Context(), tt, t0.Add(time.Minute))
		if err != nil || len(obs.Connections) != 0 || len(obs.PolicyFetches) != 0 {
			t.Fatalf("%+v %v", obs, err)
		}
	})
}

func TestGatherSentToBFromStore(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		tt := addTest(t, st, "t1", store.TestToken, t0)
		if err := st.MarkAddressedB(t.Context(), "t1", t0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		tt, err := st.Test(t.Context(), tt.ID)
		if err != nil {
			t.Fatal(err)
		}
		obs, err := Gatherer{Store: st}.Gather(t.Context(), tt, t0.Add(time.Hour))
		if err != nil || !obs.SentToB {
			t.Fatalf("SentToB %v, %v", obs.SentToB, err)
		}
	})
}

func TestTie(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		expiry := 10 * time.Hour
		now := t0.Add(time.Hour)
		tests := []struct {
			name    string
			kind    string
			client  string
			started time.Time
			testID  string // the row's test before tying
			tied    bool
		}{
			{"token: after creation", store.TestToken, "192.0.2.1", t0.Add(time.Minute), "", true},
			{"token: at creation", store.TestToken, "192.0.2.1", t0, "", true},
			{"token: before creation", store.TestToken, "192.0.2.1", t0.Add(-time.Minute), "", false},
			{"token: at now", store.TestToken, "192.0.2.1", now, "", true},
			{"token: after now", store.TestToken, "192.0.2.1", now.Add(time.Nanosecond), "", false},
			{"token: mapped address", store.TestToken, "::ffff:192.0.2.1", t0.Add(time.Minute), "", true},
			{"token: another address of the /24", store.TestToken, "192.0.2.2", t0.Add(time.Minute), "", false},
			{"token: tied to another test", store.TestToken, "192.0.2.1", t0.Add(time.Minute), "other", false},
			{"fixed: before creation", store.TestFixed, "192.0.2.1", t0.Add(-time.Hour), "", true},
			{"fixed: expiry before now", store.TestFixed, "192.0.2.1", now.Add(-expiry), "", true},
			{"fixed: older than the expiry", store.TestFixed, "192.0.2.1", now.Add(-expiry - time.Second), "", false},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				st := openStore(t, driver)
				g := Gatherer{Store: st, Rules: Rules{TestExpiry: expiry}}
				tt := addTest(t, st, "t1", tc.kind, t0)
				c := addConn(t, st, tc.testID, tc.client, tc.started)
				n, err := g.Tie(t.Context(), tt, netip.MustParseAddr("::ffff:192.0.2.1"), now)
				if err != nil {
					t.Fatal(err)
				}
				if (n == 1) != tc.tied {
					t.Fatalf("tied %d, want tied %v", n, tc.tied)
				}
				conns, err := st.Connections(t.Context(), store.ConnectionFilter{ClientAddr: c.Client.Addr().Unmap()})
				if err != nil || len(conns) != 1 {
					t.Fatalf("%v %v", conns, err)
				}
				want := tc.testID
				if tc.tied {
					want = "t1"
				}
				if conns[0].TestID != want {
					t.Errorf("row's test %q, want %q", conns[0].TestID, want)
				}
			})
		}
	})
}

func TestClientPrefixesAndClients(t *testing.T) {
	conns := []store.SMTPConnection{
		{Client: netip.MustParseAddrPort("192.0.2.1:1")},
		{Client: netip.MustParseAddrPort("[::ffff:192.0.2.1]:2")},
		{Client: netip.MustParseAddrPort("192.0.2.77:3")},
		{Client: netip.MustParseAddrPort("[2001:db8:1:2::1]:4")},
		{}, // no address (never recorded)
	}
	wantP := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8:1::/48")}
	if got := ClientPrefixes(conns, 24, 48); !reflect.DeepEqual(got, wantP) {
		t.Errorf("ClientPrefixes = %v, want %v", got, wantP)
	}
	wantC := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.77"), netip.MustParseAddr("2001:db8:1:2::1")}
	if got := Clients(conns); !reflect.DeepEqual(got, wantC) {
		t.Errorf("Clients = %v, want %v", got, wantC)
	}
}
