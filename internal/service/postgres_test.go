package service

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/pgtest"
	"github.com/mailsec/mailsec/internal/store"
)

// TestStartOnPostgres: the service runs on a PostgreSQL store
// (store.driver = "postgres"): it migrates the empty database, records
// its zone keys, accepts a test mail (zone B, after the downgrade window)
// and acknowledges it: the 250 after the acknowledgement committed
// (Store.AckConnection, a durable transaction), the connection in the
// store in state Acked with its reply.
func TestStartOnPostgres(t *testing.T) {
	cfg := loopbackConfig(t)
	cfg.Web.Listen = nil
	useStore(t, &cfg, store.DriverPostgres)
	// Zone B is acknowledged once the client's downgrade window is over:
	// a window of a millisecond is over by DATA.
	cfg.Timing.DowngradeWindow.Duration = time.Millisecond
	run := startLoopback(t, cfg)
	if run.Store.Driver() != store.DriverPostgres {
		t.Fatalf("the service runs on %s", run.Store.Driver())
	}
	if held, err := run.Store.HoldsHistory(t.Context()); err != nil || !held {
		t.Fatalf("zone keys recorded: %v, %v", held, err)
	}

	now := time.Now()
	test := store.Test{ID: "pgtestaaaaaaaaaa", Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen}
	if err := run.Store.CreateTest(t.Context(), test); err != nil {
		t.Fatal(err)
	}
	// A sender retries a 451 ("downgrade test in progress") until the 250;
	// bounded in count.
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = sendTestMail(run.SMTPAddrs[0].String(), "t-"+test.ID+"@"+strings.TrimSuffix(cfg.Zones.B, ".")); err == nil {
			break
		}
		var reply *smtp.SMTPError
		if !errors.As(err, &reply) || reply.Code != 451 {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the test mail was not accepted: %v", err)
	}

	// The acknowledgement stored the test's sender with the connection
	// (one transaction, AckConnection; a mail for B does not end the
	// test's collecting, so the test stays open).
	got, err := run.Store.Test(t.Context(), test.ID)
	if err != nil || got.Sender != "someone@sender.example.org" {
		t.Fatalf("after the 250 the test is %+v, %v; want its sender stored", got, err)
	}
	conns, err := run.Store.Connections(t.Context(), store.ConnectionFilter{TestID: test.ID})
	if err != nil || len(conns) == 0 || !strings.HasPrefix(conns[len(conns)-1].Reply, "250") || conns[len(conns)-1].State != store.StateAcked {
		t.Fatalf("recorded connections: %+v, %v", conns, err)
	}
}

// useStore points cfg at a fresh database of driver (SQLite: the default
// file in cfg's data directory).
func useStore(t *testing.T, cfg *config.Config, driver string) {
	t.Helper()
	if driver == store.DriverPostgres {
		cfg.Store.Driver, cfg.Store.DSN = driver, pgtest.Database(t)
	}
}
