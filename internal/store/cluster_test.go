package store

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestNodes: a node's heartbeat inserts its row and then updates it; the
// open records of a node not seen since the cut-off are ended, those of a
// live node and of the caller itself are not.
func TestNodes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		for _, n := range []Node{
			{Name: "dead", Started: t0, Seen: t0, Keys: "k1"},
			{Name: "live", Started: t0, Seen: t0, Keys: "k1"},
			{Name: "live", Started: t0, Seen: t0.Add(time.Minute), Keys: "k1", Leading: true},
			{Name: "self", Started: t0, Seen: t0, Keys: "k1"},
		} {
			if err := s.NodeSeen(ctx, n); err != nil {
				t.Fatal(err)
			}
		}
		nodes, err := s.Nodes(ctx)
		if err != nil || len(nodes) != 3 {
			t.Fatalf("Nodes = %+v, %v", nodes, err)
		}
		if live := nodes[1]; live.Name != "live" || !live.Seen.Equal(t0.Add(time.Minute)) || !live.Leading || live.Keys != "k1" {
			t.Errorf("live node after its second heartbeat: %+v", live)
		}
		if err := s.NodeSeen(ctx, Node{}); err == nil {
			t.Error("a node without a name was recorded")
		}

		conns := make([]SMTPConnection, 3)
		for i, node := range []string{"dead", "live", "self"} {
			conns[i] = testConn(i, "192.0.2.1:1000")
			conns[i].Node = node
			insertConns(t, s, &conns[i])
		}
		n, err := s.EndDeadNodesConnections(ctx, "self", t0.Add(30*time.Second))
		if err != nil || n != 1 {
			t.Fatalf("EndDeadNodesConnections = %d, %v; want 1", n, err)
		}
		got, err := s.Connections(ctx, ConnectionFilter{})
		if err != nil || len(got) != 3 {
			t.Fatalf("Connections = %d, %v", len(got), err)
		}
		if got[0].Ended.IsZero() || got[0].Error != InterruptedConnectionError {
			t.Errorf("dead node's record: %+v", got[0])
		}
		if !got[1].Ended.IsZero() || !got[2].Ended.IsZero() {
			t.Errorf("a live node's record was ended: %+v %+v", got[1], got[2])
		}
	})
}

