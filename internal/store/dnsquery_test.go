package store

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// testEpoch is the base time of test queries; a fixed, non-round value with
// nanoseconds so truncation would show.
func testEpoch() time.Time { return time.Date(2026, 3, 14, 15, 9, 26, 535897932, time.UTC) }

// testQuery returns a plausible query i seconds after testEpoch.
func testQuery(i int, name string) DNSQuery {
	return DNSQuery{
		Time:      testEpoch().Add(time.Duration(i) * time.Second),
		Client:    netip.MustParseAddrPort("192.0.2.1:53000"),
		Transport: "udp",
		Name:      name,
		Type:      1, // A
		Rcode:     0,
	}
}

func addQueries(t testing.TB, s *Store, qs []DNSQuery) {
	t.Helper()
	if err := s.AddDNSQueries(t.Context(), qs); err != nil {
		t.Fatalf("AddDNSQueries: %v", err)
	}
}

// equalQuery compares queries with time.Time.Equal, since stored times come
// back in UTC without a monotonic reading.
func equalQuery(a, b DNSQuery) bool {
	return a.Time.Equal(b.Time) && a.Client == b.Client && a.Transport == b.Transport &&
		a.Name == b.Name && a.Type == b.Type && a.DO == b.DO && a.ECS == b.ECS && a.Rcode == b.Rcode
}

func checkQueries(t *testing.T, got, want []DNSQuery) {
	t.Helper()
	if !slices.EqualFunc(got, want, equalQuery) {
		t.Errorf("got %d queries:\n%s\nwant %d:\n%s", len(got), fmtQueries(got), len(want), fmtQueries(want))
	}
}

func fmtQueries(qs []DNSQuery) string {
	var s string
	for _, q := range qs {
		s += fmt.Sprintf("  %s %s %s %s %d do=%v ecs=%q rcode=%d\n",
			q.Time.Format(time.RFC3339Nano), q.Client, q.Transport, q.Name, q.Type, q.DO, q.ECS, q.Rcode)
	}
	return s
}

func TestDNSQueriesRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()

		const tlsa, mx, a = 52, 15, 1
		in := []DNSQuery{
			{Time: testEpoch(), Client: netip.MustParseAddrPort("192.0.2.1:53000"), Transport: "udp",
				Name: "mx4.a.example.", Type: tlsa, DO: true, ECS: "198.51.100.0/24", Rcode: 0},
			{Time: testEpoch().Add(time.Second), Client: netip.MustParseAddrPort("[2001:db8::53]:40000"), Transport: "tcp",
				Name: "a.example.", Type: mx, DO: false, ECS: "", Rcode: 3},
			// Same instant as the next one: insertion order must break the tie.
			{Time: testEpoch().Add(2 * time.Second), Client: netip.MustParseAddrPort("192.0.2.77:1"), Transport: "udp",
				Name: "mx4.a.example.", Type: a, DO: true, ECS: "2001:db8::/56", Rcode: 2},
			{Time: testEpoch().Add(2 * time.Second), Client: netip.MustParseAddrPort("[2001:db8:1::1]:65535"), Transport: "udp",
				Name: "mx4.a.example.", Type: tlsa, DO: false, Rcode: 0},
			{Time: testEpoch().Add(3 * time.Second).In(time.FixedZone("X", 3600)), Client: netip.MustParseAddrPort("198.51.100.9:5353"),
				Transport: "udp", Name: "b.example.", Type: tlsa, DO: true, Rcode: 0},
		}
		// Stored out of order, in two batches: results are ordered by time.
		addQueries(t, s, []DNSQuery{in[4], in[1]})
		addQueries(t, s, []DNSQuery{in[0], in[2], in[3]})
		all := []DNSQuery{in[0], in[1], in[2], in[3], in[4]}

		for _, tc := range []struct {
			name string
			f    DNSQueryFilter
			want []DNSQuery
		}{
			{"all", DNSQueryFilter{}, all},
			{"since inclusive", DNSQueryFilter{Since: testEpoch().Add(2 * time.Second)}, all[2:]},
			{"until exclusive", DNSQueryFilter{Until: testEpoch().Add(2 * time.Second)}, all[:2]},
			{"since and until", DNSQueryFilter{Since: testEpoch().Add(time.Second), Until: testEpoch().Add(3 * time.Second)}, all[1:4]},
			{"empty range", DNSQueryFilter{Since: testEpoch().Add(time.Hour)}, nil},
			{"name", DNSQueryFilter{Name: "mx4.a.example."}, []DNSQuery{in[0], in[2], in[3]}},
			{"name not canonical", DNSQueryFilter{Name: "MX4.A.Example"}, []DNSQuery{in[0], in[2], in[3]}},
			{"name unknown", DNSQueryFilter{Name: "nope.example."}, nil},
			{"type", DNSQueryFilter{Type: tlsa}, []DNSQuery{in[0], in[3], in[4]}},
			{"name and type", DNSQueryFilter{Name: "mx4.a.example.", Type: tlsa}, []DNSQuery{in[0], in[3]}},
			{"client v4 prefix", DNSQueryFilter{ClientPrefix: netip.MustParsePrefix("192.0.2.0/24")}, []DNSQuery{in[0], in[2]}},
			{"client v4 host", DNSQueryFilter{ClientPrefix: netip.MustParsePrefix("198.51.100.9/32")}, []DNSQuery{in[4]}},
			{"client v4-mapped prefix", DNSQueryFilter{ClientPrefix: netip.MustParsePrefix("::ffff:192.0.2.0/120")}, []DNSQuery{in[0], in[2]}},
			{"client v6 prefix", DNSQueryFilter{ClientPrefix: netip.MustParsePrefix("2001:db8::/32")}, []DNSQuery{in[1], in[3]}},
			{"client v6 narrow", DNSQueryFilter{ClientPrefix: netip.MustParsePrefix("2001:db8:1::/48")}, []DNSQuery{in[3]}},
			{"client unmasked prefix", DNSQueryFilter{ClientPrefix: netip.MustParsePrefix("192.0.2.99/24")}, []DNSQuery{in[0], in[2]}},
			{"limit", DNSQueryFilter{Limit: 2}, all[:2]},
			{"limit larger than result", DNSQueryFilter{Limit: 50}, all},
			// The limit counts matches of the Go-side prefix filter, not rows read.
			{"prefix then limit", DNSQueryFilter{ClientPrefix: netip.MustParsePrefix("2001:db8::/32"), Limit: 1}, []DNSQuery{in[1]}},
			{"everything", DNSQueryFilter{Since: testEpoch(), Until: testEpoch().Add(time.Hour), Name: "mx4.a.example.", Type: a,
				ClientPrefix: netip.MustParsePrefix("192.0.2.0/24"), Limit: 1}, []DNSQuery{in[2]}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.DNSQueries(ctx, tc.f)
				if err != nil {
					t.Fatalf("DNSQueries: %v", err)
				}
				checkQueries(t, got, tc.want)
			})
		}

		t.Run("times are UTC", func(t *testing.T) {
			got, err := s.DNSQueries(ctx, DNSQueryFilter{})
			if err != nil {
				t.Fatalf("DNSQueries: %v", err)
			}
			for _, q := range got {
				if q.Time.Location() != time.UTC {
					t.Errorf("time %v not in UTC", q.Time)
				}
			}
		})

		t.Run("negative limit", func(t *testing.T) {
			if _, err := s.DNSQueries(ctx, DNSQueryFilter{Limit: -1}); err == nil {
				t.Error("negative limit accepted")
			}
		})
	})
}

