package store

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestTestsRoundTripAndErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()

		tok := Test{ID: "abc123", Created: t0, Kind: TestToken, State: TestOpen, Updated: t0}
		fixedOld := Test{ID: "fixold", Created: t0.Add(time.Second), Kind: TestFixed, Sender: "a@example.org", State: TestOpen, Updated: t0}
		fixedNew := Test{ID: "fixnew", Created: t0.Add(2 * time.Second), Kind: TestFixed, Sender: "a@example.org", State: TestAcked,
			Acked: t0.Add(3 * time.Second), Updated: t0.Add(3 * time.Second)}
		fixedFinal := Test{ID: "fixfin", Created: t0.Add(4 * time.Second), Kind: TestFixed, Sender: "a@example.org", State: TestFinal, Updated: t0}
		if err := s.CreateTest(ctx, tok); err != nil {
			t.Fatalf("CreateTest(%s): %v", tok.ID, err)
		}
		const client = "192.0.2.0/24"
		for _, tc := range []Test{fixedOld, fixedNew, fixedFinal} {
			if err := s.CreateFixedTest(ctx, tc, client, FixedTestLimits{}); err != nil {
				t.Fatalf("CreateFixedTest(%s): %v", tc.ID, err)
			}
		}
		if err := s.CreateFixedTest(ctx, Test{ID: "tokfix", Created: t0, Kind: TestToken, State: TestOpen}, client, FixedTestLimits{}); err == nil {
			t.Error("CreateFixedTest of a token test succeeded")
		}
		if err := s.CreateFixedTest(ctx, Test{ID: "noclient", Created: t0, Kind: TestFixed, State: TestOpen}, "", FixedTestLimits{}); err == nil {
			t.Error("CreateFixedTest without a client succeeded")
		}

		equal := func(a, b Test) bool {
			return a.ID == b.ID && a.Created.Equal(b.Created) && a.Kind == b.Kind && a.Sender == b.Sender &&
				a.State == b.State && a.Acked.Equal(b.Acked) && a.Updated.Equal(b.Updated)
		}
		check := func(name string, got Test, err error, want Test, wantErr error) {
			t.Helper()
			if wantErr != nil {
				if !errors.Is(err, wantErr) {
					t.Errorf("%s: err = %v, want %v", name, err, wantErr)
				}
				return
			}
			if err != nil {
				t.Errorf("%s: %v", name, err)
				return
			}
			if !equal(got, want) {
				t.Errorf("%s = %+v, want %+v", name, got, want)
			}
		}

		got, err := s.Test(ctx, "ABC123") // ids compare lower-case
		check("Test(ABC123)", got, err, tok, nil)
		if !got.Acked.IsZero() {
			t.Errorf("unset Acked read back as %v", got.Acked)
		}
		got, err = s.Test(ctx, "nope")
		check("Test(nope)", got, err, Test{}, ErrNotFound)

		if err := s.CreateTest(ctx, tok); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate CreateTest: err = %v, want ErrExists", err)
		}
		for _, bad := range []Test{
			{ID: "", Created: t0, Kind: TestToken, State: TestOpen},
			{ID: "UPPER", Created: t0, Kind: TestToken, State: TestOpen},
			{ID: "x", Created: t0, Kind: "other", State: TestOpen},
			{ID: "x", Created: t0, Kind: TestToken, State: "weird"},
			{ID: "x", Kind: TestToken, State: TestOpen},
		} {
			if err := s.CreateTest(ctx, bad); err == nil {
				t.Errorf("CreateTest(%+v) succeeded, want an error", bad)
			}
		}

		// The newest non-final fixed test of that sender and client.
		got, err = s.OpenFixedTest(ctx, "a@example.org", client)
		check("OpenFixedTest", got, err, fixedNew, nil)
		got, err = s.OpenFixedTest(ctx, "a@example.org", "198.51.100.0/24")
		check("OpenFixedTest(other client)", got, err, Test{}, ErrNotFound)
		got, err = s.OpenFixedTest(ctx, "b@example.org", client)
		check("OpenFixedTest(other sender)", got, err, Test{}, ErrNotFound)

		// Finalizing the newest makes the older open one current.
		fixedNew.State = TestFinal
		fixedNew.Updated = t0.Add(time.Hour)
		if err := s.UpdateTest(ctx, fixedNew); err != nil {
			t.Fatalf("UpdateTest: %v", err)
		}
		got, err = s.Test(ctx, fixedNew.ID)
		check("Test after update", got, err, fixedNew, nil)
		got, err = s.OpenFixedTest(ctx, "a@example.org", client)
		check("OpenFixedTest after final", got, err, fixedOld, nil)

		// UpdateTest keeps Created and Kind.
		changed := tok
		changed.Sender = "x@example.net"
		changed.Created = t0.Add(time.Hour)
		if err := s.UpdateTest(ctx, changed); err != nil {
			t.Fatalf("UpdateTest: %v", err)
		}
		want := tok
		want.Sender = "x@example.net"
		got, err = s.Test(ctx, tok.ID)
		check("Test after sender update", got, err, want, nil)

		missing := tok
		missing.ID = "missing"
		if err := s.UpdateTest(ctx, missing); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateTest(missing): err = %v, want ErrNotFound", err)
		}
	})
}

