package store

import (
	"testing"
	"time"
)

// TestLangRoundTrip: a test's result-mail language (migration 0028) is
// stored with it and read back by every reader of tests; a test created
// without one reads "en", as tests from before the column do.
func TestLangRoundTrip(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Store) {
		ctx := t.Context()
		t0 := testEpoch()
		for id, lang := range map[string]string{"lng1": "de", "lng2": ""} {
			if err := s.CreateTest(ctx, Test{ID: id, Created: t0, Updated: t0, Kind: TestToken, State: TestOpen, Lang: lang}); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]string{"lng1": "de", "lng2": "en"}
		for id, w := range want {
			got, err := s.Test(ctx, id)
			if err != nil || got.Lang != w {
				t.Errorf("Test(%s).Lang = %q (%v), want %q", id, got.Lang, err, w)
			}
		}
		due, err := s.DueTests(ctx, time.Now().Add(time.Hour), DueCursor{}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range due {
			if d.Lang != want[d.ID] {
				t.Errorf("DueTests: %s lang %q, want %q", d.ID, d.Lang, want[d.ID])
			}
		}
		if len(due) != 2 {
			t.Errorf("DueTests: %d tests, want 2", len(due))
		}
	})
}