func TestAddDNSQueriesNormalizes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		q := testQuery(0, "MX4.A.Example")
		q.Client = netip.MustParseAddrPort("[::ffff:192.0.2.5]:1234") // as seen on a dual-stack socket
		addQueries(t, s, []DNSQuery{q, {Time: testEpoch().Add(time.Second), Name: "."}})

		got, err := s.DNSQueries(t.Context(), DNSQueryFilter{})
		if err != nil {
			t.Fatalf("DNSQueries: %v", err)
		}
		want := q
		want.Name = "mx4.a.example."
		want.Client = netip.MustParseAddrPort("192.0.2.5:1234")
		// A query with no client address (zero AddrPort) round-trips as zero.
		checkQueries(t, got, []DNSQuery{want, {Time: testEpoch().Add(time.Second), Name: "."}})

		// The zero-client row matches no prefix, not even /0.
		got, err = s.DNSQueries(t.Context(), DNSQueryFilter{ClientPrefix: netip.MustParsePrefix("0.0.0.0/0")})
		if err != nil {
			t.Fatalf("DNSQueries: %v", err)
		}
		checkQueries(t, got, []DNSQuery{want})
	})
}

func TestAddDNSQueriesAtomic(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		bad := testQuery(1, "b.example.")
		bad.Time = time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC) // not representable in unix nanoseconds
		if err := s.AddDNSQueries(t.Context(), []DNSQuery{testQuery(0, "a.example."), bad}); err == nil {
			t.Fatal("AddDNSQueries accepted a time outside the storable range")
		}
		got, err := s.DNSQueries(t.Context(), DNSQueryFilter{})
		if err != nil {
			t.Fatalf("DNSQueries: %v", err)
		}
		checkQueries(t, got, nil)

		if err := s.AddDNSQueries(t.Context(), nil); err != nil {
			t.Errorf("AddDNSQueries(nil): %v", err)
		}
	})
}

func TestDNSQueriesDefaultLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		qs := make([]DNSQuery, defaultDNSQueryLimit+500)
		for i := range qs {
			qs[i] = testQuery(i, "a.example.")
		}
		addQueries(t, s, qs)

		for _, tc := range []struct {
			name string
			f    DNSQueryFilter
			want int
		}{
			{"default", DNSQueryFilter{}, defaultDNSQueryLimit},
			{"default with prefix", DNSQueryFilter{ClientPrefix: netip.MustParsePrefix("192.0.2.0/24")}, defaultDNSQueryLimit},
			{"explicit above default", DNSQueryFilter{Limit: len(qs) + 1}, len(qs)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, err := s.DNSQueries(t.Context(), tc.f)
				if err != nil {
					t.Fatalf("DNSQueries: %v", err)
				}
				if len(got) != tc.want {
					t.Fatalf("got %d queries, want %d", len(got), tc.want)
				}
				// The earliest ones, in order.
				for i, q := range got {
					if !q.Time.Equal(qs[i].Time) {
						t.Fatalf("query %d at %v, want %v", i, q.Time, qs[i].Time)
					}
				}
			})
		}
	})
}

func TestPruneDNSQueries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		// More than one prune chunk, to exercise the loop.
		n := 2*pruneChunk + 17
		qs := make([]DNSQuery, n)
		for i := range qs {
			qs[i] = testQuery(i, "a.example.")
		}
		addQueries(t, s, qs)

		for _, tc := range []struct {
			name        string
			before      time.Time
			wantDeleted int64
			wantLeft    int
		}{
			{"nothing older", testEpoch(), 0, n},
			{"exclusive bound", testEpoch().Add(10 * time.Second), 10, n - 10},
			{"several chunks", testEpoch().Add(time.Duration(n-5) * time.Second), int64(n - 15), 5},
			{"again is a no-op", testEpoch().Add(time.Duration(n-5) * time.Second), 0, 5},
			{"far future", time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), 5, 0},
		} {
			t.Run(tc.name, func(t *testing.T) {
				deleted, err := s.PruneDNSQueries(ctx, tc.before)
				if err != nil {
					t.Fatalf("PruneDNSQueries: %v", err)
				}
				if deleted != tc.wantDeleted {
					t.Errorf("deleted %d, want %d", deleted, tc.wantDeleted)
				}
				got, err := s.DNSQueries(ctx, DNSQueryFilter{Limit: n})
				if err != nil {
					t.Fatalf("DNSQueries: %v", err)
				}
				if len(got) != tc.wantLeft {
					t.Fatalf("%d left, want %d", len(got), tc.wantLeft)
				}
				if len(got) > 0 && got[0].Time.Before(tc.before) {
					t.Errorf("query at %v survived prune before %v", got[0].Time, tc.before)
				}
			})
		}
	})
}

// BenchmarkAddDNSQueries measures batch insert throughput in the shape the
// DNS log writes: batches of 1000 in one transaction each, on each
// database (PostgreSQL: the test cluster runs with fsync off).
func BenchmarkAddDNSQueries(b *testing.B) {
	for _, driver := range testDrivers {
		b.Run(driver, func(b *testing.B) { benchmarkAddDNSQueries(b, openTestStoreOf(b, driver)) })
	}
}

func benchmarkAddDNSQueries(b *testing.B, s *Store) {
	batch := make([]DNSQuery, dnsLogBatch)
	for i := range batch {
		q := testQuery(i, fmt.Sprintf("mx%d.a.example.", i%50))
		q.Type = 52
		q.DO = i%2 == 0
		q.ECS = "198.51.100.0/24"
		batch[i] = q
	}
	ctx := b.Context()
	b.ReportAllocs()
	batches := 0
	for b.Loop() {
		// Time moves forward as in production. Re-inserting the same
		// timestamps would scatter every row across the whole time index
		// and measure cache spills instead of inserts.
		for i := range batch {
			batch[i].Time = batch[i].Time.Add(time.Duration(len(batch)) * time.Second)
		}
		if err := s.AddDNSQueries(ctx, batch); err != nil {
			b.Fatalf("AddDNSQueries: %v", err)
		}
		batches++
	}
	b.ReportMetric(float64(batches*len(batch))/b.Elapsed().Seconds(), "rows/s")
}

// TestDNSQueriesNames: Names selects the queries for any of a set of
// names (a test slot's), in time order, compared in stored form.
func TestDNSQueriesNames(t *testing.T) {
	s := openTestStore(t)
	const tlsa, mx = 52, 15
	addQueries(t, s, []DNSQuery{
		{Time: testEpoch(), Client: netip.MustParseAddrPort("192.0.2.1:53"), Transport: "udp", Name: "s001.a.example.", Type: mx},
		{Time: testEpoch().Add(time.Second), Client: netip.MustParseAddrPort("192.0.2.1:53"), Transport: "udp", Name: "s002.a.example.", Type: mx},
		{Time: testEpoch().Add(2 * time.Second), Client: netip.MustParseAddrPort("192.0.2.1:53"), Transport: "udp", Name: "_25._tcp.mx4.s001.a.example.", Type: tlsa, DO: true},
	})
	got, err := s.DNSQueries(t.Context(), DNSQueryFilter{Names: []string{"S001.A.example", "_25._tcp.mx4.s001.a.example.", "mx4.s001.a.example."}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "s001.a.example." || got[1].Type != tlsa || !got[1].DO {
		t.Fatalf("got %+v, want slot 1's MX and TLSA look-ups", got)
	}
}