func TestClientWindowStart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		for _, tc := range []struct {
			client string
			now    time.Time
			want   time.Time
		}{
			{"192.0.2.0/24", t0, t0},
			{"192.0.2.0/24", t0.Add(time.Minute), t0}, // the first writer wins
			{"2001:db8::/48", t0.Add(time.Hour), t0.Add(time.Hour)},
			{"192.0.2.0/24", t0.Add(-time.Minute), t0}, // even an earlier clock does not move it
		} {
			got, err := s.ClientWindowStart(ctx, tc.client, tc.now)
			if err != nil {
				t.Fatalf("ClientWindowStart(%s): %v", tc.client, err)
			}
			if !got.Equal(tc.want) {
				t.Errorf("ClientWindowStart(%s, %v) = %v, want %v", tc.client, tc.now, got, tc.want)
			}
		}
		if _, err := s.ClientWindowStart(ctx, "", t0); err == nil {
			t.Error("ClientWindowStart(\"\") succeeded")
		}
	})
}

// TestRestartClientWindow: the restart is a compare-and-swap, so of two
// deciders that read the same start only the first moves it, and both end
// up with the new start.
func TestRestartClientWindow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		const client = "192.0.2.0/24"
		if _, err := s.ClientWindowStart(ctx, client, t0); err != nil {
			t.Fatal(err)
		}
		t1, t2 := t0.Add(time.Hour), t0.Add(time.Hour+time.Second)
		for _, tc := range []struct {
			from, now, want time.Time
		}{
			{t0, t1, t1}, // the first decider restarts the window
			{t0, t2, t1}, // the second read the old start: it gets the first's
			{t1, t2, t2}, // a later episode
		} {
			got, err := s.RestartClientWindow(ctx, client, tc.from, tc.now)
			if err != nil {
				t.Fatalf("RestartClientWindow(%v, %v): %v", tc.from, tc.now, err)
			}
			if !got.Equal(tc.want) {
				t.Errorf("RestartClientWindow(%v, %v) = %v, want %v", tc.from, tc.now, got, tc.want)
			}
		}
		if got, err := s.ClientWindowStart(ctx, client, t2.Add(time.Hour)); err != nil || !got.Equal(t2) {
			t.Errorf("ClientWindowStart after restarts = %v, %v; want %v", got, err, t2)
		}
		if _, err := s.RestartClientWindow(ctx, "198.51.100.0/24", t0, t1); !errors.Is(err, ErrNotFound) {
			t.Errorf("RestartClientWindow(unknown client): err = %v, want ErrNotFound", err)
		}
	})
}

