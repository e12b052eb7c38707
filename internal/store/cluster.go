package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"
)

// This file holds what several nodes on one database share besides the
// evidence (migration 0020; docs/cluster.md): the table of nodes with
// their heartbeats, and the leader lock.

// Node is a mailsec process serving from the store (node.name).
type Node struct {
	Name    string
	Started time.Time
	Seen    time.Time // its last heartbeat
	// Keys is a digest of what the node publishes from its key files (DS
	// records, the result mails' DKIM record, the TLSA data): every node
	// must publish the same.
	Keys    string
	Leading bool // held the leader lock at Seen
}

// NodeSeen records n's heartbeat: inserts its row or updates it.
func (s *Store) NodeSeen(ctx context.Context, n Node) error {
	if n.Name == "" {
		return errors.New("store: node seen: no name")
	}
	_, err := execCount(ctx, s.db, "node "+n.Name+" seen", s.q(`INSERT INTO cluster_nodes (name, started_ns, seen_ns, keys, is_leader)
    VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET started_ns = excluded.started_ns, seen_ns = excluded.seen_ns, keys = excluded.keys,
        is_leader = excluded.is_leader`),
		n.Name, clampToNanos(n.Started), clampToNanos(n.Seen), n.Keys, boolToInt(n.Leading))
	return err
}

// Nodes returns every node on record, by name.
func (s *Store) Nodes(ctx context.Context) ([]Node, error) {
	return queryRows(ctx, s.db, "nodes", scanNode,
		s.q(`SELECT name, started_ns, seen_ns, keys, is_leader FROM cluster_nodes ORDER BY name LIMIT 1000`))
}

func scanNode(row rowScanner) (Node, error) {
	var (
		n                   Node
		started, seen, lead int64
	)
	if err := row.Scan(&n.Name, &started, &seen, &n.Keys, &lead); err != nil {
		return Node{}, err
	}
	n.Started, n.Seen, n.Leading = nanosToTime(started), nanosToTime(seen), lead != 0
	return n, nil
}

// EndDeadNodesConnections ends the open connection records of the nodes
// last seen before deadBefore, other than self, as
// EndInterruptedConnections does at a node's own start: a node that died
// and does not come back would otherwise leave them open for ever, and
// their tests would never be final. It returns how many it ended.
func (s *Store) EndDeadNodesConnections(ctx context.Context, self string, deadBefore time.Time) (int64, error) {
	return execCount(ctx, s.db, "end dead nodes' connections", s.q(`UPDATE smtp_connections SET ended_ns = started_ns, error = ?
WHERE ended_ns = 0 AND node IN (SELECT name FROM cluster_nodes WHERE seen_ns < ? AND name <> ?)`),
		InterruptedConnectionError, clampToNanos(deadBefore), self)
}

// Leadership is the leader lock of the nodes on one database: held by one
// node at a time (TryLead). The leader alone finalises tests, sends the
// result mails and runs the retention purge (docs/cluster.md).
//
// On PostgreSQL it is a session-level advisory lock (pg_try_advisory_lock)
// held on a connection of its own, taken out of the pool: the server
// releases it the moment that session ends — the process exits or is
// killed and the kernel closes its socket, or the server ends a session
// idle past idle_session_timeout, which TryLead sets for the session so a
// node cut off from the database loses the lock too. On SQLite the one
// process owning the file always leads: the lock holds nothing.
type Leadership struct {
	conn *sql.Conn // nil on SQLite
}

// ErrNotLeader is returned by TryLead when another node holds the leader
// lock.
var ErrNotLeader = errors.New("another node holds the leader lock")

// TryLead takes the leader lock if no node holds it; an error wrapping
// ErrNotLeader if one does. idle is how long the server lets the lock's
// session sit without a Check before ending it (PostgreSQL 14 and later:
// idle_session_timeout; 0 leaves the server's setting): it must be longer
// than the interval between Checks.
func (s *Store) TryLead(ctx context.Context, idle time.Duration) (*Leadership, error) {
	if s.dialect != dialectPostgres {
		return &Leadership{}, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: leader lock: %w", err)
	}
	if idle > 0 {
		// Versions before 14 have no such setting: there the server's TCP
		// keepalives alone notice a node cut off (docs/cluster.md).
		if _, err := conn.ExecContext(ctx, `SELECT set_config('idle_session_timeout', $1, false)
WHERE current_setting('server_version_num')::int >= 140000`, fmt.Sprint(idle.Milliseconds())); err != nil {
			discard(conn)
			return nil, fmt.Errorf("store: leader lock: idle session timeout: %w", err)
		}
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, int64(lockLeader)).Scan(&got); err != nil {
		discard(conn)
		return nil, fmt.Errorf("store: leader lock: %w", err)
	}
	if !got {
		discard(conn)
		return nil, fmt.Errorf("store: leader lock: %w", ErrNotLeader)
	}
	return &Leadership{conn: conn}, nil
}

// Shared tells whether other processes could hold the lock (PostgreSQL);
// on SQLite the one process always leads.
func (l *Leadership) Shared() bool { return l.conn != nil }

// Check tells whether the lock is still held: the session that holds it
// answers (an advisory lock lives as long as its session; nothing here
// unlocks it). An error means it may be lost: stop leading.
func (l *Leadership) Check(ctx context.Context) error {
	if l.conn == nil {
		return nil
	}
	if _, err := l.conn.ExecContext(ctx, `SELECT 1`); err != nil {
		return fmt.Errorf("store: leader lock: %w", err)
	}
	return nil
}

// Release gives the lock up by ending its session.
func (l *Leadership) Release() {
	if l.conn == nil {
		return
	}
	// Unlock first, in the session that holds the lock: ending the session
	// releases it too, but only once the server has noticed the closed
	// socket and its backend has exited, so another node's TryLead right
	// after Release could still find it held. A session already dead has
	// lost the lock anyway; the error is of no use.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = l.conn.ExecContext(ctx, `SELECT pg_advisory_unlock($1)`, int64(lockLeader))
	discard(l.conn)
}

// discard closes conn's session instead of returning it to the pool: a
// session holding the leader lock, or with the leader's
// idle_session_timeout, must not serve other statements. database/sql
// drops a connection whose Raw function reports driver.ErrBadConn.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
