package hardening

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// floodNames sends rate queries a second for Sizes.FloodSeconds,
// each for a fresh name made by name, from the sources in conns in turn,
// and returns how many it sent.
func (s *Suite) floodNames(ctx context.Context, conns []*net.UDPConn, rate int, name func(r *rand.Rand) string) int {
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	m := new(dns.Msg)
	return pace(ctx, rate, time.Duration(s.Sizes.FloodSeconds)*time.Second, func(i int) {
		m.SetQuestion(name(r), dns.TypeA)
		m.Id = uint16(i)
		if wire, err := m.Pack(); err == nil {
			_, _ = conns[i%len(conns)].Write(wire)
		}
	})
}

// floodConns opens n UDP sockets from n networks 127.a.x.1, draining
// their answers so the kernel does not refuse the server's writes.
func (s *Suite) floodConns(a, n int) ([]*net.UDPConn, func(), error) {
	var conns []*net.UDPConn
	closeAll := func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for i := range n {
		c, err := udpFrom(source(a, i%250, 1+i/250), s.Env.DNS)
		if err != nil {
			closeAll()
			return nil, nil, err
		}
		conns = append(conns, c)
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	return conns, closeAll, nil
}

// floodRows floods the DNS server with names from networks client
// networks (source addresses 127.base.x.1) at rate queries per second for
// the suite's flood time, and returns how many queries it sent and how
// many rows and bytes the query log gained.
func (s *Suite) floodRows(ctx context.Context, base, networks, rate int, name func(r *rand.Rand) string) (sent int, rows, bytesAdded int64, err error) {
	before, bytesBefore, err := s.storeStats(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	conns, closeAll, err := s.floodConns(base, networks)
	if err != nil {
		return 0, 0, 0, err
	}
	sent = s.floodNames(ctx, conns, rate, name)
	closeAll()
	settle()
	after, bytesAfter, err := s.storeStats(ctx)
	if err != nil {
		return sent, 0, 0, err
	}
	return sent, after["dns_queries"] - before["dns_queries"], bytesAfter - bytesBefore, nil
}

// settle waits for the query log's writer to flush what it buffered.
func settle() { time.Sleep(2 * time.Second) }

// outOfZoneFlood: random names outside the zones, from many networks —
// answered REFUSED and never stored: the query log gains no row.
func (s *Suite) outOfZoneFlood(ctx context.Context) Check {
	sent, rows, bytesAdded, err := s.floodRows(ctx, 71, 64, s.Sizes.FloodRate, func(r *rand.Rand) string { return randomLabel(r) + ".flood-target.example." })
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	var bad []string
	if rows != 0 {
		bad = append(bad, fmt.Sprintf("%d query log rows added", rows))
	}
	return result(bad, map[string]any{"queries": sent, "seconds_flooded": s.Sizes.FloodSeconds, "rows_added": rows, "bytes_added": bytesAdded},
		fmt.Sprintf("%d out-of-zone queries in %d s: %d rows added", sent, s.Sizes.FloodSeconds, rows))
}

// inZoneFlood: random names inside zone A, first from one client address,
// then from many networks: the rows added stay within the query log's
// per-client and total rates (dns.query_log_rows_per_client_per_second,
// dns.query_log_rows_per_second).
func (s *Suite) inZoneFlood(ctx context.Context) Check {
	perClient, total := int64(s.Env.Config.DNS.QueryLogRowsPerClientPerSecond), int64(s.Env.Config.DNS.QueryLogRowsPerSecond)
	secs := int64(s.Sizes.FloodSeconds)
	var bad []string
	figures := map[string]any{"seconds_flooded": secs, "limit_per_client_per_second": perClient, "limit_per_second": total}
	inZone := func(r *rand.Rand) string { return randomLabel(r) + "." + s.Env.ZoneA }
	for _, phase := range []struct {
		name     string
		networks int
		rate     int
		limit    int64
	}{
		// One address: within the per-client rate. The lab counts clients
		// by address (smtp.client_prefix_v4 = 32) or by /24; one address is
		// one client either way. The writer folds and flushes every 100 ms,
		// so allow one extra second of rows.
		{"one_client", 1, s.Sizes.FloodRate, perClient * (secs + 1)},
		// Many networks, faster than the total rate: within it.
		{"many_networks", 64, 3 * s.Sizes.FloodRate, total * (secs + 1)},
	} {
		sent, rows, bytesAdded, err := s.floodRows(ctx, 72+phase.networks%2, phase.networks, phase.rate, inZone)
		if err != nil {
			return result([]string{err.Error()}, nil, "")
		}
		figures[phase.name+"_queries"] = sent
		figures[phase.name+"_rows_added"] = rows
		figures[phase.name+"_bytes_added"] = bytesAdded
		if rows > phase.limit {
			bad = append(bad, fmt.Sprintf("%s: %d rows for %d queries in %d s, limit %d", phase.name, rows, sent, secs, phase.limit))
		}
		if rows > 0 {
			figures[phase.name+"_bytes_per_row"] = bytesAdded / rows
		}
	}
	return result(bad, figures, fmt.Sprintf("in-zone random names for %d s: one client added %v rows (limit %d/s), 64 networks %v rows (limit %d/s)",
		secs, figures["one_client_rows_added"], perClient, figures["many_networks_rows_added"], total))
}

// retentionEmpties copies the store as the suite's floods left it (`mailsec
// store backup`) and purges the copy as of 100 days later (`mailsec store
// purge -as-of`): every table that grows with what peers send must be
// empty; only the schema's bookkeeping, the zones' key record, the test
// slots, the nodes and the operator's own bulk scans stay.
func (s *Suite) retentionEmpties(ctx context.Context) Check {
	dir, err := os.MkdirTemp("", "mailsec-hardening-")
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	defer os.RemoveAll(dir)
	copyDB := filepath.Join(dir, "copy.db")
	run := func(args ...string) ([]byte, error) {
		all := append(append([]string(nil), s.Env.Command[1:]...), args...)
		out, err := exec.CommandContext(ctx, s.Env.Command[0], all...).Output()
		if err != nil {
			return out, fmt.Errorf("mailsec %s: %w", strings.Join(args, " "), err)
		}
		return out, nil
	}
	before, _, err := s.storeStats(ctx)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	if _, err := run("store", "backup", copyDB); err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	purged, err := run("store", "purge", "-json", "-as-of", "+2400h", "-db", copyDB)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	out, err := run("store", "stats", "-json", "-db", copyDB)
	if err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	var after struct {
		Tables map[string]int64 `json:"tables"`
	}
	if err := json.Unmarshal(out, &after); err != nil {
		return result([]string{err.Error()}, nil, "")
	}
	// What stays is the operator's, bounded by configuration, not by what
	// peers send: the schema's bookkeeping, the zones' keys, the test
	// slots (at most zones.slots rows), the nodes serving the store (and
	// when each last loaded the ACME challenge records: one row per node)
	// and the operator's own bulk scans, and the history of the listed
	// providers' verdicts (at most one row per provider in web.providers
	// and day, naming no tester: docs/providers.md).
	kept := map[string]bool{"schema_migrations": true, "zone_keys": true, "test_slots": true, "cluster_nodes": true,
		"acme_challenge_loads": true, "scans": true, "scan_items": true, "scan_slots": true, "scan_rate": true, "provider_verdicts": true}
	var bad []string
	var rows int64
	for table, n := range after.Tables {
		if !kept[table] && n != 0 {
			bad = append(bad, fmt.Sprintf("%s: %d rows left", table, n))
		}
	}
	for table, n := range before {
		if !kept[table] {
			rows += n
		}
	}
	var counts map[string]any
	_ = json.Unmarshal(purged, &counts)
	return result(bad, map[string]any{"rows_before": rows, "purged": counts},
		fmt.Sprintf("a copy of the store (%d rows in the tables peers fill) purged as of 100 days later: %d tables checked", rows, len(after.Tables)))
}
