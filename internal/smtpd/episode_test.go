package smtpd

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

func TestNewEpisode(t *testing.T) {
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	const quiet = 10 * time.Minute
	recent, longAgo := now.Add(-time.Minute), now.Add(-quiet)
	for _, tc := range []struct {
		name string
		ep   store.ClientEpisode
		want bool
	}{
		{"tests all final", store.ClientEpisode{LastStart: recent, Offered: true}, true},
		{"tests all final, quiet too", store.ClientEpisode{LastStart: longAgo, Offered: true}, true},
		{"a test open", store.ClientEpisode{LastStart: recent, Offered: true, OpenTest: true}, false},
		{"a test open, however quiet", store.ClientEpisode{LastStart: longAgo, Offered: true, OpenTest: true}, false},
		{"untied connections, busy", store.ClientEpisode{LastStart: recent, Offered: true, Untied: true}, false},
		{"untied connections, quiet", store.ClientEpisode{LastStart: longAgo, Offered: true, Untied: true}, true},
		// A sender that refused plain text in the window and retries
		// after a long backoff must see STARTTLS once, or it would see
		// nothing but windows.
		{"never offered STARTTLS, quiet", store.ClientEpisode{LastStart: longAgo, Untied: true}, false},
		{"never offered STARTTLS, tied to final tests", store.ClientEpisode{LastStart: longAgo}, false},
	} {
		if got := newEpisode(tc.ep, now, quiet); got != tc.want {
			t.Errorf("%s: newEpisode(%+v) = %v, want %v", tc.name, tc.ep, got, tc.want)
		}
	}
}

// episodeClient sends as one client of a test server: each call is one
// connection that says EHLO, sends one mail to the test if one is named
// (which ties the connection to it), and quits. It reports whether
// STARTTLS was offered.
func episodeClient(t *testing.T, ts *testServer, src string) func(test string) bool {
	return func(test string) bool {
		t.Helper()
		c := dialFrom(t, src, ts.addr())
		offered := hasSTARTTLS(c.ehlo())
		if test != "" {
			// 451 in the window or while collecting evidence: the
			// connection is tied to the test either way.
			if code, msg := c.mail("sender@example.org", []string{"t-" + test + "@" + zoneA}, "Subject: x\r\n\r\nx\r\n"); code != 451 && code != 250 {
				t.Fatalf("mail to %s: %d %s", test, code, msg)
			}
		}
		c.quit()
		return offered
	}
}

func finish(t *testing.T, st *store.Store, tt store.Test) {
	t.Helper()
	tt.State = store.TestFinal
	if err := st.UpdateTest(context.Background(), tt); err != nil {
		t.Fatal(err)
	}
}

// TestRetestEpisode: a client's second test, sent once its first is final,
// gets a downgrade window of its own; a test started while another of the
// client's tests is open does not reopen the window, however quiet the
// client was.
func TestRetestEpisode(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		ts := startServerOn(t, driver, nil)
		send := episodeClient(t, ts, "127.0.0.1")
		step := func(name string, d time.Duration, test string, want bool) {
			t.Helper()
			ts.clock.Advance(d)
			if got := send(test); got != want {
				t.Errorf("%s: STARTTLS offered = %v, want %v", name, got, want)
			}
		}
		t1 := ts.newTest(t, "first1")
		step("test 1 in the window", 0, "first1", false)
		step("test 1 after the window", 3*time.Minute, "first1", true)
		// Test 2 starts while test 1 is open: the provider's episode goes on.
		t2 := ts.newTest(t, "second2")
		step("test 2 while test 1 is open", time.Minute, "second2", true)
		finish(t, ts.st, t1)
		step("test 2 goes on after test 1 is final", time.Minute, "second2", true)
		step("test 2 after a long silence", time.Hour, "second2", true)
		finish(t, ts.st, t2)

		// Both final: the client's next test is a new episode.
		ts.newTest(t, "third3")
		step("test 3: new window", time.Minute, "third3", false)
		step("test 3 inside its window", 2*time.Minute, "third3", false)
		step("test 3 after its window", time.Minute, "third3", true)
		step("test 3 still open", time.Hour, "third3", true)

		if cs := ts.waitEnded(t, 9); t.Failed() {
			t.Logf("connections:\n%s", fmtConns(cs))
		}
	})
}