func TestClientEpisodeSince(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		for _, tt := range []Test{
			{ID: "open", Created: t0, Kind: TestToken, State: TestOpen},
			{ID: "acked", Created: t0, Kind: TestToken, State: TestAcked},
			{ID: "final", Created: t0, Kind: TestToken, State: TestFinal},
		} {
			if err := s.CreateTest(ctx, tt); err != nil {
				t.Fatal(err)
			}
		}
		conn := func(i int, test string, offered bool) *SMTPConnection {
			c := testConn(i, "192.0.2.7:4000")
			c.TestID, c.STARTTLSOffered = test, offered
			return &c
		}
		insertConns(t, s,
			conn(0, "open", false),   // before the window start below: not counted
			conn(10, "final", false), // in the window
			conn(20, "final", true),  // after it
			conn(30, "", false),      // over the connection cap, no test
			conn(40, "acked", true),  // acknowledged is not final
			conn(50, "final", true),  // the newest
		)
		other := conn(60, "open", true) // another client
		other.ClientKey = "198.51.100.0/24"
		insertConns(t, s, other)

		for _, tc := range []struct {
			name   string
			client string
			since  time.Time
			want   ClientEpisode
		}{
			{"whole episode", "192.0.2.0/24", t0.Add(10 * time.Second),
				ClientEpisode{LastStart: t0.Add(50 * time.Second), Offered: true, Untied: true, OpenTest: true}},
			{"only the newest", "192.0.2.0/24", t0.Add(50 * time.Second),
				ClientEpisode{LastStart: t0.Add(50 * time.Second), Offered: true}},
			{"after the acknowledged test", "192.0.2.0/24", t0.Add(41 * time.Second),
				ClientEpisode{LastStart: t0.Add(50 * time.Second), Offered: true}},
			{"nothing since", "192.0.2.0/24", t0.Add(time.Minute),
				ClientEpisode{LastStart: t0.Add(50 * time.Second)}},
			{"unknown client", "203.0.113.0/24", t0, ClientEpisode{}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.ClientEpisodeSince(ctx, tc.client, tc.since)
				if err != nil {
					t.Fatal(err)
				}
				if !got.LastStart.Equal(tc.want.LastStart) || got.Offered != tc.want.Offered ||
					got.Untied != tc.want.Untied || got.OpenTest != tc.want.OpenTest {
					t.Errorf("ClientEpisodeSince(%s, %v) = %+v, want %+v", tc.client, tc.since, got, tc.want)
				}
			})
		}
	})
}

// testConn returns a plausible connection i seconds after testEpoch.
func testConn(i int, client string) SMTPConnection {
	return SMTPConnection{
		Started:   testEpoch().Add(time.Duration(i) * time.Second),
		Client:    netip.MustParseAddrPort(client),
		Local:     netip.MustParseAddrPort("127.0.0.1:25"),
		ClientKey: "192.0.2.0/24",
		State:     StateNone,
	}
}

func insertConns(t *testing.T, s *Store, cs ...*SMTPConnection) {
	t.Helper()
	for _, c := range cs {
		if err := s.InsertConnection(t.Context(), c); err != nil {
			t.Fatalf("InsertConnection: %v", err)
		}
	}
}

