package service

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/dnssec"
	"github.com/mailsec/mailsec/internal/store"
)

// TestMissingZoneKeyRefusesStart: a first start makes the zone keys and
// records them; a later start that finds a key file gone refuses, naming
// the path, instead of making a new key (the published DS would no longer
// match: both zones bogus). A store that holds tests but no recorded key
// (older versions) refuses too. `mailsec dns ds` (ZoneKeysFor) agrees.
func TestMissingZoneKeyRefusesStart(t *testing.T) {
	start := func(t *testing.T, cfg *config.Config) error {
		t.Helper()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		run, err := Start(ctx, cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			cancel()
			return err
		}
		// Stop only once the DNS server answers over TCP: a stop before
		// its servers have started is not what this test is about.
		q := new(dns.Msg).SetQuestion(cfg.Zones.A, dns.TypeSOA)
		c := &dns.Client{Net: "tcp", Timeout: time.Second}
		for i := 0; i < 100; i++ {
			if _, _, err := c.Exchange(q, run.DNSAddrs[0].String()); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		cancel()
		_ = run.Wait()
		return nil
	}
	t.Run("recorded key", func(t *testing.T) {
		cfg := loopbackConfig(t)
		if err := start(t, &cfg); err != nil {
			t.Fatal(err)
		}
		keyA := filepath.Join(cfg.KeyDir(), strings.TrimSuffix(cfg.Zones.A, ".")+".key")
		if err := os.Remove(keyA); err != nil {
			t.Fatal(err)
		}
		err := start(t, &cfg)
		if !errors.Is(err, dnssec.ErrKeyMissing) || !strings.Contains(err.Error(), keyA) {
			t.Fatalf("start without %s: %v", keyA, err)
		}
		if _, serr := os.Stat(keyA); !errors.Is(serr, os.ErrNotExist) {
			t.Fatalf("a new key was made at %s", keyA)
		}
		if keys, err := ZoneKeysFor(t.Context(), &cfg); err != nil || keys != RequireZoneKeys {
			t.Fatalf("ZoneKeysFor: %v, %v", keys, err)
		}
	})
	t.Run("tests but no key record", func(t *testing.T) {
		cfg := loopbackConfig(t)
		st, err := store.Open(t.Context(), cfg.StorePath())
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		if err := st.CreateTest(t.Context(), store.Test{ID: "t1", Created: now, Updated: now, Kind: store.TestToken, State: store.TestOpen}); err != nil {
			t.Fatal(err)
		}
		st.Close()
		if err := start(t, &cfg); !errors.Is(err, dnssec.ErrKeyMissing) {
			t.Fatalf("start with history and no keys: %v", err)
		}
	})
	t.Run("first start", func(t *testing.T) {
		cfg := loopbackConfig(t)
		if keys, err := ZoneKeysFor(t.Context(), &cfg); err != nil || keys != CreateZoneKeys {
			t.Fatalf("ZoneKeysFor before the first start: %v, %v", keys, err)
		}
		if err := start(t, &cfg); err != nil {
			t.Fatal(err)
		}
	})
}
