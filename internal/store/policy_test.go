package store

import (
	"context"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPolicyFetchesRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC)
		fetch := func(i int, client string) PolicyFetch {
			return PolicyFetch{
				Time:      t0.Add(time.Duration(i) * time.Second),
				Client:    netip.MustParseAddrPort(client),
				SNI:       "mta-sts.a.example",
				UserAgent: "postfix-mta-sts-resolver/1.4",
				Path:      "/.well-known/mta-sts.txt",
				Status:    200,
			}
		}
		in := []PolicyFetch{
			fetch(0, "192.0.2.1:40000"),
			fetch(1, "[2001:db8::1]:443"),
			fetch(2, "[::ffff:198.51.100.7]:5555"), // dual-stack socket
			{Time: t0.Add(3 * time.Second), Path: "/other", Status: 404},
		}
		for _, f := range in {
			if err := s.AddPolicyFetch(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		want := append([]PolicyFetch(nil), in...)
		want[2].Client = netip.MustParseAddrPort("198.51.100.7:5555")

		tests := []struct {
			name         string
			since, until time.Time
			limit        int
			want         []PolicyFetch
		}{
			{"all", time.Time{}, time.Time{}, 0, want},
			{"since", t0.Add(time.Second), time.Time{}, 0, want[1:]},
			{"until excludes", time.Time{}, t0.Add(2 * time.Second), 0, want[:2]},
			{"window", t0.Add(time.Second), t0.Add(3 * time.Second), 0, want[1:3]},
			{"limit", time.Time{}, time.Time{}, 2, want[:2]},
			{"empty", t0.Add(time.Hour), time.Time{}, 0, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.PolicyFetches(ctx, tc.since, tc.until, tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got  %+v\nwant %+v", got, tc.want)
				}
			})
		}
		if _, err := s.PolicyFetches(ctx, time.Time{}, time.Time{}, -1); err == nil {
			t.Fatal("negative limit accepted")
		}
	})
}

func TestAddPolicyFetchBoundsText(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		long := strings.Repeat("x", 5000)
		if err := s.AddPolicyFetch(ctx, PolicyFetch{Time: time.Unix(1, 0), UserAgent: long, Path: long, SNI: long, Status: 404}); err != nil {
			t.Fatal(err)
		}
		got, err := s.PolicyFetches(ctx, time.Time{}, time.Time{}, 0)
		if err != nil || len(got) != 1 {
			t.Fatalf("%v %v", got, err)
		}
		if len(got[0].UserAgent) != maxPolicyFetchText || len(got[0].Path) != maxPolicyFetchText || len(got[0].SNI) != maxPolicyFetchText {
			t.Fatalf("texts not cut to %d: %d %d %d", maxPolicyFetchText, len(got[0].UserAgent), len(got[0].Path), len(got[0].SNI))
		}
		if err := s.AddPolicyFetch(ctx, PolicyFetch{Time: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)}); err == nil {
			t.Fatal("a time outside the storable range was accepted")
		}
	})
}