// equalConn compares connections with time.Time.Equal.
func equalConn(a, b SMTPConnection) bool {
	if !a.Started.Equal(b.Started) || !a.Ended.Equal(b.Ended) {
		return false
	}
	a.Started, a.Ended, b.Started, b.Ended = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func connIDs(cs []SMTPConnection) []int64 {
	ids := make([]int64, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

func TestConnectionsRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()

		full := testConn(1, "[::ffff:192.0.2.7]:40000") // mapped: stored unmapped
		full.Local = netip.MustParseAddrPort("[::ffff:127.0.0.1]:25")
		empty := testConn(0, "[2001:db8::1]:1")
		insertConns(t, s, &full, &empty)
		if full.ID == 0 || empty.ID == 0 || full.ID == empty.ID {
			t.Fatalf("ids not set: %d, %d", full.ID, empty.ID)
		}

		full.TestID = "abc"
		full.Ended = full.Started.Add(3 * time.Second)
		full.EHLO = "mta.example.org"
		full.STARTTLSOffered = true
		full.Persona = 4
		full.SNI = "mx4.a.example"
		full.TLSVersion = "TLS 1.3"
		full.TLSCipher = "TLS_AES_128_GCM_SHA256"
		full.State = StateAcked
		full.MailFrom = "a@example.org"
		full.RcptTo = []string{"t-abc@a.example", "t-abc@b.example"}
		full.Reply = "250 2.0.0 personas 3-6 were all contacted"
		full.MessageBytes = 12345
		full.Signatures = []Signature{{Type: "dkim", Domain: "example.org", Selector: "s1", Result: "pass"}, {Type: "arc", Instance: 2}}
		full.Authentication = &Authentication{
			DKIM:        []Signature{{Type: "dkim", Domain: "example.org", Selector: "s1", Result: "fail", Reason: "body hash mismatch"}},
			SPFMailFrom: SPFCheck{Domain: "example.org", Result: "pass"},
			SPFHELO:     SPFCheck{Domain: "mta.example.org", Result: "none", Reason: "no SPF record"},
			DMARC: DMARCCheck{FromDomain: "example.org", RecordDomain: "example.org", Policy: "reject", Result: "pass",
				SPFAlignment: "relaxed", DKIMAlignment: "strict", SPFAligned: true},
			ARC: ARCCheck{Instances: 2, Result: "fail", Reason: "ARC-Seal i=1: signature mismatch"},
		}
		full.Error = "client closed"
		if err := s.UpdateConnection(ctx, &full); err != nil {
			t.Fatalf("UpdateConnection: %v", err)
		}

		got, err := s.Connections(ctx, ConnectionFilter{})
		if err != nil {
			t.Fatalf("Connections: %v", err)
		}
		wantFull := full
		wantFull.Client = netip.MustParseAddrPort("192.0.2.7:40000")
		wantFull.Local = netip.MustParseAddrPort("127.0.0.1:25")
		if len(got) != 2 || !equalConn(got[0], empty) || !equalConn(got[1], wantFull) {
			t.Errorf("Connections =\n%+v\nwant\n%+v\n%+v", got, empty, wantFull)
		}

		missing := full
		missing.ID = 999
		if err := s.UpdateConnection(ctx, &missing); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateConnection(missing): err = %v, want ErrNotFound", err)
		}
		bad := testConn(2, "192.0.2.1:1")
		bad.RcptTo = []string{"a\nb@x"}
		if err := s.InsertConnection(ctx, &bad); err == nil {
			t.Error("InsertConnection with a line break in a recipient succeeded")
		}
		noStart := SMTPConnection{}
		if err := s.InsertConnection(ctx, &noStart); err == nil {
			t.Error("InsertConnection without start time succeeded")
		}
	})
}

func TestConnectionsFilter(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		c := []SMTPConnection{
			testConn(3, "192.0.2.1:1000"),
			testConn(1, "192.0.2.2:1000"),
			testConn(2, "192.0.2.1:1001"),
			testConn(2, "[2001:db8::1]:25"), // same start as [2]: insertion order breaks the tie
			testConn(5, "192.0.2.1:1002"),
		}
		c[0].TestID, c[4].TestID = "t1", "t1"
		for i := range c {
			insertConns(t, s, &c[i])
		}
		id := func(i int) int64 { return c[i].ID }

		for _, tc := range []struct {
			name string
			f    ConnectionFilter
			want []int64
		}{
			{"all, by start", ConnectionFilter{}, []int64{id(1), id(2), id(3), id(0), id(4)}},
			{"test", ConnectionFilter{TestID: "t1"}, []int64{id(0), id(4)}},
			{"client", ConnectionFilter{ClientAddr: netip.MustParseAddr("192.0.2.1")}, []int64{id(2), id(0), id(4)}},
			{"mapped client", ConnectionFilter{ClientAddr: netip.MustParseAddr("::ffff:192.0.2.1")}, []int64{id(2), id(0), id(4)}},
			{"v6 client", ConnectionFilter{ClientAddr: netip.MustParseAddr("2001:db8::1")}, []int64{id(3)}},
			{"since until", ConnectionFilter{Since: testEpoch().Add(2 * time.Second), Until: testEpoch().Add(5 * time.Second)}, []int64{id(2), id(3), id(0)}},
			{"limit", ConnectionFilter{Limit: 2}, []int64{id(1), id(2)}},
			{"combined", ConnectionFilter{TestID: "t1", ClientAddr: netip.MustParseAddr("192.0.2.1"), Since: testEpoch().Add(4 * time.Second)}, []int64{id(4)}},
			{"nothing", ConnectionFilter{TestID: "t2"}, []int64{}},
		} {
			got, err := s.Connections(ctx, tc.f)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if ids := connIDs(got); !reflect.DeepEqual(ids, tc.want) {
				t.Errorf("%s: ids %v, want %v", tc.name, ids, tc.want)
			}
		}
		if _, err := s.Connections(ctx, ConnectionFilter{Limit: -1}); err == nil {
			t.Error("negative limit accepted")
		}
	})
}

