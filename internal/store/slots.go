package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SlotRules say how test slots are handed out (zones.slots and
// zones.slot_rest; docs/dns.md "Test slots").
type SlotRules struct {
	// Count is the size of the pool: slots 1..Count. 0: no slots.
	Count int
	// Rest is how long a slot stays unused after its test became final
	// (or was deleted).
	Rest time.Duration
}

// CreateSlotTest creates t (as CreateTest) holding a free slot of the
// pool, if there is one, and returns it as stored: Slot is the slot, 0
// when every slot is held or resting (the test then uses the shared
// names). A slot is free when it was never used, or its last test has been
// final, or deleted, for at least rules.Rest. Of the free slots the one
// handed out longest ago is taken, so slots rest as long as the pool
// allows. The choice and the insert are one transaction, serialised
// (lockTestSlots on PostgreSQL; SQLite's transactions are IMMEDIATE): two
// creations cannot take one slot.
func (s *Store) CreateSlotTest(ctx context.Context, t Test, rules SlotRules) (Test, error) {
	if rules.Count <= 0 {
		t.Slot = 0
		return t, s.CreateTest(ctx, t)
	}
	created, err := timeToNanos(t.Created)
	if err != nil {
		return Test{}, fmt.Errorf("store: create test %s: %w", t.ID, err)
	}
	restedBefore := created - int64(rules.Rest)
	what := "create test " + t.ID + " in a slot"
	err = s.inTx(ctx, what, func(tx *sql.Tx) error {
		// Two creations must not take one slot (PostgreSQL: READ
		// COMMITTED; SQLite's IMMEDIATE transaction already holds the
		// write lock).
		if err := s.serialise(ctx, tx, lockTestSlots); err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		// The pool's rows, made on first use (and when the pool grows).
		if _, err := tx.ExecContext(ctx, s.q(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO test_slots (slot) SELECT i FROM n WHERE true ON CONFLICT (slot) DO NOTHING`), rules.Count); err != nil {
			return fmt.Errorf("store: %s: %w", what, err)
		}
		slot, err := queryOne(ctx, tx, what, scanValue[int], s.q(`SELECT s.slot FROM test_slots s LEFT JOIN tests t ON t.id = s.test_id
WHERE s.slot <= ? AND (s.test_id = ''
    OR (t.id IS NULL AND s.released_ns <= ?)
    OR (t.state = ? AND t.updated_ns <= ?))
ORDER BY s.assigned_ns, s.slot LIMIT 1`), rules.Count, restedBefore, TestFinal, restedBefore)
		switch {
		case errors.Is(err, ErrNotFound):
			t.Slot = 0 // every slot held or resting: the shared names
		case err != nil:
			return err
		default:
			t.Slot = slot
			if err := execOne(ctx, tx, what, s.q(`UPDATE test_slots SET test_id = ?, assigned_ns = ?, released_ns = 0 WHERE slot = ?`),
				t.ID, created, slot); err != nil {
				return err
			}
		}
		return s.createTest(ctx, tx, t, "")
	})
	if err != nil {
		return Test{}, err
	}
	return t, nil
}

// SlotHolder returns the test that holds slot n now (not final), or
// ErrNotFound.
func (s *Store) SlotHolder(ctx context.Context, n int) (Test, error) {
	return queryOne(ctx, s.db, fmt.Sprintf("holder of slot %d", n), scanTest,
		s.q(`SELECT `+testColumns+` FROM tests WHERE slot = ? AND state <> ? ORDER BY created_ns DESC LIMIT 1`), n, TestFinal)
}
