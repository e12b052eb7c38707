package store

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestSendingServerRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		want := Test{ID: "snd1", Created: t0, Updated: t0, Kind: TestToken, State: TestOpen,
			SendingServer: "mx.example.org",
			SendingAddrs:  []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
			CreatorPrefix: netip.MustParsePrefix("198.51.100.0/24"), Lang: "de"}
		if err := s.CreateTest(ctx, want); err != nil {
			t.Fatal(err)
		}
		for name, get := range map[string]func() (Test, error){
			"Test": func() (Test, error) { return s.Test(ctx, "snd1") },
			"DueTests": func() (Test, error) {
				ts, err := s.DueTests(ctx, time.Now().Add(time.Hour), DueCursor{}, 0)
				if err != nil || len(ts) != 1 {
					t.Fatalf("DueTests = %v, %v", ts, err)
				}
				return ts[0].Test, nil
			},
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			// The mapped address is the same as the plain one: stored once.
			wantAddrs := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}
			if got.SendingServer != want.SendingServer || !slices.Equal(got.SendingAddrs, wantAddrs) || got.CreatorPrefix != want.CreatorPrefix {
				t.Errorf("%s: sending server %q %v creator %v, want %q %v %v", name, got.SendingServer, got.SendingAddrs, got.CreatorPrefix,
					want.SendingServer, wantAddrs, want.CreatorPrefix)
			}
			// The result mail's language (migration 0028) comes back too.
			if got.Lang != "de" {
				t.Errorf("%s: lang %q, want de", name, got.Lang)
			}
		}
		// A test without any reads back without (and in English, as tests
		// from before the lang column do).
		plain := Test{ID: "snd2", Created: t0, Updated: t0, Kind: TestToken, State: TestOpen}
		if err := s.CreateTest(ctx, plain); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Test(ctx, "snd2"); err != nil || got.SendingServer != "" || got.SendingAddrs != nil || got.CreatorPrefix.IsValid() || got.Lang != "en" {
			t.Errorf("plain test = %+v, %v", got, err)
		}
		// Bad sending servers are refused and store nothing.
		many := make([]netip.Addr, MaxSendingAddrs+1)
		for i := range many {
			many[i] = netip.AddrFrom4([4]byte{192, 0, 2, byte(i)})
		}
		for i, bad := range []Test{
			{SendingServer: "mx.example.org"},
			{SendingAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
			{SendingServer: "mx.example.org", SendingAddrs: many},
			{SendingServer: "mx example", SendingAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}},
			{SendingServer: "mx.example.org", SendingAddrs: []netip.Addr{{}}},
		} {
			bad.ID, bad.Created, bad.Kind, bad.State = "bad"+string(rune('a'+i)), t0, TestToken, TestOpen
			if err := s.CreateTest(ctx, bad); err == nil {
				t.Errorf("bad test %d stored", i)
			}
			if _, err := s.Test(ctx, bad.ID); err == nil {
				t.Errorf("bad test %d readable", i)
			}
		}
		// Deleting the test deletes its addresses: another test naming one of
		// them no longer shares it.
		other := Test{ID: "snd3", Created: t0, Updated: t0, Kind: TestToken, State: TestOpen,
			SendingServer: "192.0.2.1", SendingAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.1")}}
		if err := s.CreateTest(ctx, other); err != nil {
			t.Fatal(err)
		}
		if got, err := s.SharedSendingAddrs(ctx, "snd3"); err != nil || len(got) != 1 {
			t.Errorf("shared before delete = %v, %v", got, err)
		}
		if err := s.DeleteTest(ctx, "snd1"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.SharedSendingAddrs(ctx, "snd3"); err != nil || len(got) != 0 {
			t.Errorf("shared after delete = %v, %v", got, err)
		}
	})
}

