package smtpd

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

// TestFixedTestsKeyedByClientAndCapped: a fixed-address test is the
// sender's from one client network, so a forged MAIL FROM from another
// network gets a test of its own and adds nothing to the real sender's;
// and new fixed tests are capped per client network and overall, with a
// 452 and nothing stored past a cap (issue 16).
func TestFixedTestsKeyedByClientAndCapped(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		t.Parallel()
		ts := startServerOn(t, driver, func(o *Options) {
			o.DowngradeWindow = 0
			o.FixedTests = store.FixedTestLimits{PerClient: 2, Open: 3}
		})
		ctx := context.Background()
		const (
			victim      = "victim@example.org"
			victimNet   = "127.0.0.0/24"
			attackerNet = "127.0.1.0/24"
		)
		rcpt := func(src, from string) (int, string) {
			t.Helper()
			c := dialFrom(t, src, ts.addr())
			c.ehlo()
			c.ok(250, "MAIL FROM:<%s>", from)
			code, msg := c.cmd("RCPT TO:<test@%s>", zoneA)
			c.quit()
			return code, msg
		}

		if code, msg := rcpt("127.0.0.1", victim); code != 250 {
			t.Fatalf("the victim's first mail: %d %s", code, msg)
		}
		// The same MAIL FROM from another network: a test of its own.
		if code, msg := rcpt("127.0.1.1", victim); code != 250 {
			t.Fatalf("the forged mail: %d %s", code, msg)
		}
		cs := ts.waitEnded(t, 2)
		own, forged := cs[0].TestID, cs[1].TestID
		if own == "" || forged == "" || own == forged {
			t.Fatalf("the forged MAIL FROM joined the victim's test:\n%s", fmtConns(cs))
		}
		conns, err := ts.st.Connections(ctx, store.ConnectionFilter{TestID: own})
		if err != nil {
			t.Fatal(err)
		}
		if len(conns) != 1 || conns[0].Client.Addr().String() != "127.0.0.1" {
			t.Errorf("the victim's test has connections of others (its verdict would judge them):\n%s", fmtConns(conns))
		}
		if got, err := ts.st.OpenFixedTest(ctx, victim, victimNet); err != nil || got.ID != own {
			t.Errorf("the victim's test from its network: %+v %v, want %s", got, err, own)
		}
		if got, err := ts.st.OpenFixedTest(ctx, victim, attackerNet); err != nil || got.ID != forged {
			t.Errorf("the forged sender's test from its network: %+v %v, want %s", got, err, forged)
		}
		openTests := func() int {
			t.Helper()
			due, err := ts.st.DueTests(ctx, ts.clock.Now().Add(1000*time.Hour), store.DueCursor{}, 1000)
			if err != nil {
				t.Fatal(err)
			}
			return len(due)
		}

		// The cap per client network: the attacker's second sender is its
		// second open test, the third is refused.
		if code, msg := rcpt("127.0.1.1", "x1@example.net"); code != 250 {
			t.Fatalf("a second sender of the network: %d %s", code, msg)
		}
		before := openTests()
		code, msg := rcpt("127.0.1.1", "x2@example.net")
		if code != 452 || !strings.Contains(msg, "from your network") {
			t.Errorf("past the cap per client: %d %q, want 452 ... from your network", code, msg)
		}
		if n := openTests(); n != before {
			t.Errorf("a test was stored past the cap per client: %d open tests, were %d", n, before)
		}
		// The cap overall (3 open): another network's new sender is refused.
		code, msg = rcpt("127.0.2.1", "y1@example.com")
		if code != 452 || !strings.Contains(msg, "too many open tests") || strings.Contains(msg, "your network") {
			t.Errorf("past the overall cap: %d %q, want 452 too many open tests", code, msg)
		}
		if n := openTests(); n != before {
			t.Errorf("a test was stored past the overall cap: %d open tests, were %d", n, before)
		}
		// An open test is still joined at the caps.
		if code, msg := rcpt("127.0.0.1", victim); code != 250 {
			t.Errorf("the victim's next mail at the caps: %d %s", code, msg)
		}
	})
}
