package finalise_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/finalise"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

// finaliserWith is the fixture's finaliser (mails off) with a pass limit.
func (f *fixture) finaliserWith(t *testing.T, passLimit int) *finalise.Finaliser {
	t.Helper()
	fin, err := finalise.New(finalise.Options{Store: f.st, PassLimit: passLimit,
		Evidence: evidence.Gatherer{Store: f.st, Rules: evidence.Rules{Quiet: 10 * time.Minute, TestExpiry: 24 * time.Hour}},
		Now:      func() time.Time { return f.now }})
	if err != nil {
		t.Fatal(err)
	}
	return fin
}

// addJunk adds n open fixed tests an hour older than t0 from forged
// senders, without connections (never final before their expiry), due at
// due (zero: at creation, as new tests are).
func (f *fixture) addJunk(t *testing.T, n int, due time.Time) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("junk%05d", i)
		created := t0.Add(-time.Hour + time.Duration(i)*time.Millisecond)
		f.addTest(t, store.Test{ID: id, Created: created, Updated: created, Kind: store.TestFixed,
			Sender: fmt.Sprintf("x%d@provider.example", i), State: store.TestOpen})
		if !due.IsZero() {
			if err := f.st.DeferTest(t.Context(), id, due); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// addReal adds the real test: acknowledged, its mail delivered over TLS
// at t0+1m, final at f.now.
func (f *fixture) addReal(t *testing.T) {
	t.Helper()
	f.addTest(t, store.Test{ID: "real", Created: t0, Updated: t0, Kind: store.TestToken, Sender: userAddr, State: store.TestAcked, Acked: t0.Add(2 * time.Minute)})
	f.addConn(t, delivered("real", 4, t0.Add(time.Minute)))
}

// TestFinaliseDueNotStarvedByJunk: 2,000 open junk tests that are not due
// (each looked at before and deferred) do not keep the finaliser from a
// due real test, although they are older: one pass finalises it. (The
// finaliser used to read only the 1,000 oldest unfinished tests.)
func TestFinaliseDueNotStarvedByJunk(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.addJunk(t, 2000, f.now.Add(5*time.Minute))
		f.addReal(t)
		n, err := f.finaliserWith(t, 0).FinaliseDue(t.Context())
		if err != nil || n != 1 {
			t.Fatalf("finalised %d (%v), want the real test", n, err)
		}
		if _, err := f.st.Result(t.Context(), "real"); err != nil {
			t.Fatalf("the real test is not final: %v", err)
		}
	})
}