func TestPolicyFetchesFromPrefixes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
		add := func(i int, client string, status int) {
			t.Helper()
			f := PolicyFetch{Time: t0.Add(time.Duration(i) * time.Second), Status: status, Path: "/.well-known/mta-sts.txt"}
			if client != "" {
				f.Client = netip.AddrPortFrom(netip.MustParseAddr(client), 443)
			}
			if err := s.AddPolicyFetch(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		add(0, "192.0.2.0", 200)
		add(1, "192.0.2.255", 200)
		add(2, "192.0.3.0", 200)   // the next /24
		add(3, "192.0.1.255", 200) // the previous /24
		add(4, "::ffff:192.0.2.7", 200)
		add(5, "2001:db8:1::1", 200)
		add(6, "2001:db8:1:ffff:ffff:ffff:ffff:ffff", 200)
		add(7, "2001:db8:2::", 200) // the next /48
		add(8, "2001:db8::ffff", 200)
		add(9, "192.0.2.9", 404)
		add(10, "::1", 200)
		add(11, "", 200) // no client address
		times := func(fs []PolicyFetch) []int {
			var out []int
			for _, f := range fs {
				out = append(out, int(f.Time.Sub(t0)/time.Second))
			}
			return out
		}
		p := netip.MustParsePrefix
		tests := []struct {
			name string
			f    PolicyFetchFilter
			want []int
		}{
			{"v4 /24 boundaries, mapped client, newest first", PolicyFetchFilter{Clients: []netip.Prefix{p("192.0.2.0/24")}, Status: 200}, []int{4, 1, 0}},
			{"any status", PolicyFetchFilter{Clients: []netip.Prefix{p("192.0.2.0/24")}}, []int{9, 4, 1, 0}},
			{"status 404 only", PolicyFetchFilter{Clients: []netip.Prefix{p("192.0.2.0/24")}, Status: 404}, []int{9}},
			{"mapped prefix counts as v4", PolicyFetchFilter{Clients: []netip.Prefix{p("::ffff:192.0.2.0/120")}, Status: 200}, []int{4, 1, 0}},
			{"v4 /32", PolicyFetchFilter{Clients: []netip.Prefix{p("192.0.2.7/32")}, Status: 200}, []int{4}},
			{"v6 /48 boundaries", PolicyFetchFilter{Clients: []netip.Prefix{p("2001:db8:1::/48")}, Status: 200}, []int{6, 5}},
			{"two prefixes", PolicyFetchFilter{Clients: []netip.Prefix{p("2001:db8:2::/48"), p("192.0.3.0/24")}, Status: 200}, []int{7, 2}},
			{"v6 /48 around the mapped range excludes IPv4", PolicyFetchFilter{Clients: []netip.Prefix{p("::/48")}, Status: 200}, []int{10}},
			{"window", PolicyFetchFilter{Clients: []netip.Prefix{p("192.0.2.0/24")}, Status: 200, Since: t0.Add(time.Second), Until: t0.Add(4 * time.Second)}, []int{1}},
			{"limit keeps the newest", PolicyFetchFilter{Clients: []netip.Prefix{p("192.0.2.0/24")}, Status: 200, Limit: 2}, []int{4, 1}},
			{"no prefix, nothing", PolicyFetchFilter{Status: 200}, nil},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.PolicyFetchesFrom(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(times(got), tc.want) {
					t.Fatalf("got fetches %v, want %v", times(got), tc.want)
				}
			})
		}
		got, err := s.PolicyFetchesFrom(ctx, PolicyFetchFilter{Clients: []netip.Prefix{p("192.0.2.0/24")}, Limit: 1})
		if err != nil || len(got) != 1 || got[0].Client != netip.MustParseAddrPort("192.0.2.9:443") || got[0].Status != 404 {
			t.Fatalf("row read back: %+v %v", got, err)
		}
		if _, err := s.PolicyFetchesFrom(ctx, PolicyFetchFilter{Clients: []netip.Prefix{p("192.0.2.0/24")}, Limit: -1}); err == nil {
			t.Fatal("negative limit accepted")
		}
	})
}

// TestPolicyFetchesFromNotStarved is the starvation bug: with the filter
// applied after an oldest-first LIMIT, a flood of fetches from other
// networks or with other statuses hid the sender's one real fetch.
func TestPolicyFetchesFromNotStarved(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
		genuine := PolicyFetch{Time: t0.Add(time.Hour), Client: netip.MustParseAddrPort("198.51.100.20:5000"), Status: 200}
		for i := range 2000 {
			f := PolicyFetch{Time: t0.Add(time.Duration(i) * time.Second), Status: 200,
				Client: netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, byte(i / 256), byte(i)}), 443)}
			if i%2 == 0 {
				// The sender's own network, but not a policy (404).
				f.Client, f.Status = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 443), 404
			}
			if i == 1000 {
				if err := s.AddPolicyFetch(ctx, genuine); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.AddPolicyFetch(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.PolicyFetchesFrom(ctx, PolicyFetchFilter{Clients: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
			Status: 200, Since: t0, Until: t0.Add(24 * time.Hour), Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Client != genuine.Client {
			t.Fatalf("got %d fetches %+v, want the one real fetch", len(got), got)
		}
	})
}

// TestPolicyFetchesFromUsesIndex checks that SQLite answers the evidence
// query from the index, not by scanning the table.
func TestPolicyFetchesFromUsesIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		query, args, err := policyFetchesFromQuery(PolicyFetchFilter{Status: 200, Since: time.Unix(1, 0), Until: time.Unix(2, 0),
			Clients: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/48")}})
		if err != nil {
			t.Fatal(err)
		}
		if s.Driver() == DriverPostgres {
			checkPostgresPlan(t, s, query, args, "policy_fetches_client", false)
			return
		}
		joined := queryPlan(t, s, query, args...)
		if strings.Count(joined, "INDEX policy_fetches_client (status=? AND client_ip>? AND client_ip<?)") != 2 || strings.Contains(joined, "SCAN policy_fetches") {
			t.Fatalf("the query does not use the index for each prefix:\n%s", joined)
		}
	})
}

