package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/pgtest"
	"github.com/mailsec/mailsec/internal/store"
)

// jobs counts the runs of the leader's jobs of every member.
type jobs struct {
	running, most, starts atomic.Int64
}

func (j *jobs) run(ctx context.Context) error {
	j.starts.Add(1)
	n := j.running.Add(1)
	defer j.running.Add(-1)
	for {
		m := j.most.Load()
		if n <= m || j.most.CompareAndSwap(m, n) {
			break
		}
	}
	<-ctx.Done()
	return nil
}

// member runs a Member of name on its own store of dsn until the test
// ends, its leader's jobs counted in j.
func member(t *testing.T, dsn, name, keys string, j *jobs) (*Member, context.CancelFunc, chan error) {
	t.Helper()
	st, err := store.OpenDriver(t.Context(), store.DriverPostgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := New(Options{Store: st, Node: name, Keys: keys, Heartbeat: 200 * time.Millisecond, DeadAfter: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Join(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- m.Run(ctx, j.run)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return m, cancel, done
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("not within 10 s: %s", what)
}

// TestOneLeader: of two members on one database one runs the leader's
// jobs; when the leader's lock session dies (pg_terminate_backend, as when
// the server loses the node) its jobs are stopped and the other member
// takes over; when a member stops, the other leads. The jobs never run
// twice at once.
func TestOneLeader(t *testing.T) {
	dsn := pgtest.Database(t)
	var j jobs
	a, stopA, doneA := member(t, dsn, "a", "k", &j)
	waitFor(t, "a leads", a.Leading)
	b, _, _ := member(t, dsn, "b", "k", &j)
	for range 10 {
		if !a.Leading() || b.Leading() || j.running.Load() != 1 {
			t.Fatalf("a leads %v, b leads %v, jobs running %d", a.Leading(), b.Leading(), j.running.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// a's lock session dies: a notices at its next check and stops its
	// jobs; one of the two (b, or a again) takes the lock.
	if _, err := a.o.Store.DB().ExecContext(t.Context(), `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new leader after a's lock session died", func() bool { return j.starts.Load() == 2 && j.running.Load() == 1 })

	// The leader stops: the other one leads.
	if a.Leading() {
		stopA()
		if err := <-doneA; err != nil {
			t.Fatal(err)
		}
		doneA <- nil
		waitFor(t, "b leads after a stopped", b.Leading)
	}
	waitFor(t, "one leader's jobs", func() bool { return j.running.Load() == 1 })
	if most := j.most.Load(); most != 1 {
		t.Errorf("the leader's jobs ran %d times at once", most)
	}
	nodes, err := b.o.Store.Nodes(t.Context())
	if err != nil || len(nodes) != 2 || nodes[0].Name != "a" || nodes[1].Name != "b" {
		t.Errorf("nodes: %+v, %v", nodes, err)
	}
}

// TestJoinRefusesOtherKeys: a node whose published keys differ from a
// live node's may not join; once that node is dead it may.
func TestJoinRefusesOtherKeys(t *testing.T) {
	dsn := pgtest.Database(t)
	st, err := store.OpenDriver(t.Context(), store.DriverPostgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	if err := st.NodeSeen(t.Context(), store.Node{Name: "old", Started: now, Seen: now, Keys: "k1"}); err != nil {
		t.Fatal(err)
	}
	clock := now
	m, err := New(Options{Store: st, Node: "new", Keys: "k2", Heartbeat: time.Second, DeadAfter: 10 * time.Second,
		Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Join(t.Context()); !errors.Is(err, ErrKeysDiffer) {
		t.Fatalf("Join beside a live node with other keys = %v, want ErrKeysDiffer", err)
	}
	clock = now.Add(11 * time.Second)
	if err := m.Join(t.Context()); err != nil {
		t.Fatalf("Join after the other node died: %v", err)
	}
}

// TestJoinSameName: a node restarted at once after a crash joins (its old
// row stops beating); a second process under a name whose node beats is
// refused.
func TestJoinSameName(t *testing.T) {
	dsn := pgtest.Database(t)
	st, err := store.OpenDriver(t.Context(), store.DriverPostgres, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	join := func() error {
		m, err := New(Options{Store: st, Node: "n", Keys: "k", Heartbeat: 100 * time.Millisecond, DeadAfter: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return m.Join(t.Context())
	}
	now := time.Now()
	if err := st.NodeSeen(t.Context(), store.Node{Name: "n", Started: now, Seen: now, Keys: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := join(); err != nil {
		t.Fatalf("restart after a crash: %v", err)
	}
	// A live process of the name: beating every 20 ms.
	ctx, cancel := context.WithCancel(t.Context())
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for ctx.Err() == nil {
			now := time.Now()
			_ = st.NodeSeen(ctx, store.Node{Name: "n", Started: now, Seen: now, Keys: "k"})
			time.Sleep(20 * time.Millisecond)
		}
	}()
	err = join()
	cancel()
	<-beating
	if !errors.Is(err, ErrNameTaken) {
		t.Fatalf("second process of a beating node: Join = %v, want ErrNameTaken", err)
	}
}
