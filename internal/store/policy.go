package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Fetches of zone A's MTA-STS policy (RFC 8461 §3.3) are evidence that a
// sender does MTA-STS at all, which no SMTP connection can show for a
// sender that never reaches persona 3 (DESIGN.md §2). The policy host
// writes one row per request before it answers.

// defaultPolicyFetchLimit is the number of rows PolicyFetches returns when
// the caller gives no limit.
const defaultPolicyFetchLimit = 1000

// maxPolicyFetchText bounds the free-text columns (User-Agent, path, SNI):
// they come from the client and are evidence, not storage for a flood.
const maxPolicyFetchText = 1024

// AddPolicyFetch stores one request to the policy host. The client address
// is stored unmapped (see storedClient); over-long client-supplied texts
// are cut to 1024 octets.
func (s *Store) AddPolicyFetch(ctx context.Context, f PolicyFetch) error {
	ns, err := timeToNanos(f.Time)
	if err != nil {
		return fmt.Errorf("store: add policy fetch: %w", err)
	}
	addr, port := storedClient(f.Client)
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO policy_fetches
    (time_ns, client_addr, client_port, sni, user_agent, path, status)
    VALUES (?, ?, ?, ?, ?, ?, ?)`),
		ns, addr, port, policyFetchText(f.SNI), policyFetchText(f.UserAgent), policyFetchText(f.Path), int64(f.Status)); err != nil {
		return fmt.Errorf("store: add policy fetch: %w", err)
	}
	return nil
}

// PolicyFetches returns the fetches with since <= time < until, ordered by
// time (equal times in insertion order). A zero since or until does not
// restrict; limit 0 means 1000.
func (s *Store) PolicyFetches(ctx context.Context, since, until time.Time, limit int) ([]PolicyFetch, error) {
	switch {
	case limit < 0:
		return nil, fmt.Errorf("store: policy fetches: negative limit %d", limit)
	case limit == 0:
		limit = defaultPolicyFetchLimit
	}
	var where []string
	var args []any
	if !since.IsZero() {
		where = append(where, "time_ns >= ?")
		args = append(args, clampToNanos(since))
	}
	if !until.IsZero() {
		where = append(where, "time_ns < ?")
		args = append(args, clampToNanos(until))
	}
	query := `SELECT time_ns, client_addr, client_port, sni, user_agent, path, status
FROM policy_fetches`
	if len(where) > 0 {
		query += "\nWHERE " + strings.Join(where, " AND ")
	}
	query += "\nORDER BY time_ns, id\nLIMIT ?"
	args = append(args, int64(limit))

	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: policy fetches: %w", err)
	}
	defer rows.Close()
	var out []PolicyFetch
	for rows.Next() {
		var (
			ns, port, status int64
			addr             string
			f                PolicyFetch
		)
		if err := rows.Scan(&ns, &addr, &port, &f.SNI, &f.UserAgent, &f.Path, &status); err != nil {
			return nil, fmt.Errorf("store: policy fetches: scan: %w", err)
		}
		if addr != "" {
			a, err := netip.ParseAddr(addr)
			if err != nil {
				return nil, fmt.Errorf("store: policy fetches: stored client address: %w", err)
			}
			f.Client = netip.AddrPortFrom(a, uint16(port))
		}
		f.Time = nanosToTime(ns)
		f.Status = int(status)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: policy fetches: %w", err)
	}
	return out, nil
}

// policyFetchText cuts a client-supplied text to maxPolicyFetchText octets.
func policyFetchText(s string) string {
	if len(s) > maxPolicyFetchText {
		return s[:maxPolicyFetchText]
	}
	return s
}
