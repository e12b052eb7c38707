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
		// Past its time a record is not served, and the purge deletes it.
		want(now.Add(2*time.Minute), map[string][]string{name: {"a", "c"}})
		if err := s.ACMEChallengesLoaded(ctx, "gone", now.Add(-48*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := s.ACMEChallengesLoaded(ctx, "n1", now); err != nil {
			t.Fatal(err)
		}
		if n, err := s.PruneACMEChallenges(ctx, now.Add(2*time.Minute), now.Add(-24*time.Hour)); err != nil || n != 2 {
			t.Fatalf("pruned %d rows, %v; want other's record and node gone's load", n, err)
		}
		var rows, loads int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM acme_challenges`).Scan(&rows); err != nil || rows != 2 {
			t.Fatalf("%d rows left, %v; want n2's two values of %s", rows, err, name)
		}
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM acme_challenge_loads`).Scan(&loads); err != nil || loads != 1 {
			t.Fatalf("%d load rows left, %v; want n1's", loads, err)
		}
	})
}

// TestACMEChallengeLoads: a node's last load is kept (an older report does
// not move it back), and only loads since the cut-off are listed.
func TestACMEChallengeLoads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		for _, l := range []struct {
			node string
			at   time.Time
		}{{"n1", t0}, {"n1", t0.Add(2 * time.Second)}, {"n1", t0.Add(time.Second)}, {"n2", t0.Add(-time.Hour)}} {
			if err := s.ACMEChallengesLoaded(ctx, l.node, l.at); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.ACMEChallengeLoads(ctx, t0.Add(-time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !got["n1"].Equal(t0.Add(2*time.Second)) {
			t.Fatalf("loads %v, want n1 at its latest load only (n2 is older than the cut-off)", got)
		}
	})
}
