package dnsserver

import (
	"testing"

	"github.com/miekg/dns"
)

// TestQueryCounts: every answered query is counted by type and rcode, over
// UDP (fresh and from the answer cache) and TCP, names outside the zones
// too; type numbers outside the named set are counted as "other".
func TestQueryCounts(t *testing.T) {
	addr, srv := startLimitedServer(t, Options{})
	ask := func(network, name string, qtype uint16) {
		t.Helper()
		m := new(dns.Msg)
		m.SetQuestion(name, qtype)
		exchange(t, addr, network, m)
	}
	ask("udp", "mx4."+zoneA, dns.TypeA)
	ask("udp", "mx4."+zoneA, dns.TypeA) // the answer cache's path
	ask("tcp", "mx4."+zoneA, dns.TypeA)
	ask("udp", "nx."+zoneA, dns.TypeTLSA)
	ask("udp", "example.org.", dns.TypeMX)
	ask("udp", zoneA, 65000)
	got := map[[2]string]int64{}
	for _, q := range srv.Queries() {
		got[[2]string{q.Type, q.Rcode}] = q.Count
	}
	want := map[[2]string]int64{
		{"A", "NOERROR"}:     3,
		{"TLSA", "NXDOMAIN"}: 1,
		{"MX", "REFUSED"}:    1,
		{"other", "NOERROR"}: 1,
	}
	if len(got) != len(want) {
		t.Errorf("counted %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s %s: %d, want %d (all: %v)", k[0], k[1], got[k], n, got)
		}
	}
}
