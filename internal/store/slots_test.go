package store

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestCreateSlotTest: slots are handed out one test at a time, the least
// recently used first; a final or deleted test's slot rests for
// rules.Rest; an exhausted pool gives slot 0 (the shared names); no
// slots at all is CreateTest.
func TestCreateSlotTest(t *testing.T) {
	forEachDriver(t, testCreateSlotTest)
}

func testCreateSlotTest(t *testing.T, driver string) {
	s := openTestStoreOf(t, driver)
	ctx := t.Context()
	t0 := testEpoch()
	rules := SlotRules{Count: 2, Rest: time.Hour}
	create := func(id string, at time.Time) Test {
		t.Helper()
		got, err := s.CreateSlotTest(ctx, Test{ID: id, Created: at, Updated: at, Kind: TestToken, State: TestOpen}, rules)
		if err != nil {
			t.Fatalf("CreateSlotTest(%s): %v", id, err)
		}
		stored, err := s.Test(ctx, id)
		if err != nil || stored.Slot != got.Slot {
			t.Fatalf("stored %s: slot %d, %v; returned %d", id, stored.Slot, err, got.Slot)
		}
		return got
	}
	if a := create("ta", t0); a.Slot != 1 {
		t.Fatalf("first test: slot %d, want 1", a.Slot)
	}
	if b := create("tb", t0.Add(time.Second)); b.Slot != 2 {
		t.Fatalf("second test: slot %d, want 2", b.Slot)
	}
	if c := create("tc", t0.Add(2*time.Second)); c.Slot != 0 {
		t.Fatalf("pool exhausted: slot %d, want 0", c.Slot)
	}
	if h, err := s.SlotHolder(ctx, 2); err != nil || h.ID != "tb" {
		t.Fatalf("SlotHolder(2) = %s, %v", h.ID, err)
	}

	// ta becomes final at t0+10s: its slot rests until t0+1h10s.
	final := Test{ID: "ta", Created: t0, Kind: TestToken, State: TestFinal, Updated: t0.Add(10 * time.Second)}
	if err := s.UpdateTest(ctx, final); err != nil {
		t.Fatal(err)
	}
	if d := create("td", t0.Add(time.Hour)); d.Slot != 0 {
		t.Fatalf("slot still resting: got %d, want 0", d.Slot)
	}
	if e := create("te", t0.Add(time.Hour+10*time.Second)); e.Slot != 1 {
		t.Fatalf("rested slot: got %d, want 1", e.Slot)
	}
	// tb is deleted: its slot rests from the deletion (now, wall clock).
	if err := s.DeleteTest(ctx, "tb"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if f := create("tf", now.Add(30*time.Minute)); f.Slot != 0 {
		t.Fatalf("deleted test's slot handed out before its rest: %d", f.Slot)
	}
	if g := create("tg", now.Add(2*time.Hour)); g.Slot != 2 {
		t.Fatalf("deleted test's slot after its rest: got %d, want 2", g.Slot)
	}

	// Without slots, CreateSlotTest is CreateTest.
	if n := func() Test {
		got, err := s.CreateSlotTest(ctx, Test{ID: "tn", Created: t0, Kind: TestToken, State: TestOpen, Slot: 5}, SlotRules{})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}(); n.Slot != 0 {
		t.Fatalf("no pool: slot %d", n.Slot)
	}
}

// TestCreateSlotTestConcurrent: tests created at once never share a slot.
func TestCreateSlotTestConcurrent(t *testing.T) {
	forEachDriver(t, testCreateSlotTestConcurrent)
}

func testCreateSlotTestConcurrent(t *testing.T, driver string) {
	s := openTestStoreOf(t, driver)
	ctx := t.Context()
	t0 := testEpoch()
	const tests, slots = 20, 8
	var wg sync.WaitGroup
	got := make([]int, tests)
	errs := make([]error, tests)
	for i := range tests {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tt, err := s.CreateSlotTest(ctx, Test{ID: fmt.Sprintf("c%02d", i), Created: t0, Kind: TestToken, State: TestOpen},
				SlotRules{Count: slots, Rest: time.Hour})
			got[i], errs[i] = tt.Slot, err
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for i, n := range got {
		if errs[i] != nil {
			t.Fatalf("test %d: %v", i, errs[i])
		}
		if n != 0 && seen[n] {
			t.Fatalf("slot %d handed out twice: %v", n, got)
		}
		seen[n] = true
	}
	if len(seen) != slots+1 { // every slot, and 0 for the rest
		t.Fatalf("slots handed out %v, want all %d and 0", got, slots)
	}
}