func TestTieSendingServer(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		addr := netip.MustParseAddr("192.0.2.1")
		mk := func(id string, created time.Time) Test {
			return Test{ID: id, Created: created, Updated: created, Kind: TestToken, State: TestOpen,
				SendingServer: addr.String(), SendingAddrs: []netip.Addr{addr}}
		}
		// t1 names the address from t0; t2 names it too from t0+10s.
		if err := s.CreateTest(ctx, mk("t1", t0)); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateTest(ctx, mk("t2", t0.Add(10*time.Second))); err != nil {
			t.Fatal(err)
		}
		ended := func(i int, client string) SMTPConnection {
			c := testConn(i, client)
			c.Ended = c.Started.Add(time.Second)
			return c
		}
		c := []SMTPConnection{
			ended(1, "192.0.2.1:1"),    // t1 only: tied
			ended(2, "192.0.2.2:2"),    // another address: untied
			testConn(3, "192.0.2.1:3"), // still open: untied
			ended(4, "192.0.2.1:4"),    // already t9's
			ended(11, "192.0.2.1:5"),   // t1 and t2 open: ambiguous
		}
		c[3].TestID = "t9"
		for i := range c {
			insertConns(t, s, &c[i])
		}
		n, err := s.TieSendingServer(ctx, "t1", t0, t0.Add(time.Minute))
		if err != nil || n != 1 {
			t.Fatalf("TieSendingServer(t1) = %d, %v; want 1", n, err)
		}
		if n, err := s.TieSendingServer(ctx, "t2", t0.Add(10*time.Second), t0.Add(time.Minute)); err != nil || n != 0 {
			t.Fatalf("TieSendingServer(t2) = %d, %v; want 0 (ambiguous)", n, err)
		}
		got, err := s.Connections(ctx, ConnectionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		wantTest := []string{"t1", "", "", "t9", ""}
		wantBy := []string{TiedBySendingServer, "", "", "", ""}
		for i, g := range got {
			if g.TestID != wantTest[i] || g.TiedBy != wantBy[i] {
				t.Errorf("connection %d: test %q by %q, want %q by %q", i, g.TestID, g.TiedBy, wantTest[i], wantBy[i])
			}
		}
		for _, id := range []string{"t1", "t2"} {
			if shared, err := s.SharedSendingAddrs(ctx, id); err != nil || !slices.Equal(shared, []netip.Addr{addr}) {
				t.Errorf("SharedSendingAddrs(%s) = %v, %v", id, shared, err)
			}
		}
		// Once t1 is final, a connection that started after is t2's alone; the
		// one that started while both were open stays untied.
		tf := mk("t1", t0)
		tf.State = TestFinal
		if err := s.FinalizeTest(ctx, tf, TestResult{TestID: "t1", Final: t0.Add(20 * time.Second), Verdict: []byte("{}"), MailState: MailNone}); err != nil {
			t.Fatal(err)
		}
		late := ended(30, "192.0.2.1:6")
		insertConns(t, s, &late)
		if n, err := s.TieSendingServer(ctx, "t2", t0.Add(10*time.Second), t0.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("TieSendingServer(t2) after t1 final = %d, %v; want 1", n, err)
		}
		if got, err := s.Connections(ctx, ConnectionFilter{TestID: "t2"}); err != nil || len(got) != 1 || got[0].ID != late.ID {
			t.Errorf("t2's connections = %v, %v; want only the late one", got, err)
		}
		if shared, err := s.SharedSendingAddrs(ctx, "t2"); err != nil || len(shared) != 0 {
			t.Errorf("SharedSendingAddrs(t2) after t1 final = %v, %v", shared, err)
		}
		// TieConnections marks its rows as tied by client.
		if n, err := s.TieConnections(ctx, "t3", netip.MustParseAddr("192.0.2.2"), t0, t0.Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("TieConnections = %d, %v", n, err)
		}
		if got, err := s.Connections(ctx, ConnectionFilter{TestID: "t3"}); err != nil || len(got) != 1 || got[0].TiedBy != TiedByClient {
			t.Errorf("t3's connections = %+v, %v; want one tied by client", got, err)
		}
	})
}

func TestUntiedConnections(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		c := []SMTPConnection{
			testConn(1, "192.0.2.1:1"),
			testConn(2, "192.0.2.7:2"),
			testConn(3, "198.51.100.1:3"), // another network
			testConn(4, "192.0.2.1:4"),    // tied
			testConn(0, "192.0.2.1:5"),    // too old
		}
		c[2].ClientKey = "198.51.100.0/24"
		c[3].TestID = "x"
		for i := range c {
			insertConns(t, s, &c[i])
		}
		net := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
		got, err := s.UntiedConnections(ctx, net, t0.Add(time.Second), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != c[1].ID || got[1].ID != c[0].ID {
			t.Errorf("untied = %+v, want connections %d and %d, newest first", got, c[1].ID, c[0].ID)
		}
		if got, err := s.UntiedConnections(ctx, net, t0, 1); err != nil || len(got) != 1 {
			t.Errorf("limit 1: %d rows, %v", len(got), err)
		}
		if got, err := s.UntiedConnections(ctx, nil, t0, 0); err != nil || len(got) != 0 {
			t.Errorf("no networks: %d rows, %v", len(got), err)
		}
	})
}