// TestEpisodeUntied: connections that belong to no test end an episode only
// after timing.episode_quiet, and a client that never saw STARTTLS in its
// episode (it refused plain text in the window, then stayed away) gets it
// next, not another window.
func TestEpisodeUntied(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		ts := startServerOn(t, driver, func(o *Options) { o.EpisodeQuiet = 10 * time.Minute })
		send := episodeClient(t, ts, "127.0.0.1")
		for _, tc := range []struct {
			name string
			wait time.Duration
			want bool
		}{
			{"refused plain text in the window", 0, false},
			{"back after an hour: STARTTLS, not another window", time.Hour, true},
			{"aborted again, soon", 9 * time.Minute, true},
			{"quiet for episode_quiet: a new episode", 10 * time.Minute, false},
		} {
			ts.clock.Advance(tc.wait)
			if got := send(""); got != tc.want {
				t.Errorf("%s: STARTTLS offered = %v, want %v", tc.name, got, tc.want)
			}
		}
		ts.waitEnded(t, 4)
	})
}

// TestEpisodeSharedStore: the rule is a function of the store, so two
// servers (nodes) on one database agree: a restart made by one is the
// window the other applies, although it had the old start cached.
func TestEpisodeSharedStore(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		node1 := startServerOn(t, driver, nil)
		node2 := startServerOn(t, driver, func(o *Options) { o.Store = node1.st; o.Now = node1.clock.Now })
		node2.st = node1.st
		clock := node1.clock
		via1, via2 := episodeClient(t, node1, "127.0.0.1"), episodeClient(t, node2, "127.0.0.1")

		t1 := node1.newTest(t, "first1")
		if via2("first1") {
			t.Error("node 2, test 1's first connection: STARTTLS offered")
		}
		if via1("first1") {
			t.Error("node 1, inside the window node 2 started: STARTTLS offered")
		}
		clock.Advance(3 * time.Minute)
		if !via2("first1") {
			t.Error("node 2, after the window: no STARTTLS")
		}
		finish(t, node1.st, t1)
		node1.newTest(t, "second2")
		clock.Advance(time.Minute)
		if via1("second2") {
			t.Error("node 1, test 2: STARTTLS offered (no new episode)")
		}
		clock.Advance(time.Minute)
		if via2("second2") {
			t.Error("node 2, inside the window node 1 restarted: STARTTLS offered")
		}
		node1.waitEnded(t, 5)
	})
}

// TestEpisodeBrokenHost: a connection to the broken host (docs/smtp.md
// "Broken host") is no activity of the client: a retest whose first
// connection goes there (a sender behind a non-validating resolver tries
// the most preferred MX host first) still gets a downgrade window of its
// own.
func TestEpisodeBrokenHost(t *testing.T) {
	ts := startOnTwoAddresses(t, store.DriverSQLite, func(o *Options) { o.BrokenHostAddrs = []netip.Addr{mustAddr("127.0.0.2")} })
	send := episodeClient(t, ts, "127.0.0.1")
	t1 := ts.newTest(t, "first1")
	if send("first1") {
		t.Fatal("test 1: STARTTLS offered in the window")
	}
	ts.clock.Advance(3 * time.Minute)
	if !send("first1") {
		t.Fatal("test 1 after the window: STARTTLS not offered")
	}
	finish(t, ts.st, t1)
	ts.newTest(t, "second2")
	ts.clock.Advance(time.Minute)
	c := dialNoGreeting(t, "127.0.0.1", ts.addrs[1])
	if code, _ := c.read(); code != 421 {
		t.Fatalf("broken host answered %d", code)
	}
	if send("second2") {
		t.Errorf("retest after a connection to the broken host: STARTTLS offered, want a new window\n%s", fmtConns(ts.conns(t, store.ConnectionFilter{})))
	}
}
