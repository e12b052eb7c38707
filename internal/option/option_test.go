package option

import (
	"log/slog"
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	for _, tc := range []struct {
		in, def, want time.Duration
	}{
		{0, time.Second, time.Second},
		{-1, time.Second, time.Second},
		{time.Minute, time.Second, time.Minute},
	} {
		v := tc.in
		Positive(&v, tc.def)
		if v != tc.want {
			t.Errorf("Positive(%v, %v) = %v, want %v", tc.in, tc.def, v, tc.want)
		}
	}
	n := 7
	Positive(&n, 12)
	if n != 7 {
		t.Errorf("Positive kept %d, want 7", n)
	}
}

func TestLoggerAndClock(t *testing.T) {
	if Logger(nil) == nil {
		t.Error("Logger(nil) is nil")
	}
	l := slog.Default()
	if Logger(l) != l {
		t.Error("Logger replaced a given logger")
	}
	fixed := time.Unix(42, 0)
	if got := Clock(func() time.Time { return fixed })(); !got.Equal(fixed) {
		t.Errorf("Clock replaced a given clock: %v", got)
	}
	if Clock(nil)().IsZero() {
		t.Error("Clock(nil) is not time.Now")
	}
}
