package store

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
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
// is stored unmapped (see storedClient), and as its 16-octet key for prefix
// look-ups (addrKey); over-long client-supplied texts are cut to 1024
// octets.
func (s *Store) AddPolicyFetch(ctx context.Context, f PolicyFetch) error {
	ns, err := timeToNanos(f.Time)
	if err != nil {
		return fmt.Errorf("store: add policy fetch: %w", err)
	}
	addr, port := storedClient(f.Client)
	var key []byte // NULL without an address
	if f.Client.Addr().IsValid() {
		key = addrKey(f.Client.Addr())
	}
	if _, err := s.db.ExecContext(ctx, s.q(`INSERT INTO policy_fetches
    (time_ns, client_addr, client_port, sni, user_agent, path, status, client_ip)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		ns, addr, port, policyFetchText(f.SNI), policyFetchText(f.UserAgent), policyFetchText(f.Path), int64(f.Status), key); err != nil {
		return fmt.Errorf("store: add policy fetch: %w", err)
	}
	return nil
}

// PolicyFetches returns the fetches with since <= time < until, ordered by
// time (equal times in insertion order). A zero since or until does not
// restrict; limit 0 means 1000. It lists the log (tests, the policy host's
// own checks); evidence about a sender is read with PolicyFetchesFrom.
func (s *Store) PolicyFetches(ctx context.Context, since, until time.Time, limit int) ([]PolicyFetch, error) {
	limit, err := limitOrDefault("policy fetches", limit, defaultPolicyFetchLimit)
	if err != nil {
		return nil, err
	}
	var w filter
	w.timeRange("time_ns", since, until)
	query := `SELECT time_ns, client_addr, client_port, sni, user_agent, path, status
FROM policy_fetches` + w.where() + "\nORDER BY time_ns, id\nLIMIT ?"
	return s.queryPolicyFetches(ctx, query, append(w.args, int64(limit)))
}

// PolicyFetchFilter selects the policy fetches that are evidence about one
// sender (internal/evidence).
type PolicyFetchFilter struct {
	// Clients: the fetch's client address lies in one of these prefixes.
	// None selects nothing. IPv4-mapped IPv6 addresses and prefixes count
	// as IPv4; an IPv6 prefix never covers an IPv4 client.
	Clients []netip.Prefix
	// SNI: also the fetches whose TLS server name is this (any case),
	// from any client, from SNISince on (and within Since, Until): a
	// test slot's own policy host while the test held the slot
	// (docs/policy-host.md "Test slots"). "" adds none.
	SNI      string
	SNISince time.Time
	// Status is the HTTP status of the answer; 0 selects any.
	Status int
	// Since <= time < Until; a zero bound does not restrict.
	Since, Until time.Time
	// Limit is the number of rows returned at most, newest first; 0
	// means 1000.
	Limit int
}

// PolicyFetchesFrom returns the fetches f selects, newest first (equal
// times in reverse insertion order). The filtering is done by the database
// on the index (status, client_ip, time_ns), one address range per prefix,
// so fetches of other networks or with another status cannot push the
// selected ones out of the limit.
func (s *Store) PolicyFetchesFrom(ctx context.Context, f PolicyFetchFilter) ([]PolicyFetch, error) {
	query, args, err := policyFetchesFromQuery(f)
	if err != nil || query == "" {
		return nil, err
	}
	return s.queryPolicyFetches(ctx, query, args)
}

// policyFetchesFromQuery is PolicyFetchesFrom's query; "" when f selects
// nothing.
func policyFetchesFromQuery(f PolicyFetchFilter) (string, []any, error) {
	limit, err := limitOrDefault("policy fetches", f.Limit, defaultPolicyFetchLimit)
	if err != nil {
		return "", nil, err
	}
	// One index range per prefix, each newest first and limited on its
	// own, then merged: SQLite does not use the index for an OR of
	// ranges. UNION drops the duplicates of overlapping prefixes.
	var common filter
	if f.Status != 0 {
		common.add("status = ?", int64(f.Status))
	}
	common.timeRange("time_ns", f.Since, f.Until)
	const columns = "id, time_ns, client_addr, client_port, sni, user_agent, path, status"
	var parts []string
	var args []any
	// part adds one index range: the rows of cond (and the conditions of
	// common), newest first, limited on its own.
	part := func(common filter, cond string, condArgs ...any) {
		var w filter
		w.add(cond, condArgs...)
		w.and(common)
		parts = append(parts, fmt.Sprintf(`SELECT * FROM (SELECT %s FROM policy_fetches%s ORDER BY time_ns DESC, id DESC LIMIT ?) AS r%d`,
			columns, w.where(), len(parts)))
		args = append(args, w.args...)
		args = append(args, int64(limit))
	}
	for _, p := range f.Clients {
		if !p.IsValid() {
			return "", nil, fmt.Errorf("store: policy fetches: invalid prefix %v", p)
		}
		for _, r := range prefixRanges(p) {
			part(common, "client_ip BETWEEN ? AND ?", r[0], r[1])
		}
	}
	if f.SNI != "" {
		// On the index (lower(sni), time_ns) of migration 0017.
		var own filter
		if f.Status != 0 {
			own.add("status = ?", int64(f.Status))
		}
		since := f.Since
		if f.SNISince.After(since) {
			since = f.SNISince
		}
		own.timeRange("time_ns", since, f.Until)
		part(own, "lower(sni) = ?", dnsname.Canonical(f.SNI))
	}
	if len(parts) == 0 {
		return "", nil, nil
	}
	query := `SELECT time_ns, client_addr, client_port, sni, user_agent, path, status
FROM (` + strings.Join(parts, "\nUNION\n") + `) AS u
ORDER BY time_ns DESC, id DESC
LIMIT ?`
	args = append(args, int64(limit))
	return query, args, nil
}

func (s *Store) queryPolicyFetches(ctx context.Context, query string, args []any) ([]PolicyFetch, error) {
	return queryRows(ctx, s.db, "policy fetches", scanPolicyFetch, s.q(query), args...)
}

// scanPolicyFetch reads one row of "time_ns, client_addr, client_port,
// sni, user_agent, path, status".
func scanPolicyFetch(row rowScanner) (PolicyFetch, error) {
	var (
		ns, port, status int64
		addr             string
		f                PolicyFetch
	)
	if err := row.Scan(&ns, &addr, &port, &f.SNI, &f.UserAgent, &f.Path, &status); err != nil {
		return PolicyFetch{}, err
	}
	if addr != "" {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return PolicyFetch{}, fmt.Errorf("stored client address: %w", err)
		}
		f.Client = netip.AddrPortFrom(a, uint16(port))
	}
	f.Time = nanosToTime(ns)
	f.Status = int(status)
	return f, nil
}

// addrKey is the stored key of a client address (policy_fetches.client_ip):
// 16 octets, big-endian, IPv4 as IPv4-mapped IPv6 (RFC 4291 §2.5.5.2), so
// that byte-wise order is address order and a prefix is one range.
func addrKey(a netip.Addr) []byte {
	b := a.Unmap().As16()
	return b[:]
}

// mapped is the IPv4-mapped range ::ffff:0:0/96, where addrKey puts IPv4.
var mapped = netip.MustParsePrefix("::ffff:0:0/96")

// prefixRanges returns the addrKey ranges [lo, hi] of the addresses in p:
// one range, or for an IPv6 prefix that contains the IPv4-mapped range
// (such as ::/48 of a client at ::1) the parts around it, since IPv4
// clients are never in an IPv6 prefix.
func prefixRanges(p netip.Prefix) [][2][]byte {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	lo, hi := p.Addr(), lastAddr(p)
	if lo.Is4() {
		return [][2][]byte{{addrKey(lo), addrKey(hi)}}
	}
	mlo, mhi := mapped.Addr(), lastAddr(mapped)
	if hi.Less(mlo) || mhi.Less(lo) {
		return [][2][]byte{{addrKey(lo), addrKey(hi)}}
	}
	// p is IPv6 and overlaps the mapped range: being a prefix of at most
	// 96 bits here, it contains it.
	var out [][2][]byte
	if lo.Less(mlo) {
		out = append(out, [2][]byte{addrKey(lo), as16(mlo.Prev())})
	}
	if mhi.Less(hi) {
		out = append(out, [2][]byte{as16(mhi.Next()), addrKey(hi)})
	}
	return out
}

// as16 is an IPv6 address's 16 octets (addrKey would unmap a mapped one).
func as16(a netip.Addr) []byte {
	b := a.As16()
	return b[:]
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr()
	if a.Is4() {
		b := a.As4()
		setHostBits(b[:], p.Bits())
		return netip.AddrFrom4(b)
	}
	b := a.As16()
	setHostBits(b[:], p.Bits())
	return netip.AddrFrom16(b)
}

// setHostBits sets every bit of b after the first bits.
func setHostBits(b []byte, bits int) {
	for i := bits; i < 8*len(b); i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
}

// policyFetchText cuts a client-supplied text to maxPolicyFetchText octets.
func policyFetchText(s string) string {
	if len(s) > maxPolicyFetchText {
		return s[:maxPolicyFetchText]
	}
	return s
}