func TestTieConnections(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		client := netip.MustParseAddr("192.0.2.1")
		c := []SMTPConnection{
			testConn(0, "192.0.2.1:1"),          // before the range
			testConn(1, "192.0.2.1:2"),          // in range, untied
			testConn(2, "192.0.2.1:3"),          // in range, already tied to another test
			testConn(3, "192.0.2.9:4"),          // in range, other client
			testConn(4, "[::ffff:192.0.2.1]:5"), // in range, same client over a dual-stack socket
			testConn(5, "192.0.2.1:6"),          // at until: excluded
		}
		c[2].TestID = "other"
		for i := range c {
			insertConns(t, s, &c[i])
		}
		n, err := s.TieConnections(ctx, "t1", client, testEpoch().Add(time.Second), testEpoch().Add(5*time.Second))
		if err != nil {
			t.Fatalf("TieConnections: %v", err)
		}
		if n != 2 {
			t.Errorf("tied %d, want 2", n)
		}
		got, err := s.Connections(ctx, ConnectionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"", "t1", "other", "", "t1", ""}
		for i, g := range got {
			if g.TestID != want[i] {
				t.Errorf("connection %d: test %q, want %q", i, g.TestID, want[i])
			}
		}
		// Tying again changes nothing: tied rows keep their test.
		if n, err := s.TieConnections(ctx, "t2", client, testEpoch(), testEpoch().Add(time.Hour)); err != nil || n != 2 {
			t.Errorf("second tie: n=%d err=%v, want 2 (rows 0 and 5 only)", n, err)
		}
		if _, err := s.TieConnections(ctx, "", client, testEpoch(), testEpoch()); err == nil {
			t.Error("empty test id accepted")
		}
	})
}

func TestAckConnectionIsAtomic(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		tt := Test{ID: "t1", Created: testEpoch(), Kind: TestToken, State: TestOpen}
		if err := s.CreateTest(ctx, tt); err != nil {
			t.Fatal(err)
		}
		c := testConn(1, "192.0.2.1:1")
		insertConns(t, s, &c)

		tt.State, tt.Acked = TestAcked, testEpoch().Add(time.Minute)
		c.State, c.Reply, c.TestID = StateAcked, "250 2.0.0 ok", "t1"
		missing := c
		missing.ID = 999
		if err := s.AckConnection(ctx, tt, &missing); !errors.Is(err, ErrNotFound) {
			t.Fatalf("AckConnection(missing conn): err = %v, want ErrNotFound", err)
		}
		if got, _ := s.Test(ctx, "t1"); got.State != TestOpen {
			t.Errorf("test state %q after a failed ack, want open (rolled back)", got.State)
		}
		if err := s.AckConnection(ctx, tt, &c); err != nil {
			t.Fatalf("AckConnection: %v", err)
		}
		got, _ := s.Test(ctx, "t1")
		cs, _ := s.Connections(ctx, ConnectionFilter{TestID: "t1"})
		if got.State != TestAcked || !got.Acked.Equal(tt.Acked) || len(cs) != 1 || cs[0].State != StateAcked {
			t.Errorf("after ack: test %+v, connections %+v", got, cs)
		}
	})
}

