// Package option fills the unset fields of a package's Options with their
// defaults, one way for every package: a zero or negative number or
// duration is unset (none of them has a meaning for such a value), so is
// a nil logger or clock.
package option

import (
	"cmp"
	"log/slog"
	"time"
)

// Positive sets *v to def if *v is zero or negative.
func Positive[T cmp.Ordered](v *T, def T) {
	var zero T
	if *v <= zero {
		*v = def
	}
}

// Logger returns l, or a logger that discards everything if l is nil.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// Clock returns now, or time.Now if now is nil.
func Clock(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
