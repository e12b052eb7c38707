package store

import (
	"context"
	"testing"
	"time"
)

func TestHoldsHistory(t *testing.T) {
	forEachDriver(t, func(t *testing.T, driver string) {
		ctx := context.Background()
		for _, tc := range []struct {
			name string
			fill func(t *testing.T, s *Store)
			want bool
		}{
			{"empty", func(*testing.T, *Store) {}, false},
			{"zone key", func(t *testing.T, s *Store) {
				t.Helper()
				for range 2 { // recorded twice: one row
					if err := s.RecordZoneKey(ctx, "a.mailtest.example.", 12345, time.Now()); err != nil {
						t.Fatal(err)
					}
				}
			}, true},
			{"test", func(t *testing.T, s *Store) {
				t.Helper()
				if err := s.CreateTest(ctx, Test{ID: "t1", Created: time.Now(), Kind: TestToken, State: TestOpen}); err != nil {
					t.Fatal(err)
				}
			}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := openTestStoreOf(t, driver)
				tc.fill(t, s)
				got, err := s.HoldsHistory(ctx)
				if err != nil || got != tc.want {
					t.Errorf("HoldsHistory = %v, %v; want %v", got, err, tc.want)
				}
			})
		}
	})
}