func TestTLSRPTReports(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		in := []TLSRPTReport{
			{Received: testEpoch().Add(2 * time.Second), Client: netip.MustParseAddr("::ffff:192.0.2.1"), MailFrom: "r@example.org", Raw: []byte("Subject: x\r\n\r\n\x00\xff")},
			{Received: testEpoch(), Client: netip.MustParseAddr("2001:db8::1"), MailFrom: "", Raw: nil},
			{Received: testEpoch().Add(time.Second)},
		}
		for i := range in {
			if err := s.AddTLSRPTReport(ctx, &in[i], TLSRPTQuota{}); err != nil {
				t.Fatalf("AddTLSRPTReport: %v", err)
			}
			if in[i].ID == 0 {
				t.Fatalf("report %d: id not set", i)
			}
		}
		got, err := s.TLSRPTReports(ctx, testEpoch().Add(time.Second), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != in[2].ID || got[1].ID != in[0].ID {
			t.Fatalf("reports since +1s: %+v", got)
		}
		r := got[1]
		if !r.Received.Equal(in[0].Received) || r.Client != netip.MustParseAddr("192.0.2.1") || r.MailFrom != "r@example.org" || !bytes.Equal(r.Raw, in[0].Raw) {
			t.Errorf("round trip: %+v, want %+v", r, in[0])
		}
		if got[0].Client.IsValid() {
			t.Errorf("unset client read back as %v", got[0].Client)
		}
		if got, err := s.TLSRPTReports(ctx, time.Time{}, 1); err != nil || len(got) != 1 || got[0].ID != in[1].ID {
			t.Errorf("limit 1: %+v, %v", got, err)
		}
		if _, err := s.TLSRPTReports(ctx, time.Time{}, -1); err == nil {
			t.Error("negative limit accepted")
		}
	})
}

func TestConnectionRecorder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		rec, err := s.NewConnectionRecorder(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Close()

		c := testConn(1, "[::ffff:192.0.2.7]:40000")
		if err := rec.Insert(ctx, &c); err != nil || c.ID == 0 {
			t.Fatalf("Insert: id %d, %v", c.ID, err)
		}
		want := c
		want.Client = netip.MustParseAddrPort("192.0.2.7:40000")
		c.TestID, c.Ended, c.EHLO, c.STARTTLSOffered = "t1", c.Started.Add(time.Second), "mta.example", true
		c.Persona, c.SNI, c.TLSVersion, c.TLSCipher, c.State = 6, "mx6.a.example", "TLS 1.2", "X", StateAcked
		c.MailFrom, c.RcptTo, c.Reply, c.MessageBytes = "a@example.org", []string{"x@a.example"}, "250 ok", 10
		c.Signatures, c.Error = []Signature{{Type: "arc", Instance: 1}}, "client closed"
		c.Authentication = &Authentication{SPFMailFrom: SPFCheck{Domain: "example.org", Result: "softfail"}, ARC: ARCCheck{Instances: 1, Result: "pass"}}
		// The identity fields are fixed by Insert.
		moved := c
		moved.Started, moved.Client, moved.Local, moved.ClientKey = c.Started.Add(time.Hour), netip.MustParseAddrPort("198.51.100.1:1"), netip.AddrPort{}, "x"
		if err := rec.Update(ctx, &moved); err != nil {
			t.Fatalf("Update: %v", err)
		}
		want.TestID, want.Ended, want.EHLO, want.STARTTLSOffered = c.TestID, c.Ended, c.EHLO, c.STARTTLSOffered
		want.Persona, want.SNI, want.TLSVersion, want.TLSCipher, want.State = c.Persona, c.SNI, c.TLSVersion, c.TLSCipher, c.State
		want.MailFrom, want.RcptTo, want.Reply, want.MessageBytes = c.MailFrom, c.RcptTo, c.Reply, c.MessageBytes
		want.Signatures, want.Error, want.Authentication = c.Signatures, c.Error, c.Authentication
		got, err := s.Connections(ctx, ConnectionFilter{})
		if err != nil || len(got) != 1 || !equalConn(got[0], want) {
			t.Errorf("after Update: %+v (%v), want %+v", got, err, want)
		}
		moved.ID = 999
		if err := rec.Update(ctx, &moved); !errors.Is(err, ErrNotFound) {
			t.Errorf("Update(missing): err = %v, want ErrNotFound", err)
		}
	})
}

