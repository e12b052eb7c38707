package dnsserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

// TestQueryLogUnderFlood runs the server with the real query log and
// store: a flood of random names outside our zones adds no row, and a
// flood of random names inside them adds at most the row limit; on each
// database.
func TestQueryLogUnderFlood(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) { testQueryLogUnderFlood(t, storetest.Open(t, driver)) })
}

func testQueryLogUnderFlood(t *testing.T, st *store.Store) {
	const flood, perSecond = 1500, 100
	qlog := store.NewDNSQueryLog(st, nil, 20000, 0)
	qlog.SetLimits(store.DNSQueryLogLimits{RowsPerSecond: perSecond})
	logCtx, stopLog := context.WithCancel(context.Background())
	logged := make(chan error, 1)
	go func() { logged <- qlog.Run(logCtx) }()
	// Cleanups run last first: the server stops before the log.
	t.Cleanup(func() { stopLog(); <-logged })
	addr := startServerWith(t, qlog)

	// handled waits until the log has taken n queries in (stored, limited
	// or dropped): the answer goes out before the query is recorded.
	handled := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for qlog.Written()+qlog.Limited()+qlog.Dropped() < n {
			if time.Now().After(deadline) {
				t.Fatalf("the log took %d+%d+%d queries, want %d", qlog.Written(), qlog.Limited(), qlog.Dropped(), n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	rows := func() int {
		t.Helper()
		qs, err := st.DNSQueries(t.Context(), store.DNSQueryFilter{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		return len(qs)
	}
	ask := func(name string, want int) {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		if r := exchange(t, addr, "udp", m); r.Rcode != want {
			t.Fatalf("%s: rcode %s, want %s", name, dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
		}
	}

	for i := range flood {
		ask(fmt.Sprintf("r%d-%d.not-ours.example.", i, time.Now().UnixNano()), dns.RcodeRefused)
	}
	// One in-zone query marks the end of the out-of-zone flood in the log.
	ask("_mta-sts."+zoneA, dns.RcodeSuccess)
	handled(1)
	if n := rows(); n != 1 {
		t.Fatalf("%d rows after %d out-of-zone queries and one in-zone query, want 1", n, flood)
	}

	start := time.Now()
	for i := range flood {
		ask(fmt.Sprintf("r%d-%d.%s", i, time.Now().UnixNano(), zoneA), dns.RcodeNameError)
	}
	handled(1 + flood)
	// The limit is per second of the log's clock: the flood spans at most
	// this many windows.
	windows := int(time.Since(start)/time.Second) + 2
	if n := rows() - 1; n == 0 || n > perSecond*windows {
		t.Errorf("%d rows for %d random in-zone names over at most %d seconds; want 1..%d", n, flood, windows, perSecond*windows)
	}
	if qlog.Limited() == 0 && flood > perSecond*windows {
		t.Errorf("no query counted as limited")
	}
}