// TestClaimResultMail: of many claims of one due mail at once, one wins;
// another owner cannot claim it while the claim runs, nor anyone once an
// attempt was recorded since it was read (attempts changed); the owner
// may claim it again, and anyone once the claim ran out. Recording the
// attempt with the claim cleared frees it at once.
func TestClaimResultMail(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		now := time.Now().UTC().Truncate(time.Second)
		tst := Test{ID: "claim1", Kind: TestToken, State: TestOpen, Created: now, Updated: now}
		if err := s.CreateTest(ctx, tst); err != nil {
			t.Fatal(err)
		}
		tst.State = TestFinal
		r := TestResult{TestID: tst.ID, Final: now, Verdict: []byte(`{}`), SenderDomain: "user.example",
			MailState: MailPending, Recipient: "u@user.example", Next: now.Add(-time.Minute)}
		if err := s.FinalizeTest(ctx, tst, r); err != nil {
			t.Fatal(err)
		}
		until := now.Add(10 * time.Minute)
		const claimers = 16
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			won  []string
			errs []error
		)
		for i := range claimers {
			wg.Go(func() {
				owner := string(rune('a' + i))
				ok, err := s.ClaimResultMail(ctx, tst.ID, 0, owner, now, until)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				}
				if ok {
					won = append(won, owner)
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 || len(won) != 1 {
			t.Fatalf("%d racing claims: won by %v, errors %v; want exactly one winner", claimers, won, errors.Join(errs...))
		}
		owner := won[0]
		claim := func(who string, attempts int, at time.Time) bool {
			t.Helper()
			ok, err := s.ClaimResultMail(ctx, tst.ID, attempts, who, at, at.Add(10*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if claim("other", 0, now.Add(time.Minute)) {
			t.Error("another owner claimed a mail while its claim runs")
		}
		if !claim(owner, 0, now) {
			t.Error("the owner could not renew its claim")
		}
		if !claim("other", 0, until.Add(time.Second)) {
			t.Error("the claim did not run out")
		}
		got, err := s.Result(ctx, tst.ID)
		if err != nil || got.ClaimOwner != "other" {
			t.Fatalf("result after the claim: %+v, %v", got, err)
		}
		got.Attempts, got.ClaimOwner, got.ClaimUntil = 1, "", time.Time{}
		if err := s.UpdateResultMail(ctx, got, &MailAttempt{TestID: tst.ID, Time: now, Status: "deferred"}); err != nil {
			t.Fatal(err)
		}
		if claim(owner, 0, now) {
			t.Error("a claim with the attempts read before an attempt was recorded succeeded")
		}
		if !claim(owner, 1, now) {
			t.Error("an attempt recorded with the claim cleared did not free the mail")
		}
		if err := s.ReleaseResultMail(ctx, tst.ID, "other"); err != nil {
			t.Fatal(err)
		}
		if claim("other", 1, now) {
			t.Error("another owner's release ended the owner's claim")
		}
		if err := s.ReleaseResultMail(ctx, tst.ID, owner); err != nil {
			t.Fatal(err)
		}
		if !claim("other", 1, now) {
			t.Error("the owner's release did not free the mail")
		}
		if _, err := s.ClaimResultMail(ctx, tst.ID, 1, "", now, until); err == nil {
			t.Error("a claim without an owner was accepted")
		}
	})
}

// TestLeaderLock: of two stores on one database, one leads; the other's
// TryLead fails with ErrNotLeader while the first holds the lock, and
// succeeds once it is released. On SQLite the single process always leads.
func TestLeaderLock(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := t.Context()
		dsn := newTestDSN(t, driver)
		open := func() *Store {
			s, err := OpenDriver(ctx, driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		a, b := open(), open()
		la, err := a.TryLead(ctx, 10*time.Second)
		if err != nil {
			t.Fatalf("first TryLead: %v", err)
		}
		if err := la.Check(ctx); err != nil {
			t.Fatalf("Check of a held lock: %v", err)
		}
		lb, err := b.TryLead(ctx, 10*time.Second)
		if driver == DriverSQLite {
			if err != nil {
				t.Fatalf("SQLite: TryLead = %v; the process always leads", err)
			}
			lb.Release()
			la.Release()
			return
		}
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("second node's TryLead while the first leads = %v, want ErrNotLeader", err)
		}
		// The same node cannot take it twice either: the lock is held by
		// its session, not by the process.
		if _, err := a.TryLead(ctx, 0); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("second TryLead of the leader's store = %v, want ErrNotLeader", err)
		}
		la.Release()
		if err := la.Check(ctx); err == nil {
			t.Error("Check of a released lock succeeded")
		}
		lb, err = b.TryLead(ctx, 10*time.Second)
		if err != nil {
			t.Fatalf("TryLead after the leader released: %v", err)
		}
		// The leader's session dies (its process was killed, its network
		// cut and the server noticed): the server releases the lock at
		// once, and the old leader's Check fails.
		if _, err := a.DB().ExecContext(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
			t.Fatal(err)
		}
		var took error
		for range 100 {
			if la, took = a.TryLead(ctx, 10*time.Second); took == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if took != nil {
			t.Fatalf("TryLead after the leader's session died: %v", took)
		}
		if err := lb.Check(ctx); err == nil {
			t.Error("Check of the dead session's lock succeeded")
		}
		lb.Release()
		la.Release()
		// The released sessions left the pool: a's store still works.
		if _, err := a.Nodes(ctx); err != nil {
			t.Fatalf("store after Release: %v", err)
		}
	})
}

// TestScanSlots: of a destination's slots, racing workers together hold at
// most the cap; a released slot is free at once, an expired one (its
// worker was killed) at its time.
func TestScanSlots(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		now := time.Now()
		const limit, workers = 3, 12
		var (
			wg  sync.WaitGroup
			mu  sync.Mutex
			got = map[int]string{}
		)
		for i := range workers {
			wg.Go(func() {
				owner := string(rune('a' + i))
				slot, ok, err := s.AcquireScanSlot(ctx, "s", "192.0.2.1", owner, limit, now, now.Add(time.Minute))
				if err != nil {
					t.Error(err)
				}
				if ok {
					mu.Lock()
					defer mu.Unlock()
					if prev, dup := got[slot]; dup {
						t.Errorf("slot %d taken by %s and %s", slot, prev, owner)
					}
					got[slot] = owner
				}
			})
		}
		wg.Wait()
		if len(got) != limit {
			t.Fatalf("%d slots taken by %d racing workers, cap %d", len(got), workers, limit)
		}
		if _, ok, _ := s.AcquireScanSlot(ctx, "s", "192.0.2.1", "late", limit, now, now.Add(time.Minute)); ok {
			t.Error("a slot past the cap")
		}
		if _, ok, _ := s.AcquireScanSlot(ctx, "s", "192.0.2.2", "late", limit, now, now.Add(time.Minute)); !ok {
			t.Error("another destination's slot refused")
		}
		if err := s.ReleaseScanSlot(ctx, "s", "192.0.2.1", "nobody", 0); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.AcquireScanSlot(ctx, "s", "192.0.2.1", "late", limit, now, now.Add(time.Minute)); ok {
			t.Error("a release by another owner freed a slot")
		}
		if err := s.ReleaseScanSlot(ctx, "s", "192.0.2.1", got[1], 1); err != nil {
			t.Fatal(err)
		}
		if slot, ok, _ := s.AcquireScanSlot(ctx, "s", "192.0.2.1", "late", limit, now, now.Add(time.Minute)); !ok || slot != 1 {
			t.Errorf("released slot: %d %v", slot, ok)
		}
		later := now.Add(time.Minute + time.Second)
		if _, ok, _ := s.AcquireScanSlot(ctx, "s", "192.0.2.1", "next", limit, later, later.Add(time.Minute)); !ok {
			t.Error("an expired slot was not taken over")
		}
	})
}