// BenchmarkConnectionLifecycle writes one connection's history the way
// the SMTP personas do: an insert and six updates.
func BenchmarkConnectionLifecycle(b *testing.B) {
	s := openTestStore(b)
	ctx := b.Context()
	rec, err := s.NewConnectionRecorder(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	for _, bc := range []struct {
		name           string
		insert, update func(context.Context, *SMTPConnection) error
	}{
		{"Store", s.InsertConnection, s.UpdateConnection},
		{"ConnectionRecorder", rec.Insert, rec.Update},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				c := testConn(0, "192.0.2.1:1")
				if err := bc.insert(ctx, &c); err != nil {
					b.Fatal(err)
				}
				for _, st := range []ConnState{StateSniSeen, StateTLSStarted, StateMail, StateMail, StateAcked, StateAcked} {
					c.State = st
					c.RcptTo = append(c.RcptTo, "t-x@a.example")
					if err := bc.update(ctx, &c); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestUpdateTestStaleCopy: two sessions of one test update it with the
// copies they read (found by the browser test under load: B's session,
// holding a copy read before A's acknowledgement, wrote the test back to
// open, and the test never became final). Updates only move forward.
func TestUpdateTestStaleCopy(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := context.Background()
		t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
		base := Test{ID: "race1", Created: t0, Kind: TestToken, State: TestOpen, Updated: t0}
		if err := s.CreateTest(ctx, base); err != nil {
			t.Fatal(err)
		}
		stale := base // read by the B session before A's acknowledgement

		acked := base
		acked.Sender, acked.State, acked.Acked, acked.Updated = "a@example.org", TestAcked, t0.Add(2*time.Second), t0.Add(2*time.Second)
		if err := s.UpdateTest(ctx, acked); err != nil {
			t.Fatal(err)
		}
		stale.Sender, stale.Updated = "other@example.org", t0.Add(time.Second)
		if err := s.UpdateTest(ctx, stale); err != nil {
			t.Fatal(err)
		}
		got, err := s.Test(ctx, "race1")
		if err != nil {
			t.Fatal(err)
		}
		if got.State != TestAcked || !got.Acked.Equal(acked.Acked) || got.Sender != "a@example.org" || !got.Updated.Equal(acked.Updated) {
			t.Errorf("after a stale update: %+v, want the acknowledged test kept", got)
		}

		final := got
		final.State, final.Updated = TestFinal, t0.Add(3*time.Second)
		if err := s.UpdateTest(ctx, final); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateTest(ctx, acked); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Test(ctx, "race1"); got.State != TestFinal {
			t.Errorf("a final test went back to %s", got.State)
		}
		// Forward moves still apply: a sender on an open test.
		fresh := Test{ID: "race2", Created: t0, Kind: TestToken, State: TestOpen, Updated: t0}
		if err := s.CreateTest(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		fresh.Sender = "s@example.org"
		if err := s.UpdateTest(ctx, fresh); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Test(ctx, "race2"); got.Sender != "s@example.org" || got.State != TestOpen {
			t.Errorf("forward update lost: %+v", got)
		}
	})
}

// TestEndInterruptedConnections: a record a crash left open is ended at its
// start with the interruption as its error; ended records are unchanged,
// and so are another node's open records (its live sessions); a record
// from before connections named their node (”) counts as the starting
// node's own.
func TestEndInterruptedConnections(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		open, ended := testConn(1, "192.0.2.1:1000"), testConn(2, "192.0.2.2:1000")
		other, legacy := testConn(3, "192.0.2.3:1000"), testConn(4, "192.0.2.4:1000")
		open.State, open.Node = StateMail, "node1"
		ended.Ended, ended.Node = ended.Started.Add(time.Second), "node1"
		other.Node = "node2"
		insertConns(t, s, &open, &ended, &other, &legacy)
		n, err := s.EndInterruptedConnections(t.Context(), "node1")
		if err != nil || n != 2 {
			t.Fatalf("EndInterruptedConnections = %d, %v; want 2", n, err)
		}
		got, err := s.Connections(t.Context(), ConnectionFilter{})
		if err != nil || len(got) != 4 {
			t.Fatalf("Connections = %d, %v", len(got), err)
		}
		for _, i := range []int{0, 3} {
			if !got[i].Ended.Equal(got[i].Started) || got[i].Error != InterruptedConnectionError {
				t.Errorf("interrupted record %d: ended %v (started %v), error %q", i, got[i].Ended, got[i].Started, got[i].Error)
			}
		}
		if got[0].State != StateMail || got[0].Node != "node1" {
			t.Errorf("interrupted record: state %s node %q", got[0].State, got[0].Node)
		}
		if !equalConn(got[1], ended) {
			t.Errorf("ended record changed: %+v", got[1])
		}
		if !got[2].Ended.IsZero() || got[2].Node != "node2" {
			t.Errorf("node2's live record: ended %v node %q", got[2].Ended, got[2].Node)
		}
		if n, err := s.EndInterruptedConnections(t.Context(), "node1"); err != nil || n != 0 {
			t.Errorf("second run = %d, %v; want 0", n, err)
		}
	})
}

// TestTieSlotAddress: connections to a slot's own address, not yet tied and
// in the window, go to the test; another address (even one that begins
// with the same digits), a connection already tied or outside the window
// stay as they are; a mapped address matches its IPv4 form.
func TestTieSlotAddress(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		c := []SMTPConnection{
			testConn(1, "[2001:db8::1]:1000"),
			testConn(2, "[2001:db8::1]:1001"),
			testConn(3, "[2001:db8::1]:1002"),
			testConn(4, "[2001:db8::1]:1003"),
			testConn(5, "192.0.2.1:1000"),
			testConn(9, "[2001:db8::1]:1004"),
		}
		c[0].Local = netip.MustParseAddrPort("[fd00::6:1]:25")
		c[1].Local = netip.MustParseAddrPort("[fd00::6:10]:25") // slot 16's
		c[2].Local = netip.MustParseAddrPort("[fd00::6:1]:2525")
		c[3].Local, c[3].TestID = netip.MustParseAddrPort("[fd00::6:1]:25"), "other"
		c[4].Local = netip.MustParseAddrPort("127.0.0.1:25")
		c[5].Local = netip.MustParseAddrPort("[fd00::6:1]:25") // after the window
		for i := range c {
			insertConns(t, s, &c[i])
		}
		n, err := s.TieSlotAddress(ctx, "t1", netip.MustParseAddr("fd00::6:1"), testEpoch(), testEpoch().Add(8*time.Second))
		if err != nil || n != 2 {
			t.Fatalf("tied %d, %v; want 2", n, err)
		}
		if n, err := s.TieSlotAddress(ctx, "t2", netip.MustParseAddr("::ffff:127.0.0.1"), testEpoch(), testEpoch().Add(8*time.Second)); err != nil || n != 1 {
			t.Fatalf("mapped: tied %d, %v; want 1", n, err)
		}
		got, err := s.Connections(ctx, ConnectionFilter{TestID: "t1"})
		if err != nil {
			t.Fatal(err)
		}
		if ids := connIDs(got); !reflect.DeepEqual(ids, []int64{c[0].ID, c[2].ID}) || got[0].TiedBy != TiedBySlotAddress {
			t.Fatalf("tied %v (%+v), want %d and %d by slot address", ids, got, c[0].ID, c[2].ID)
		}
		if _, err := s.TieSlotAddress(ctx, "", netip.MustParseAddr("fd00::6:1"), testEpoch(), testEpoch()); err == nil {
			t.Error("empty test id accepted")
		}
	})
}