// checkPostgresPlan fails t unless PostgreSQL can answer query from index
// alone (no sequential scan of a table) and, if ordered, in the index's
// order (no sort). The test tables are too small for the planner to prefer
// an index by cost, so sequential scans and sorts are priced out first
// (enable_seqscan = off; enable_sort too when ordered): what remains shows whether the
// index can serve the query at all, which for a partial index means its
// WHERE is implied by the query's (the rule the queries' literals follow).
func checkPostgresPlan(t *testing.T, s *Store, query string, args []any, index string, ordered bool) {
	t.Helper()
	ctx := t.Context()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sets := []string{"SET enable_seqscan = off"}
	if ordered {
		sets = append(sets, "SET enable_sort = off")
	}
	for _, set := range sets {
		if _, err := conn.ExecContext(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "RESET ALL") //nolint:errcheck // the connection is the test's
	lines, err := queryRows(ctx, conn, "plan", scanValue[string], "EXPLAIN (COSTS OFF) "+s.q(query), args...)
	if err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(lines, "\n")
	if !strings.Contains(plan, " "+index+" ") && !strings.HasSuffix(plan, " "+index) || strings.Contains(plan, "Seq Scan") || ordered && strings.Contains(plan, "Sort") {
		t.Errorf("PostgreSQL does not answer from the index %s%s:\n%s\n%s", index, map[bool]string{true: " in order"}[ordered], query, plan)
	}
}

// queryPlan returns SQLite's plan of query, one step a line.
func queryPlan(t *testing.T, s *Store, query string, args ...any) string {
	t.Helper()
	rows, err := s.DB().QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}

func TestBackfillPolicyFetchIP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		for i, c := range []string{"192.0.2.1:1", "[2001:db8::1]:2", "[::ffff:192.0.2.3]:3"} {
			if err := s.AddPolicyFetch(ctx, PolicyFetch{Time: time.Unix(int64(i), 0), Client: netip.MustParseAddrPort(c), Status: 200}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddPolicyFetch(ctx, PolicyFetch{Time: time.Unix(9, 0), Status: 200}); err != nil {
			t.Fatal(err)
		}
		// Rows as migration 0009 finds them: no client_ip yet.
		if _, err := s.DB().ExecContext(ctx, `UPDATE policy_fetches SET client_ip = NULL`); err != nil {
			t.Fatal(err)
		}
		tx, err := s.DB().BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.backfillPolicyFetchIP(ctx, tx); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			prefix string
			want   int
		}{{"192.0.2.0/24", 2}, {"2001:db8::/48", 1}} {
			got, err := s.PolicyFetchesFrom(ctx, PolicyFetchFilter{Clients: []netip.Prefix{netip.MustParsePrefix(c.prefix)}, Status: 200})
			if err != nil || len(got) != c.want {
				t.Errorf("%s after the backfill: %d fetches (%v), want %d", c.prefix, len(got), err, c.want)
			}
		}
		var nulls int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM policy_fetches WHERE client_ip IS NULL`).Scan(&nulls); err != nil || nulls != 1 {
			t.Fatalf("%d rows without client_ip (%v), want the one without an address", nulls, err)
		}
	})
}

// TestPolicyFetchesBySNI: the fetches of a test slot's own policy host
// count from any client, whatever the case of the SNI, on the index of
// migration 0017; with client prefixes, both are read without repeats.
func TestPolicyFetchesBySNI(t *testing.T) {
	s := openTestStore(t)
	ctx := t.Context()
	t0 := time.Date(2026, 3, 14, 15, 0, 0, 0, time.UTC)
	for i, f := range []struct{ client, sni string }{
		{"198.51.100.1", "mta-sts.s001.a.example"},
		{"203.0.113.9", "MTA-STS.S001.A.example"},
		{"192.0.2.5", "mta-sts.s001.a.example"}, // also in the client prefix
		{"192.0.2.6", "mta-sts.a.example"},
		{"198.51.100.2", "mta-sts.s002.a.example"},
	} {
		if err := s.AddPolicyFetch(ctx, PolicyFetch{Time: t0.Add(time.Duration(i) * time.Second), Client: netip.MustParseAddrPort(f.client + ":443"),
			SNI: f.sni, Status: 200, Path: "/.well-known/mta-sts.txt"}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.PolicyFetchesFrom(ctx, PolicyFetchFilter{SNI: "mta-sts.s001.a.example.", Status: 200,
		Clients: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}})
	if err != nil {
		t.Fatal(err)
	}
	var clients []string
	for _, f := range got {
		clients = append(clients, f.Client.Addr().String())
	}
	if strings.Join(clients, " ") != "192.0.2.6 192.0.2.5 203.0.113.9 198.51.100.1" {
		t.Fatalf("fetches from %v, want the prefix's and the slot's, newest first, once each", clients)
	}
	query, args, err := policyFetchesFromQuery(PolicyFetchFilter{SNI: "mta-sts.s001.a.example", Status: 200})
	if err != nil {
		t.Fatal(err)
	}
	if plan := queryPlan(t, s, query, args...); !strings.Contains(plan, "INDEX policy_fetches_sni") {
		t.Fatalf("the SNI is not read on its index:\n%s", plan)
	}
}