// TestScanStarts: racing starts in one window stop at the cap; the next
// window starts afresh.
func TestScanStarts(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		w := time.Unix(1_800_000_000, 0).UTC()
		const limit, tries = 5, 20
		var (
			wg      sync.WaitGroup
			granted atomic.Int64
		)
		for range tries {
			wg.Go(func() {
				ok, err := s.TakeScanStart(ctx, "s", w, limit)
				if err != nil {
					t.Error(err)
				}
				if ok {
					granted.Add(1)
				}
			})
		}
		wg.Wait()
		if granted.Load() != limit {
			t.Fatalf("%d starts granted in one window, cap %d", granted.Load(), limit)
		}
		if ok, err := s.TakeScanStart(ctx, "s", w.Add(time.Second), limit); err != nil || !ok {
			t.Fatalf("next window: %v %v", ok, err)
		}
		starts, err := s.ScanStarts(ctx, "s")
		if err != nil || len(starts) != 2 || starts[w] != limit || starts[w.Add(time.Second)] != 1 {
			t.Errorf("starts %v, %v", starts, err)
		}
	})
}

// TestPruneScanShares: old rate windows and run-out slots are deleted, of
// one scan or of all; the current window and held slots stay until the
// scan's end prunes everything of its own.
func TestPruneScanShares(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		now := time.Unix(1_800_000_000, 0).UTC()
		for _, id := range []string{"a", "b"} {
			for _, w := range []time.Time{now.Add(-time.Hour), now} {
				if ok, err := s.TakeScanStart(ctx, id, w, 5); err != nil || !ok {
					t.Fatalf("start %s %s: %v %v", id, w, ok, err)
				}
			}
			for i, until := range []time.Time{now.Add(-time.Hour), now.Add(time.Minute)} {
				dest := "192.0.2." + string(rune('1'+i))
				if _, ok, err := s.AcquireScanSlot(ctx, id, dest, "w", 1, now.Add(-2*time.Hour), until); err != nil || !ok {
					t.Fatalf("slot %s %s: %v %v", id, dest, ok, err)
				}
			}
		}
		count := func(id string) int {
			t.Helper()
			var n, m int
			if err := s.DB().QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM scan_rate WHERE scan_id = ?`), id).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if err := s.DB().QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM scan_slots WHERE scan_id = ?`), id).Scan(&m); err != nil {
				t.Fatal(err)
			}
			return n + m
		}
		if n, err := s.PruneScanShares(ctx, "a", now.Add(-time.Minute)); err != nil || n != 2 {
			t.Fatalf("pruning scan a's old rows: %d %v, want 2", n, err)
		}
		if a, b := count("a"), count("b"); a != 2 || b != 4 {
			t.Fatalf("rows left: a %d (want the current window and the held slot), b %d (want 4, untouched)", a, b)
		}
		if n, err := s.PruneScanShares(ctx, "", now.Add(-time.Minute)); err != nil || n != 2 {
			t.Fatalf("pruning every scan's old rows: %d %v, want b's 2", n, err)
		}
		if n, err := s.PruneScanShares(ctx, "a", time.Unix(0, math.MaxInt64)); err != nil || n != 2 {
			t.Fatalf("pruning all of scan a at its end: %d %v", n, err)
		}
		if a, b := count("a"), count("b"); a != 0 || b != 2 {
			t.Fatalf("rows left: a %d, b %d", a, b)
		}
	})
}
