package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
)

// DNSQuery is one query answered by mailsec's authoritative DNS server. The
// log of them is evidence for tests: which resolver looked up what and when.
type DNSQuery struct {
	Time      time.Time
	Client    netip.AddrPort // source address and port of the query
	Transport string         // "udp" or "tcp"
	Name      string         // query name, lower-case, fully qualified ("mx4.a.example.")
	Type      uint16         // query type (dns.TypeTLSA etc.)
	DO        bool           // DNSSEC OK bit set
	ECS       string         // EDNS client subnet as prefix text ("192.0.2.0/24"), "" if absent
	Rcode     int            // response code we answered
	// Count is how many identical queries this record stands for (the
	// query log aggregates within its flush window); 0 is taken as 1.
	Count int
	// Last is the time of the last of them; zero means Time.
	Last time.Time
}

// DNSQueryFilter selects DNS queries. Zero fields do not restrict.
type DNSQueryFilter struct {
	Since time.Time // inclusive; zero = no lower bound
	Until time.Time // exclusive; zero = no upper bound

	// Name matches one query name exactly. It is compared in the stored
	// form, lower-case and fully qualified; DNSQueries converts it, so
	// "MX4.a.example" finds "mx4.a.example.".
	Name string
	// Names matches any of these query names (compared as Name is); with
	// Name, a query must match both.
	Names []string

	Type uint16 // 0 = any

	// ClientPrefix matches the client address; zero matches any client.
	// It is applied while reading rows in time order, so without Since or
	// Name a narrow prefix may read many rows to find Limit matches.
	ClientPrefix netip.Prefix

	// Limit caps the number of queries returned, after all other filters;
	// the earliest matching queries are returned. 0 means 1000; negative is
	// an error.
	Limit int
}

// defaultDNSQueryLimit bounds a DNSQueries result when the filter does not,
// so a careless "everything" query cannot load a week of logs into memory.
const defaultDNSQueryLimit = 1000

// pruneChunk is how many rows PruneDNSQueries deletes per statement. Each
// statement holds the write lock; chunking lets the DNS log's inserts and
// other writers in between, and keeps the WAL from growing by the size of
// the whole deletion.
const pruneChunk = 5000

// storedClient splits a client address into the stored columns. IPv4-mapped
// IPv6 addresses (what a dual-stack socket reports for IPv4 clients) are
// unmapped, so one client is recorded the same way whichever socket it used
// and IPv4 prefixes match it.
func storedClient(ap netip.AddrPort) (addr string, port int64) {
	if !ap.IsValid() {
		return "", 0
	}
	return ap.Addr().Unmap().String(), int64(ap.Port())
}

// AddDNSQueries stores qs in one transaction. Names are stored in canonical
// form (see DNSQueryFilter.Name) and IPv4-mapped client addresses unmapped.
// Either all queries are stored or, on error, none.
func (s *Store) AddDNSQueries(ctx context.Context, qs []DNSQuery) error {
	if len(qs) == 0 {
		return nil
	}
	// Validate before taking the write lock, so a bad query costs nothing.
	times := make([]int64, len(qs))
	lasts := make([]int64, len(qs))
	for i, q := range qs {
		ns, err := timeToNanos(q.Time)
		if err != nil {
			return fmt.Errorf("store: add DNS queries: query %d (%s): %w", i, q.Name, err)
		}
		times[i], lasts[i] = ns, ns
		if !q.Last.IsZero() {
			if lasts[i], err = timeToNanos(q.Last); err != nil {
				return fmt.Errorf("store: add DNS queries: query %d (%s): %w", i, q.Name, err)
			}
		}
	}

	return s.inTx(ctx, "add DNS queries", func(tx *sql.Tx) error {
		args := make([]any, 0, dnsInsertRows*dnsInsertColumns)
		for start := 0; start < len(qs); start += dnsInsertRows {
			chunk := qs[start:min(start+dnsInsertRows, len(qs))]
			args = args[:0]
			for i, q := range chunk {
				addr, port := storedClient(q.Client)
				args = append(args, times[start+i], addr, port, q.Transport,
					dnsname.CanonicalFQDN(q.Name), int64(q.Type), boolToInt(q.DO), q.ECS, int64(q.Rcode), int64(max(q.Count, 1)), lasts[start+i])
			}
			if _, err := tx.ExecContext(ctx, s.q(insertDNSQueriesSQL(len(chunk))), args...); err != nil {
				return fmt.Errorf("store: add DNS queries: insert: %w", err)
			}
		}
		return nil
	})
}

