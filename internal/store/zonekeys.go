package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// RecordZoneKey notes that zone (canonical, with the root dot) is signed
// with the key of keyTag, first seen at; a key already recorded keeps its
// first time.
func (s *Store) RecordZoneKey(ctx context.Context, zone string, keyTag uint16, at time.Time) error {
	ns, err := timeToNanos(at)
	if err != nil {
		return fmt.Errorf("store: record zone key: %w", err)
	}
	_, err = execCount(ctx, s.db, "record zone key of "+zone, s.q(`INSERT INTO zone_keys (zone, key_tag, first_ns)
    VALUES (?, ?, ?) ON CONFLICT DO NOTHING`), strings.ToLower(zone), int64(keyTag), ns)
	return err
}

// HoldsHistory tells whether the store has seen the service run: a zone
// key recorded or a test stored. A first start on an empty store may make
// the zones' keys; a later one must find them (internal/service).
func (s *Store) HoldsHistory(ctx context.Context) (bool, error) {
	return queryOne(ctx, s.db, "history", scanValue[bool],
		s.q(`SELECT EXISTS (SELECT 1 FROM zone_keys) OR EXISTS (SELECT 1 FROM tests)`))
}
