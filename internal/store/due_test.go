package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDueTests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		for i, id := range []string{"b", "a", "c", "fin"} {
			tt := Test{ID: id, Created: t0.Add(time.Duration(i/2) * time.Minute), Kind: TestToken, State: TestOpen}
			if id == "fin" {
				tt.State = TestFinal
			}
			if err := s.CreateTest(ctx, tt); err != nil {
				t.Fatal(err)
			}
		}
		ids := func(ts []DueTest) string {
			var b []string
			for _, x := range ts {
				b = append(b, fmt.Sprintf("%s@%s", x.ID, x.Due.Sub(t0)))
			}
			return strings.Join(b, " ")
		}
		check := func(name string, now time.Time, after DueCursor, limit int, want string) []DueTest {
			t.Helper()
			got, err := s.DueTests(ctx, now, after, limit)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ids(got) != want {
				t.Errorf("%s: %q, want %q", name, ids(got), want)
			}
			return got
		}
		// Due at creation, oldest due first, equal due times by id; final
		// tests never.
		check("before", t0.Add(-time.Second), DueCursor{}, 0, "")
		check("at t0", t0, DueCursor{}, 0, "a@0s b@0s")
		page := check("first page", t0.Add(time.Hour), DueCursor{}, 2, "a@0s b@0s")
		check("second page", t0.Add(time.Hour), page[1].After(), 2, "c@1m0s")
		check("after a", t0.Add(time.Hour), page[0].After(), 0, "b@0s c@1m0s")

		// Deferred tests go to their new due time; a final test stays final.
		if err := s.DeferTest(ctx, "A", t0.Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeferTest(ctx, "fin", t0); err != nil {
			t.Fatal(err)
		}
		check("deferred", t0.Add(5*time.Minute), DueCursor{}, 0, "b@0s c@1m0s")
		check("deferred, due", t0.Add(10*time.Minute), DueCursor{}, 0, "b@0s c@1m0s a@10m0s")
		if _, err := s.DueTests(ctx, t0, DueCursor{}, -1); err == nil {
			t.Error("negative limit accepted")
		}
		if err := s.UpdateTest(ctx, Test{ID: "b", Created: t0, Kind: TestToken, State: TestFinal}); err != nil {
			t.Fatal(err)
		}
		check("b final", t0.Add(10*time.Minute), DueCursor{}, 0, "c@1m0s a@10m0s")

		if s.Driver() == DriverPostgres {
			checkPostgresPlan(t, s, dueTestsSQL, []any{int64(1), int64(0), int64(0), "", int64(10)}, "tests_due", true)
			return
		}
		plan := queryPlan(t, s, dueTestsSQL, int64(1), int64(0), int64(0), "", int64(10))
		if !strings.Contains(plan, "USING INDEX tests_due") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("due tests are not read in order from the index tests_due:\n%s", plan)
		}
	})
}

func TestCreateFixedTestCaps(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		lim := FixedTestLimits{PerClient: 2, Open: 3}
		create := func(id, client string) error {
			return s.CreateFixedTest(ctx, Test{ID: id, Created: t0, Kind: TestFixed, Sender: id + "@example.org", State: TestOpen}, client, lim)
		}
		for _, tc := range []struct {
			id, client string
			err        error
		}{
			{"a1", "192.0.2.0/24", nil},
			{"a2", "192.0.2.0/24", nil},
			{"a3", "192.0.2.0/24", ErrFixedTestsPerClient},
			{"b1", "198.51.100.0/24", nil},
			{"c1", "203.0.113.0/24", ErrFixedTestsFull},
		} {
			if err := create(tc.id, tc.client); !errors.Is(err, tc.err) || tc.err == nil && err != nil {
				t.Errorf("%s from %s: %v, want %v", tc.id, tc.client, err, tc.err)
			}
		}
		for _, id := range []string{"a3", "c1"} {
			if _, err := s.Test(ctx, id); !errors.Is(err, ErrNotFound) {
				t.Errorf("%s stored past a cap: %v", id, err)
			}
		}
		// Token tests and final fixed tests do not count.
		if err := s.CreateTest(ctx, Test{ID: "tok", Created: t0, Kind: TestToken, State: TestOpen}); err != nil {
			t.Fatal(err)
		}
		if err := s.UpdateTest(ctx, Test{ID: "a1", Created: t0, Kind: TestFixed, State: TestFinal}); err != nil {
			t.Fatal(err)
		}
		if err := create("a4", "192.0.2.0/24"); err != nil {
			t.Errorf("after one became final: %v", err)
		}
		for _, q := range []struct {
			sql  string
			args []any
		}{
			{openFixedTestSQL, []any{"192.0.2.0/24", "a@example.org"}},
			{countFixedOfClientSQL, []any{"192.0.2.0/24"}},
			{countFixedOpenSQL, nil},
		} {
			if s.Driver() == DriverPostgres {
				checkPostgresPlan(t, s, q.sql, q.args, "tests_fixed_open", false)
				continue
			}
			if plan := queryPlan(t, s, q.sql, q.args...); !strings.Contains(plan, "INDEX tests_fixed_open") {
				t.Errorf("%s\ndoes not use tests_fixed_open:\n%s", q.sql, plan)
			}
		}
	})
}

// TestLatestAuthenticatedResult: the provider table's row comes only from
// tests that authenticated their sender, however many newer ones did not.
func TestLatestAuthenticatedResult(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		add := func(id string, at time.Time, auth bool) {
			t.Helper()
			tt := Test{ID: id, Created: t0, Kind: TestToken, Sender: "x@provider.example", State: TestFinal}
			if err := s.CreateTest(ctx, Test{ID: id, Created: t0, Kind: TestToken, Sender: tt.Sender, State: TestOpen}); err != nil {
				t.Fatal(err)
			}
			r := TestResult{TestID: id, Final: at, Verdict: []byte(`{}`), SenderDomain: "provider.example", MailState: MailWithheld,
				SenderAuthenticated: auth}
			if err := s.FinalizeTest(ctx, tt, r); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.LatestAuthenticatedResult(ctx, "provider.example"); !errors.Is(err, ErrNotFound) {
			t.Errorf("no result: %v", err)
		}
		add("forged0", t0, false)
		if r, err := s.LatestAuthenticatedResult(ctx, "provider.example"); !errors.Is(err, ErrNotFound) {
			t.Errorf("an unauthenticated test feeds the table: %+v %v", r, err)
		}
		add("real", t0.Add(time.Minute), true)
		for i := range 20 {
			add(fmt.Sprintf("forged%d", i+1), t0.Add(time.Hour+time.Duration(i)*time.Second), false)
		}
		r, err := s.LatestAuthenticatedResult(ctx, "Provider.Example")
		if err != nil || r.TestID != "real" || !r.SenderAuthenticated {
			t.Errorf("latest authenticated: %+v %v, want the real test", r, err)
		}
		if s.Driver() == DriverPostgres {
			checkPostgresPlan(t, s, `SELECT `+resultColumns+` FROM test_results `+latestAuthenticatedWhere, []any{"provider.example"}, "test_results_provider", true)
			return
		}
		plan := queryPlan(t, s, `SELECT `+resultColumns+` FROM test_results `+latestAuthenticatedWhere, "provider.example")
		if !strings.Contains(plan, "INDEX test_results_provider (sender_domain=? AND sender_authenticated=?)") || strings.Contains(plan, "TEMP B-TREE") {
			t.Errorf("the provider row is not read from the index test_results_provider:\n%s", plan)
		}
	})
}