// A batch of DNS queries is written with multi-row INSERTs of up to
// dnsInsertRows rows: one statement, one round trip to a PostgreSQL server
// and one parse per 250 rows instead of per row. 250 × 11 parameters stay
// below SQLite's limit of 32,766 and PostgreSQL's of 65,535.
const (
	dnsInsertRows    = 250
	dnsInsertColumns = 11
)

// fullDNSInsert is the statement of a whole chunk, built once.
var fullDNSInsert = buildDNSInsert(dnsInsertRows)

// insertDNSQueriesSQL is the INSERT of n rows of DNS queries.
func insertDNSQueriesSQL(n int) string {
	if n == dnsInsertRows {
		return fullDNSInsert
	}
	return buildDNSInsert(n)
}

func buildDNSInsert(n int) string {
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	return `INSERT INTO dns_queries
    (time_ns, client_addr, client_port, transport, name, qtype, dnssec_ok, ecs, rcode, count, last_ns)
    VALUES ` + row + strings.Repeat(", "+row, n-1)
}

// DNSQueries returns the queries matching f, ordered by time ascending
// (queries with equal times in insertion order).
func (s *Store) DNSQueries(ctx context.Context, f DNSQueryFilter) ([]DNSQuery, error) {
	limit, err := limitOrDefault("DNS queries", f.Limit, defaultDNSQueryLimit)
	if err != nil {
		return nil, err
	}
	var w filter
	w.timeRange("time_ns", f.Since, f.Until)
	if f.Name != "" {
		w.add("name = ?", dnsname.CanonicalFQDN(f.Name))
	}
	if len(f.Names) > 0 {
		// One index range (name, time_ns) per name.
		args := make([]any, len(f.Names))
		for i, n := range f.Names {
			args[i] = dnsname.CanonicalFQDN(n)
		}
		w.add("name IN (?"+strings.Repeat(", ?", len(f.Names)-1)+")", args...)
	}
	if f.Type != 0 {
		w.add("qtype = ?", int64(f.Type))
	}
	query := `SELECT time_ns, client_addr, client_port, transport, name, qtype, dnssec_ok, ecs, rcode, count, last_ns
FROM dns_queries` + w.where() + "\nORDER BY time_ns, id"
	args := w.args

	// The client prefix is matched in Go: address containment has no
	// portable SQL form over text addresses. The limit must then count
	// matches, not rows read, so SQL gets no LIMIT and the loop below stops
	// reading once it has enough; rows are streamed, not loaded.
	prefix := f.ClientPrefix
	if prefix.IsValid() {
		prefix = unmapPrefix(prefix.Masked())
	} else {
		query += "\nLIMIT ?"
		args = append(args, int64(limit))
	}

	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, fmt.Errorf("store: DNS queries: %w", err)
	}
	defer rows.Close()

	var out []DNSQuery
	for len(out) < limit && rows.Next() {
		var (
			ns, port, qtype, do, rcode, count, last int64
			addr                                    string
			q                                       DNSQuery
		)
		if err := rows.Scan(&ns, &addr, &port, &q.Transport, &q.Name, &qtype, &do, &q.ECS, &rcode, &count, &last); err != nil {
			return nil, fmt.Errorf("store: DNS queries: scan: %w", err)
		}
		if addr != "" {
			a, err := netip.ParseAddr(addr)
			if err != nil {
				return nil, fmt.Errorf("store: DNS queries: stored client address: %w", err)
			}
			if prefix.IsValid() && !prefix.Contains(a) {
				continue
			}
			q.Client = netip.AddrPortFrom(a, uint16(port))
		} else if prefix.IsValid() {
			continue // unknown client matches no prefix
		}
		q.Time = nanosToTime(ns)
		q.Count, q.Last = int(count), nanosToTime(last)
		if last == 0 {
			q.Last = q.Time
		}
		q.Type = uint16(qtype)
		q.DO = do != 0
		q.Rcode = int(rcode)
		out = append(out, q)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: DNS queries: %w", err)
	}
	return out, nil
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:192.0.2.0/120) into
// the IPv4 prefix it denotes (192.0.2.0/24), because stored addresses are
// unmapped. Other prefixes are returned unchanged.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// PruneDNSQueries deletes queries older than before and returns how many it
// deleted. It deletes in chunks (see pruneChunk); if ctx ends part way, the
// rows deleted so far stay deleted and are counted.
func (s *Store) PruneDNSQueries(ctx context.Context, before time.Time) (int64, error) {
	return s.pruneBefore(ctx, "prune DNS queries", "dns_queries", "time_ns", before)
}
