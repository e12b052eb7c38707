package evidence

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
	"github.com/mailsec/mailsec/internal/testslot"
)

// TestGatherSlotEvidence: a test that holds a test slot gathers the DNS
// look-ups of its slot's names (not another slot's, not the shared
// names', not before its creation nor after it became final) and the
// fetches of its slot's policy host from any address; a test without a
// slot gathers no look-ups.
func TestGatherSlotEvidence(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		pool := testslot.Pool{ZoneA: "a.example", ZoneB: "b.example", Count: 3}
		g := Gatherer{Store: st, Rules: Rules{Quiet: time.Minute, Slots: pool}}
		tt := store.Test{ID: "slot2", Created: t0, Updated: t0, Kind: store.TestToken, State: store.TestOpen, Slot: 2}
		if err := st.CreateTest(t.Context(), tt); err != nil {
			t.Fatal(err)
		}
		shared := addTest(t, st, "shared", store.TestToken, t0)
		addConn(t, st, "slot2", "192.0.2.10", t0.Add(time.Minute))
		const mx, tlsa = 15, 52
		q := func(at time.Duration, name string, qtype uint16, do bool) store.DNSQuery {
			return store.DNSQuery{Time: t0.Add(at), Client: netip.MustParseAddrPort("198.51.100.53:5353"), Transport: "udp", Name: name, Type: qtype, DO: do}
		}
		if err := st.AddDNSQueries(t.Context(), []store.DNSQuery{
			q(-time.Second, "s002.a.example.", mx, true), // before the test held the slot
			q(time.Second, "s002.a.example.", mx, true),
			q(2*time.Second, "_25._tcp.mx4.s002.a.example.", tlsa, true),
			q(3*time.Second, "_25._tcp.mx7.s002.b.example.", tlsa, true),
			q(4*time.Second, "s001.a.example.", mx, true), // another slot
			q(5*time.Second, "a.example.", mx, true),      // the shared names
			q(2*time.Hour, "s002.a.example.", mx, true),   // after the test became final
		}); err != nil {
			t.Fatal(err)
		}
		// The slot's policy fetched from a network no connection came from;
		// another slot's from there does not count.
		for _, f := range []store.PolicyFetch{
			// The slot's next test's sender, after this one became final.
			{Time: t0.Add(2 * time.Hour), Client: netip.MustParseAddrPort("203.0.113.8:443"), SNI: "mta-sts.s002.a.example", Status: 200, Path: "/.well-known/mta-sts.txt"},
			// The slot's previous test's sender: not this test's.
			{Time: t0.Add(-time.Hour), Client: netip.MustParseAddrPort("203.0.113.7:443"), SNI: "mta-sts.s002.a.example", Status: 200, Path: "/.well-known/mta-sts.txt"},
			{Time: t0.Add(10 * time.Second), Client: netip.MustParseAddrPort("203.0.113.7:443"), SNI: "mta-sts.s002.a.example", Status: 200, Path: "/.well-known/mta-sts.txt"},
			{Time: t0.Add(11 * time.Second), Client: netip.MustParseAddrPort("203.0.113.7:443"), SNI: "mta-sts.s001.a.example", Status: 200, Path: "/.well-known/mta-sts.txt"},
		} {
			if err := st.AddPolicyFetch(t.Context(), f); err != nil {
				t.Fatal(err)
			}
		}

		final := tt
		final.State, final.Updated = store.TestFinal, t0.Add(time.Hour)
		if err := st.UpdateTest(t.Context(), final); err != nil {
			t.Fatal(err)
		}
		obs, err := g.Gather(t.Context(), final, t0.Add(3*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, l := range obs.DNSLookups {
			got = append(got, l.Time.Sub(t0).String()+" "+l.Name)
		}
		want := []string{"1s s002.a.example.", "2s _25._tcp.mx4.s002.a.example.", "3s _25._tcp.mx7.s002.b.example."}
		if len(got) != len(want) {
			t.Fatalf("look-ups %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("look-ups %v, want %v", got, want)
			}
		}
		if !slices.Equal(obs.BTLSANames, []string{"_25._tcp.mx7.s002.b.example.", "_tcp.mx7.s002.b.example."}) {
			t.Errorf("B's TLSA names %v", obs.BTLSANames)
		}
		if len(obs.PolicyFetches) != 1 || obs.PolicyFetches[0].SNI != "mta-sts.s002.a.example" {
			t.Fatalf("fetches %+v, want the slot's own from the other network", obs.PolicyFetches)
		}

		obs, err = g.Gather(t.Context(), shared, t0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if obs.DNSLookups != nil || len(obs.PolicyFetches) != 0 {
			t.Fatalf("a test without a slot: look-ups %v, fetches %v", obs.DNSLookups, obs.PolicyFetches)
		}
	})
}

// TestGatherBrokenHost: with a broken MX host, the look-ups of its name in
// the test's slot are the test's (not another slot's), and the verdict is
// told its names and addresses.
func TestGatherBrokenHost(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		pool := testslot.Pool{ZoneA: "a.example", ZoneB: "b.example", Count: 3}
		addr := netip.MustParseAddr("192.0.2.29")
		g := Gatherer{Store: st, Rules: Rules{Quiet: time.Minute, Slots: pool, BrokenHosts: []string{"broken"}, BrokenAddrs: []netip.Addr{addr}}}
		tt := store.Test{ID: "slot2", Created: t0, Updated: t0, Kind: store.TestToken, State: store.TestOpen, Slot: 2}
		if err := st.CreateTest(t.Context(), tt); err != nil {
			t.Fatal(err)
		}
		q := func(at time.Duration, name string) store.DNSQuery {
			return store.DNSQuery{Time: t0.Add(at), Client: netip.MustParseAddrPort("198.51.100.53:5353"), Transport: "udp", Name: name, Type: 1, DO: true, Rcode: 2}
		}
		if err := st.AddDNSQueries(t.Context(), []store.DNSQuery{
			q(time.Second, "broken.s002.a.example."),
			q(2*time.Second, "broken.s001.a.example."), // another slot
		}); err != nil {
			t.Fatal(err)
		}
		obs, err := g.Gather(t.Context(), tt, t0.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(obs.DNSLookups) != 1 || obs.DNSLookups[0].Name != "broken.s002.a.example." {
			t.Fatalf("look-ups %+v, want the slot's broken host's", obs.DNSLookups)
		}
		if !slices.Equal(obs.BrokenHostNames, []string{"broken.s002.a.example."}) || !slices.Equal(obs.BrokenHostAddrs, []netip.Addr{addr}) {
			t.Fatalf("broken host names %v, addresses %v", obs.BrokenHostNames, obs.BrokenHostAddrs)
		}
	})
}

