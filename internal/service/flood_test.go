package service

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/store/storetest"
)

// TestAcknowledgementDuringDNSFlood: while the DNS server is flooded with
// random names in zone A (each one a new query log row but for the row
// limits), a test mail through the SMTP personas still gets the
// acknowledgement's answer — the verdict's 250 or 451 4.7.1, not the 451
// 4.3.0 of a store that timed out — and its connection is recorded; on
// each database.
func TestAcknowledgementDuringDNSFlood(t *testing.T) {
	storetest.ForEachDriver(t, testAcknowledgementDuringDNSFlood)
}

func testAcknowledgementDuringDNSFlood(t *testing.T, driver string) {
	cfg := loopbackConfig(t)
	cfg.Web.Listen = nil
	useStore(t, &cfg, driver)
	run := startLoopback(t, cfg)

	now := time.Now()
	test := store.Test{ID: "floodtestaaaaaaa", Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen}
	if err := run.Store.CreateTest(t.Context(), test); err != nil {
		t.Fatal(err)
	}

	// The flood: bounded in count and in time, stopped when the mail is
	// answered.
	const floodWorkers, perWorker = 4, 20000
	stop := make(chan struct{})
	var sent atomic.Int64
	var wg sync.WaitGroup
	dnsAddr := run.DNSAddrs[0].String()
	zoneA := strings.TrimSuffix(cfg.Zones.A, ".") + "."
	for w := range floodWorkers {
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: time.Second}
			conn, err := c.Dial(dnsAddr)
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			deadline := time.Now().Add(60 * time.Second)
			for i := range perWorker {
				select {
				case <-stop:
					return
				default:
				}
				if time.Now().After(deadline) {
					return
				}
				m := new(dns.Msg)
				m.SetQuestion(fmt.Sprintf("f%d-%d.%s", w, i, zoneA), dns.TypeTXT)
				if _, _, err := c.ExchangeWithConn(m, conn); err == nil {
					sent.Add(1)
				}
			}
		})
	}
	defer func() { close(stop); wg.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for sent.Load() < 500 {
		if time.Now().After(deadline) {
			t.Fatalf("the flood did not get going: %d queries answered", sent.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	err := sendTestMail(run.SMTPAddrs[0].String(), "t-"+test.ID+"@"+strings.TrimSuffix(cfg.Zones.A, "."))
	var reply *smtp.SMTPError
	switch {
	case err == nil:
	case errors.As(err, &reply) && reply.Code == 451 && reply.EnhancedCode == smtp.EnhancedCode{4, 7, 1}:
	default:
		t.Fatalf("the mail was not answered by the acknowledgement: %v", err)
	}
	floodSize := sent.Load()

	conns, err := run.Store.Connections(t.Context(), store.ConnectionFilter{TestID: test.ID})
	if err != nil || len(conns) != 1 || conns[0].Reply == "" || strings.Contains(conns[0].Reply, "4.3.0") {
		t.Fatalf("recorded connections: %+v, %v", conns, err)
	}
	t.Logf("answered %q during a flood of %d queries", conns[0].Reply, floodSize)
}
