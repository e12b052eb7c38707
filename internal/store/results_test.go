package store

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func TestResultsLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		test := Test{ID: "res1", Created: t0, Kind: TestToken, Sender: "jane@Example.org", State: TestAcked, Updated: t0}
		if err := s.CreateTest(ctx, test); err != nil {
			t.Fatal(err)
		}
		c := SMTPConnection{TestID: test.ID, Started: t0, Client: netip.MustParseAddrPort("192.0.2.1:1000"), State: StateMail}
		if err := s.InsertConnection(ctx, &c); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Result(ctx, test.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("result before final: %v", err)
		}
		unfinished, err := s.DueTests(ctx, t0, DueCursor{}, 0)
		if err != nil || len(unfinished) != 1 || !unfinished[0].Due.Equal(t0) {
			t.Fatalf("due at creation: %v %v", unfinished, err)
		}

		r := TestResult{TestID: test.ID, Final: t0.Add(time.Minute), Verdict: []byte(`{"policy":"dane"}`), SenderDomain: "example.org",
			MailState: MailPending, Recipient: "jane@Example.org", Next: t0.Add(time.Minute), SenderAuthenticated: true}
		if err := s.FinalizeTest(ctx, test, r); err == nil {
			t.Fatal("finalised a test whose state is not final")
		}
		test.State = TestFinal
		if err := s.FinalizeTest(ctx, test, r); err != nil {
			t.Fatal(err)
		}
		if err := s.FinalizeTest(ctx, test, r); !errors.Is(err, ErrExists) {
			t.Fatalf("second finalisation: %v, want ErrExists", err)
		}
		if got, _ := s.Test(ctx, test.ID); got.State != TestFinal {
			t.Errorf("state %s after finalisation", got.State)
		}
		if due, err := s.DueResultMails(ctx, t0, 0); err != nil || len(due) != 0 {
			t.Errorf("due before next: %v %v", due, err)
		}
		due, err := s.DueResultMails(ctx, t0.Add(time.Hour), 0)
		if err != nil || len(due) != 1 || string(due[0].Verdict) != `{"policy":"dane"}` || due[0].Recipient != "jane@Example.org" {
			t.Fatalf("due: %+v %v", due, err)
		}

		// A deferred attempt, then the delivery.
		r = due[0]
		r.Attempts, r.Next, r.MailReason = 1, t0.Add(2*time.Hour), "deferred: 451"
		if err := s.UpdateResultMail(ctx, r, &MailAttempt{Time: t0.Add(time.Hour), Status: "deferred", Detail: "mx 451"}); err != nil {
			t.Fatal(err)
		}
		r.Attempts, r.MailState, r.Sent, r.Recipient, r.DeliveredTo = 2, MailSent, t0.Add(2*time.Hour), "", "mx.example.org"
		if err := s.UpdateResultMail(ctx, r, &MailAttempt{Time: t0.Add(2 * time.Hour), Status: "delivered", Detail: "mx 250"}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Result(ctx, "RES1")
		if err != nil || got.MailState != MailSent || got.Attempts != 2 || !got.Sent.Equal(t0.Add(2*time.Hour)) || got.Recipient != "" {
			t.Fatalf("result: %+v %v", got, err)
		}
		atts, err := s.MailAttempts(ctx, test.ID)
		if err != nil || len(atts) != 2 || atts[0].Status != "deferred" || atts[1].Status != "delivered" {
			t.Fatalf("attempts: %+v %v", atts, err)
		}
		if n, err := s.MailsSentSince(ctx, "EXAMPLE.org", t0); err != nil || n != 1 {
			t.Errorf("sent since: %d %v", n, err)
		}
		if lr, err := s.LatestAuthenticatedResult(ctx, "example.org"); err != nil || lr.TestID != test.ID || !lr.SenderAuthenticated {
			t.Errorf("latest: %+v %v", lr, err)
		}
		if err := s.UpdateResultMail(ctx, TestResult{TestID: "nope", Final: t0, Verdict: []byte("{}"), MailState: MailSent}, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("update of a missing result: %v", err)
		}

		// Retention: the test goes with everything recorded for it.
		ids, err := s.TestsCreatedBefore(ctx, t0.Add(time.Second), 0)
		if err != nil || len(ids) != 1 {
			t.Fatalf("created before: %v %v", ids, err)
		}
		if err := s.DeleteTest(ctx, ids[0]); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTest(ctx, ids[0]); !errors.Is(err, ErrNotFound) {
			t.Errorf("second delete: %v", err)
		}
		if cs, _ := s.Connections(ctx, ConnectionFilter{TestID: test.ID}); len(cs) != 0 {
			t.Errorf("connections survived the delete: %v", cs)
		}
		if atts, _ := s.MailAttempts(ctx, test.ID); len(atts) != 0 {
			t.Errorf("attempts survived the delete: %v", atts)
		}
		untied := SMTPConnection{Started: t0, Client: netip.MustParseAddrPort("192.0.2.2:1000"), State: StateNone}
		if err := s.InsertConnection(ctx, &untied); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PurgeUntiedConnections(ctx, t0.Add(time.Second)); err != nil || n != 1 {
			t.Errorf("purge untied: %d %v", n, err)
		}
	})
}