// TestGatherIPv6Host: with the IPv6-only host deployed, a test in slot n
// is tied the connections to the host's address of slot n while it holds
// the slot (they name no recipient), not another slot's nor those before
// its creation, and gathers the look-ups of the slot's IPv6-only host; the
// verdict is told every slot's address and the slot's name. A test
// without a slot gets none; Clients leaves the tied connections' client
// out (finalise must not tie other slots' connections by it).
func TestGatherIPv6Host(t *testing.T) {
	storetest.ForEachDriver(t, func(t *testing.T, driver string) {
		st := openStore(t, driver)
		pool := testslot.Pool{ZoneA: "a.example", ZoneB: "b.example", Count: 3}
		base := netip.MustParseAddr("fd00::6:0")
		g := Gatherer{Store: st, Rules: Rules{Quiet: time.Minute, Slots: pool, IPv6Host: base}}
		tt := store.Test{ID: "slot2", Created: t0, Updated: t0, Kind: store.TestToken, State: store.TestOpen, Slot: 2}
		if err := st.CreateTest(t.Context(), tt); err != nil {
			t.Fatal(err)
		}
		shared := addTest(t, st, "shared", store.TestToken, t0)
		mine := addConn(t, st, "slot2", "192.0.2.10", t0.Add(time.Minute))
		v6 := func(at time.Duration, local string) store.SMTPConnection {
			c := store.SMTPConnection{Started: t0.Add(at), Ended: t0.Add(at), Client: netip.MustParseAddrPort("[2001:db8::10]:4000"),
				Local: netip.MustParseAddrPort(local), State: store.StateNone, Reply: "421 4.4.3 IPv6"}
			if err := st.InsertConnection(t.Context(), &c); err != nil {
				t.Fatal(err)
			}
			return c
		}
		v6(-time.Second, "[fd00::6:2]:25") // before the test held the slot
		in := v6(time.Second, "[fd00::6:2]:25")
		v6(2*time.Second, "[fd00::6:1]:25") // another slot's
		v6(3*time.Second, "[fd00::6:0]:25") // the shared host's
		if err := st.AddDNSQueries(t.Context(), []store.DNSQuery{
			{Time: t0.Add(time.Second), Client: netip.MustParseAddrPort("198.51.100.53:5353"), Transport: "udp", Name: "mx-v6.s002.a.example.", Type: 28},
			{Time: t0.Add(time.Second), Client: netip.MustParseAddrPort("198.51.100.53:5353"), Transport: "udp", Name: "mx-v6.s001.a.example.", Type: 28},
		}); err != nil {
			t.Fatal(err)
		}
		obs, err := g.Gather(t.Context(), tt, t0.Add(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, c := range obs.Connections {
			ids = append(ids, c.ID)
		}
		if slices.Sort(ids); !slices.Equal(ids, []int64{min(in.ID, mine.ID), max(in.ID, mine.ID)}) {
			t.Errorf("connections %v, want the test's %d and the slot's IPv6-only host's %d", ids, mine.ID, in.ID)
		}
		if got := Clients(obs.Connections); !slices.Equal(got, []netip.Addr{netip.MustParseAddr("192.0.2.10")}) {
			t.Errorf("clients %v, want the IPv4 one only", got)
		}
		if len(obs.DNSLookups) != 1 || obs.DNSLookups[0].Name != "mx-v6.s002.a.example." {
			t.Errorf("look-ups %+v, want the slot's IPv6-only host's", obs.DNSLookups)
		}
		if !slices.Equal(obs.IPv6HostNames, []string{"mx-v6.s002.a.example."}) || len(obs.IPv6HostAddrs) != 4 || obs.IPv6HostAddrs[2] != netip.MustParseAddr("fd00::6:2") {
			t.Errorf("IPv6-only host names %v, addresses %v", obs.IPv6HostNames, obs.IPv6HostAddrs)
		}
		obs, err = g.Gather(t.Context(), shared, t0.Add(2*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(obs.Connections) != 0 || obs.IPv6HostNames != nil {
			t.Errorf("a test without a slot: connections %+v, names %v", obs.Connections, obs.IPv6HostNames)
		}
	})
}
