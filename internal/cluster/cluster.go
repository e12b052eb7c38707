// Package cluster lets several mailsec nodes serve from one PostgreSQL
// store (docs/cluster.md). Every node serves DNS, the SMTP personas and the
// policy host and writes its evidence to the shared store; the jobs that
// must run once — finalising tests, sending result mails, the retention
// purge — run on one node at a time, the leader: the node holding the
// store's leader lock (store.TryLead). A Member records its node's
// heartbeat, takes the lock when it is free, runs the leader's jobs while
// it holds it and stops them as soon as it may have lost it.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/store"
)

// Errors of Join.
var (
	ErrKeysDiffer = errors.New("another live node publishes other keys")
	ErrNameTaken  = errors.New("another process runs under this node's name")
)

// Options configure a Member.
type Options struct {
	Store *store.Store
	// Node is this node's name (node.name), unique among the nodes.
	Node string
	// Keys is a digest of what the node publishes from its key files
	// (Join compares it with the live nodes').
	Keys string
	// Heartbeat is the period of the heartbeat, of the leader lock's
	// check and of the tries to take it (node.heartbeat).
	Heartbeat time.Duration
	// DeadAfter: a node silent for this long is dead (node.dead_after).
	DeadAfter time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// Member is this node's part in the cluster.
type Member struct {
	o       Options
	started time.Time
	leading atomic.Bool
}

// New returns a Member, with defaults for unset options.
func New(o Options) (*Member, error) {
	if o.Store == nil || o.Node == "" {
		return nil, errors.New("cluster: a store and a node name are needed")
	}
	option.Positive(&o.Heartbeat, 2*time.Second)
	option.Positive(&o.DeadAfter, 15*o.Heartbeat)
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	return &Member{o: o, started: o.Now()}, nil
}

// Join checks that no live node publishes other keys than this one — the
// zones would then answer differently depending on the name server asked,
// and validating resolvers would call them bogus — and records this node.
// A process of the same name that is still beating is refused too: two
// processes of one name would end each other's connection records. When
// the row of this name was written within two heartbeats (this node
// crashed and was restarted at once), Join waits two heartbeats and
// refuses only if the row was written again meanwhile.
func (m *Member) Join(ctx context.Context) error {
	nodes, err := m.o.Store.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	now := m.o.Now()
	for _, n := range nodes {
		live := now.Sub(n.Seen) < m.o.DeadAfter
		switch {
		case !live:
		case n.Name == m.o.Node && now.Sub(n.Seen) < 2*m.o.Heartbeat:
			if err := m.notBeating(ctx, n); err != nil {
				return err
			}
		case n.Name != m.o.Node && n.Keys != m.o.Keys:
			return fmt.Errorf("cluster: %w: node %q (seen %s ago) publishes keys %s, this node %s: copy its key directory (docs/cluster.md)",
				ErrKeysDiffer, n.Name, now.Sub(n.Seen).Round(time.Millisecond), n.Keys, m.o.Keys)
		}
	}
	return m.heartbeat(ctx)
}

// notBeating waits two heartbeats and fails if the node n (of this node's
// name) recorded a heartbeat meanwhile: another process runs as this node.
func (m *Member) notBeating(ctx context.Context, n store.Node) error {
	select {
	case <-time.After(2 * m.o.Heartbeat):
	case <-ctx.Done():
		return ctx.Err()
	}
	nodes, err := m.o.Store.Nodes(ctx)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	for _, again := range nodes {
		if again.Name == n.Name && again.Seen.After(n.Seen) {
			return fmt.Errorf("cluster: %w: node %q beats (its heartbeat %s): node.name must differ per node",
				ErrNameTaken, n.Name, again.Seen.UTC().Format(time.RFC3339Nano))
		}
	}
	return nil
}

// Leading tells whether this node holds the leader lock.
func (m *Member) Leading() bool { return m.leading.Load() }

func (m *Member) heartbeat(ctx context.Context) error {
	return m.o.Store.NodeSeen(ctx, store.Node{Name: m.o.Node, Started: m.started, Seen: m.o.Now(), Keys: m.o.Keys, Leading: m.leading.Load()})
}

// takeoverGrace is how many heartbeats a node that took the leader lock
// waits before it starts the leader's jobs: the longest a previous leader
// may go on running them after losing its lock session (its next check
// within one heartbeat, the check's own limit three more). The server can
// end a lock session at once (pg_terminate_backend, a crashed backend, a
// cut connection the server noticed first) while the leader that held it
// learns of it only at its next check; without the grace both would run
// the jobs for that while (TestOneLeader saw it under load).
const takeoverGrace = 4

// Run records the heartbeat and contends for the leader lock until ctx
// ends. Once this node holds the lock and has waited takeoverGrace
// heartbeats, checking it on every one, lead runs with a context that ends
// when the lock may be lost (its session does not answer a check within
// three heartbeats) or ctx ends; Run waits for it to return before it
// gives the lock up. So two nodes' jobs never overlap while their checks
// answer. An error from lead (other than its context ending) ends Run with
// that error: a leader that cannot do its jobs must not keep the lock.
func (m *Member) Run(ctx context.Context, lead func(context.Context) error) error {
	log := m.o.Logger
	t := time.NewTicker(m.o.Heartbeat)
	defer t.Stop()
	var (
		lock     *store.Leadership
		stop     context.CancelFunc
		leadDone chan error
		graceEnd time.Time // while the lock is held and the jobs wait
	)
	// giveUp stops the jobs if they run, then releases the lock.
	giveUp := func() error {
		var err error
		if leadDone != nil {
			stop()
			err = <-leadDone
		}
		lock.Release()
		lock, stop, leadDone = nil, nil, nil
		m.leading.Store(false)
		return err
	}
	resign := func(why string, args ...any) error {
		err := giveUp()
		if err != nil {
			args = append(args, "jobs_err", err)
		}
		log.Warn(why, args...)
		return err
	}
	defer func() {
		if lock != nil {
			giveUp()
		}
	}()
	for {
		switch {
		case lock == nil:
			// The session's idle limit is well past the checks' period,
			// so only a node that stopped checking loses it that way.
			l, err := m.o.Store.TryLead(ctx, 5*m.o.Heartbeat)
			switch {
			case err == nil:
				lock, graceEnd = l, time.Now()
				if l.Shared() {
					graceEnd = graceEnd.Add(takeoverGrace * m.o.Heartbeat)
					log.Info("cluster: this node holds the leader lock; its jobs start after the takeover grace", "node", m.o.Node, "grace", takeoverGrace*m.o.Heartbeat)
				}
				continue // on SQLite (no grace) the jobs start at once
			case !errors.Is(err, store.ErrNotLeader) && ctx.Err() == nil:
				log.Error("cluster: leader lock", "err", err)
			}
		case leadDone != nil && len(leadDone) > 0:
			// giveUp receives the jobs' result; resign logs it.
			if err := resign("cluster: the leader's jobs stopped; giving the lock up"); err != nil && ctx.Err() == nil {
				return fmt.Errorf("cluster: leader's jobs: %w", err)
			}
		default:
			// Three heartbeats for the check: a busy machine or database
			// is not a lost lock. The old leader still stops before the
			// server ends its silent session (idle after 5 heartbeats >
			// 1 + 3).
			cctx, cancel := context.WithTimeout(ctx, 3*m.o.Heartbeat)
			err := lock.Check(cctx)
			cancel()
			switch {
			case err != nil && ctx.Err() == nil:
				resign("cluster: the leader lock may be lost; another node takes over", "err", err)
			case err == nil && leadDone == nil && !time.Now().Before(graceEnd):
				m.leading.Store(true)
				lctx, cancel := context.WithCancel(ctx)
				stop, leadDone = cancel, make(chan error, 1)
				go func() { leadDone <- lead(lctx) }()
				log.Info("cluster: this node leads: finalising tests, sending result mails, purging", "node", m.o.Node)
			}
		}
		if err := m.heartbeat(ctx); err != nil && ctx.Err() == nil {
			log.Error("cluster: heartbeat", "err", err)
		}
		if m.leading.Load() {
			if n, err := m.o.Store.EndDeadNodesConnections(ctx, m.o.Node, m.o.Now().Add(-m.o.DeadAfter)); err != nil && ctx.Err() == nil {
				log.Error("cluster: ending dead nodes' connections", "err", err)
			} else if n > 0 {
				log.Warn("cluster: ended the open connection records of nodes not heard of", "connections", n, "dead_after", m.o.DeadAfter)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
