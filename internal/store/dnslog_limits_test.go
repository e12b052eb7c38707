package store

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestDNSQueryLogLimits: queries that need a new row past the limits are
// counted, not stored; repeats of a stored row still fold into it; one
// flooding network does not take the whole budget. The limits' clock is
// stopped, so every query falls into one second.
func TestDNSQueryLogLimits(t *testing.T) {
	const perSecond, perClient = 50, 20
	forEachBackend(t, func(t *testing.T, s *Store) {
		logger, logs := newTestLogger(t)
		l := NewDNSQueryLog(s, logger, 20000, 0)
		frozen := time.Now()
		l.now = func() time.Time { return frozen }
		l.SetLimits(DNSQueryLogLimits{RowsPerSecond: perSecond, RowsPerClientPerSecond: perClient})

		flooder := netip.MustParseAddrPort("198.51.100.7:5300")
		resolver := netip.MustParseAddrPort("192.0.2.1:53000")
		const flood = 5000
		q := func(client netip.AddrPort, name string) DNSQuery {
			return DNSQuery{Time: testEpoch(), Client: client, Transport: "udp", Name: name, Type: 1}
		}
		for i := range flood {
			l.Record(q(flooder, fmt.Sprintf("r%d.a.example.", i)))
		}
		// The resolver's own first query takes a row; its repeats fold in.
		for range 3 {
			l.Record(q(resolver, "_mta-sts.a.example."))
		}
		for i := range 100 {
			l.Record(q(resolver, fmt.Sprintf("x%d.a.example.", i)))
		}
		stop := startLog(t, l)
		stop()

		rows, err := s.DNSQueries(t.Context(), DNSQueryFilter{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		var fromFlooder, fromResolver int
		for _, r := range rows {
			switch r.Client.Addr() {
			case flooder.Addr():
				fromFlooder++
			case resolver.Addr():
				fromResolver++
				if r.Name == "_mta-sts.a.example." && r.Count != 3 {
					t.Errorf("the resolver's repeated query: count %d, want 3", r.Count)
				}
			}
		}
		if len(rows) > perSecond || fromFlooder != perClient || fromResolver != perClient {
			t.Errorf("%d rows (%d of the flooder, %d of the resolver); want at most %d, %d each", len(rows), fromFlooder, fromResolver, perSecond, perClient)
		}
		if got, want := l.Limited()+l.Written()+l.Dropped(), uint64(flood+103); got != want {
			t.Errorf("limited %d + written %d + dropped %d = %d, want %d (every query accounted for)", l.Limited(), l.Written(), l.Dropped(), got, want)
		}
		if !strings.Contains(logs.String(), "queries over the row limits not stored") {
			t.Errorf("no warning about the limited queries; log:\n%s", logs)
		}

		// A new second: the budget is back.
		frozen = frozen.Add(time.Second)
		l.Record(q(flooder, "again.a.example."))
		stop = startLog(t, l)
		stop()
		if got, err := s.DNSQueries(t.Context(), DNSQueryFilter{Name: "again.a.example."}); err != nil || len(got) != 1 {
			t.Errorf("a query in the next second: %d rows, %v", len(got), err)
		}
	})
}
