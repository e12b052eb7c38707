package store

import (
	"maps"
	"slices"
	"testing"
	"time"
)

// TestACMEChallenges: each node replaces only its own values of a name;
// the records read are every node's, each value once; a node's empty set
// removes its values; a record past its time is neither read nor kept.
func TestACMEChallenges(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		now := testEpoch()
		const name, other = "_acme-challenge.mx5.a.example.", "_acme-challenge.mx6.a.example."
		set := func(node, name string, until time.Time, values ...string) {
			t.Helper()
			if err := s.SetACMEChallenge(ctx, node, name, values, until); err != nil {
				t.Fatal(err)
			}
		}
		want := func(at time.Time, w map[string][]string) {
			t.Helper()
			got, err := s.ACMEChallenges(ctx, at)
			if err != nil {
				t.Fatal(err)
			}
			if !maps.EqualFunc(got, w, slices.Equal) {
				t.Fatalf("challenges at %s: %v, want %v", at, got, w)
			}
		}
		set("n1", name, now.Add(time.Hour), "old")
		set("n1", name, now.Add(time.Hour), "b", "a", "b") // replaces "old"
		set("n2", name, now.Add(time.Hour), "a", "c")
		set("n2", other, now.Add(time.Minute), "x")
		want(now, map[string][]string{name: {"a", "b", "c"}, other: {"x"}})
		set("n1", name, time.Time{}) // n1 clears its values
		want(now, map[string][]string{name: {"a", "c"}, other: {"x"}})
		// Past its time a record is not served, and is deleted.
		want(now.Add(2*time.Minute), map[string][]string{name: {"a", "c"}})
		var rows int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM acme_challenges`).Scan(&rows); err != nil || rows != 2 {
			t.Fatalf("%d rows left, %v; want n2's two values of %s", rows, err, name)
		}
	})
}
