package delivery

import (
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

// TestStillDue: a row listed as due before its domain was claimed is
// attempted only if it is still due and unchanged when read again; an
// attempt that finished in between (sent, deferred, given up) or a deleted
// test leaves it alone. Without this check a round that listed the mail
// while another worker was delivering it sent it a second time.
func TestStillDue(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		ctx := t.Context()
		st := storetest.Open(t, driver)
		now := time.Now().UTC().Truncate(time.Second)
		d, err := New(Options{Store: st, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		tst := store.Test{ID: "t1", Kind: store.TestToken, State: store.TestOpen, Created: now.Add(-time.Hour), Updated: now.Add(-time.Hour)}
		if err := st.CreateTest(ctx, tst); err != nil {
			t.Fatal(err)
		}
		tst.State, tst.Updated = store.TestFinal, now
		pending := store.TestResult{TestID: "t1", Final: now, Verdict: []byte(`{}`), SenderDomain: "user.example",
			MailState: store.MailPending, Recipient: "u@user.example", Next: now.Add(-time.Minute)}
		if err := st.FinalizeTest(ctx, tst, pending); err != nil {
			t.Fatal(err)
		}
		due, err := st.DueResultMails(ctx, now, 0)
		if err != nil || len(due) != 1 {
			t.Fatalf("due %v, %v", due, err)
		}
		listed := due[0]
		if _, ok, err := d.stillDue(ctx, listed); err != nil || !ok {
			t.Fatalf("unchanged row: still due %v, %v", ok, err)
		}

		for _, tc := range []struct {
			name   string
			change func(r *store.TestResult)
		}{
			{"deferred", func(r *store.TestResult) { r.Attempts, r.Next = 1, now.Add(time.Minute) }},
			{"attempted, due again", func(r *store.TestResult) { r.Attempts = 1 }},
			{"sent", func(r *store.TestResult) { r.Attempts, r.MailState, r.Sent, r.Recipient = 1, store.MailSent, now, "" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := listed
				tc.change(&r)
				if err := st.UpdateResultMail(ctx, r, nil); err != nil {
					t.Fatal(err)
				}
				if _, ok, err := d.stillDue(ctx, listed); err != nil || ok {
					t.Fatalf("after %s: still due %v, %v", tc.name, ok, err)
				}
			})
		}
		if err := st.DeleteTest(ctx, "t1"); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := d.stillDue(ctx, listed); err != nil || ok {
			t.Fatalf("deleted test: still due %v, %v", ok, err)
		}
	})
}