// TestFinaliseDueReachesEveryDueTest: more junk tests are due than one
// pass looks at (PassLimit); each pass defers those it looked at, so the
// passes continue through the queue and reach the real test, and then
// nothing is due until the junk's next look.
func TestFinaliseDueReachesEveryDueTest(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.addJunk(t, 250, time.Time{})
		f.addReal(t)
		fin := f.finaliserWith(t, 100)
		passes := 0
		for ; passes < 10; passes++ {
			if _, err := f.st.Result(t.Context(), "real"); err == nil {
				break
			}
			if _, err := fin.FinaliseDue(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if passes != 3 {
			t.Fatalf("the real test was final after %d passes of at most 100 tests behind 250 junk tests, want 3", passes)
		}
		if due, err := f.st.DueTests(t.Context(), f.now, store.DueCursor{}, 0); err != nil || len(due) != 0 {
			t.Fatalf("%d tests still due after the passes (%v)", len(due), err)
		}
		// The junk is looked at again one quiet time later, and is final at
		// its expiry.
		if due, _ := f.st.DueTests(t.Context(), f.now.Add(10*time.Minute), store.DueCursor{}, 1000); len(due) != 250 {
			t.Fatalf("%d junk tests due a quiet time later, want 250", len(due))
		}
		f.now = t0.Add(22 * time.Hour)
		for range 4 {
			if _, err := fin.FinaliseDue(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.st.Result(t.Context(), "junk00000"); err == nil {
			t.Fatal("junk final before its expiry")
		}
		f.now = t0.Add(23*time.Hour + time.Second) // the last junk test's expiry is 249ms after t0+23h
		total := 0
		for range 4 {
			n, err := fin.FinaliseDue(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
		if total != 250 {
			t.Fatalf("%d junk tests final at their expiry, want 250", total)
		}
	})
}

// TestFinaliseDefers: a test that is not final is deferred to the earliest
// moment it may be, never past its expiry.
func TestFinaliseDefers(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		// Answered 451 a minute ago: looked at again at the end of its quiet
		// time.
		f.addTest(t, store.Test{ID: "busy", Created: t0, Updated: t0, Kind: store.TestToken, Sender: userAddr, State: store.TestOpen})
		c := delivered("busy", 4, f.now.Add(-time.Minute))
		c.State = store.StateMail
		f.addConn(t, c)
		// Nothing for half an hour: one quiet time from now.
		f.addTest(t, store.Test{ID: "empty", Created: t0, Updated: t0, Kind: store.TestToken, State: store.TestOpen})
		// Nothing for almost a day: at its expiry.
		old := f.now.Add(-23*time.Hour - 55*time.Minute)
		f.addTest(t, store.Test{ID: "old", Created: old, Updated: old, Kind: store.TestToken, State: store.TestOpen})
		c = delivered("old", 4, old)
		c.State, c.Client = store.StateMail, netip.MustParseAddrPort("198.51.100.1:1")
		f.addConn(t, c)

		if n, err := f.finaliserWith(t, 0).FinaliseDue(t.Context()); err != nil || n != 0 {
			t.Fatalf("finalised %d (%v), want none", n, err)
		}
		due, err := f.st.DueTests(t.Context(), f.now.Add(48*time.Hour), store.DueCursor{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]time.Time{
			"busy":  f.now.Add(-time.Minute + time.Second + 10*time.Minute), // its connection ended, plus the quiet time
			"empty": f.now.Add(10 * time.Minute),
			"old":   old.Add(time.Second + 24*time.Hour), // its connection ended, plus the expiry
		}
		if len(due) != len(want) {
			t.Fatalf("due: %+v", due)
		}
		for _, d := range due {
			if !d.Due.Equal(want[d.ID]) {
				t.Errorf("%s due at %s, want %s", d.ID, d.Due, want[d.ID])
			}
		}
	})
}

// TestFinaliseRecordsAuthentication: whether the test mail authenticated
// its sender is stored with the result, also when result mails are off,
// and only authenticated tests feed the provider table: a plain-text mail
// with a forged MAIL FROM x@provider.example leaves the provider's row.
func TestFinaliseRecordsAuthentication(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Set(t, `provider.example. 60 IN TXT "v=spf1 ip4:192.0.2.0/24 -all"`)
		fin := f.finaliserWith(t, 0)
		const sender = "x@provider.example"
		// The provider's own mail, from its network: SPF pass.
		f.addTest(t, store.Test{ID: "genuine", Created: t0, Updated: t0, Kind: store.TestToken, Sender: sender, State: store.TestAcked, Acked: t0.Add(2 * time.Minute)})
		c := delivered("genuine", 4, t0.Add(time.Minute))
		c.MailFrom = sender
		f.addConn(t, c)
		if n, err := fin.FinaliseDue(t.Context()); err != nil || n != 1 {
			t.Fatalf("finalised %d (%v)", n, err)
		}
		// Later, a plain-text mail from elsewhere with the provider's MAIL FROM.
		f.now = f.now.Add(time.Hour)
		f.addTest(t, store.Test{ID: "forged", Created: f.now.Add(-30 * time.Minute), Updated: f.now.Add(-30 * time.Minute), Kind: store.TestFixed, Sender: sender,
			State: store.TestAcked, Acked: f.now.Add(-29 * time.Minute)})
		f.addConn(t, store.SMTPConnection{TestID: "forged", Started: f.now.Add(-29 * time.Minute), Persona: 1, STARTTLSOffered: true, State: store.StateAcked,
			MailFrom: sender, RcptTo: []string{"test@a.mailtest.example"}, Client: netip.MustParseAddrPort("198.51.100.9:2525")})
		if n, err := fin.FinaliseDue(t.Context()); err != nil || n != 1 {
			t.Fatalf("finalised %d (%v)", n, err)
		}
		for id, want := range map[string]bool{"genuine": true, "forged": false} {
			r, err := f.st.Result(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			if r.SenderAuthenticated != want || r.MailState != store.MailNone {
				t.Errorf("%s: authenticated %v, mail %s, want %v with mails off", id, r.SenderAuthenticated, r.MailState, want)
			}
		}
		r, err := f.st.LatestAuthenticatedResult(t.Context(), "provider.example")
		if err != nil || r.TestID != "genuine" {
			t.Errorf("the provider's row comes from %+v (%v), want the genuine test", r.TestID, err)
		}
	})
}
