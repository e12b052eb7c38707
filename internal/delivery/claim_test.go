package delivery_test

import (
	"context"
	"sync"
	"testing"

	"github.com/mailsec/mailsec/internal/delivery"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

// TestClaimAcrossNodes: two deliverers of different nodes on one store (as
// when leadership moves while an attempt is in flight, or a node cut off
// from the database has not noticed yet). While node1's attempt of a mail
// is in flight, node2 finds the mail claimed (store.ClaimResultMail) and
// does not send it; the mail goes once. Without the claim node2's round
// reads the row as still due (nothing recorded yet) and sends it again.
func TestClaimAcrossNodes(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		f := newFixture(t, driver)
		f.dns.Set(t, `user.example. 60 IN TXT "v=spf1 ip4:127.0.0.0/8 -all"`)
		f.addTest(t, "claimed", userAddr, "127.0.0.9", "", f.now)
		if _, err := f.finaliser(t, f.clock, 0).FinaliseDue(t.Context()); err != nil {
			t.Fatal(err)
		}

		var (
			mu    sync.Mutex
			sends = map[string]int{}
		)
		inFlight, release := make(chan struct{}), make(chan struct{})
		counting := func(node string, block bool) delivery.SendFunc {
			return func(ctx context.Context, from, to string, msg []byte) delivery.Outcome {
				mu.Lock()
				sends[node]++
				mu.Unlock()
				if block {
					close(inFlight)
					<-release
				}
				return delivery.Outcome{Status: delivery.Delivered, DeliveredTo: "mx.user.example", Summary: "250 by " + node}
			}
		}
		node := func(name string, block bool) *delivery.Deliverer {
			return f.deliverer(t, f.clock, func(o *delivery.Options) { o.Node, o.Send = name, counting(name, block) })
		}
		first := make(chan int, 1)
		go func() {
			n, err := node("node1", true).SendDue(t.Context())
			if err != nil {
				t.Error(err)
			}
			first <- n
		}()
		select {
		case <-inFlight:
		case n := <-first:
			t.Fatalf("node1 finished its round without an attempt (delivered %d)", n)
		}
		if n, err := node("node2", false).SendDue(t.Context()); err != nil || n != 0 {
			t.Errorf("node2 during node1's attempt: delivered %d, %v; want 0", n, err)
		}
		close(release)
		if n := <-first; n != 1 {
			t.Errorf("node1 delivered %d, want 1", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if sends["node1"] != 1 || sends["node2"] != 0 {
			t.Errorf("sends %v; want the mail sent once, by node1", sends)
		}
		r, err := f.st.Result(t.Context(), "claimed")
		if err != nil || r.MailState != store.MailSent || r.ClaimOwner != "" || r.Attempts != 1 {
			t.Errorf("result after the attempt: state %s claim %q attempts %d, %v", r.MailState, r.ClaimOwner, r.Attempts, err)
		}
	})
}
