package periodic

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// recorder keeps the messages and errors of the records logged.
type recorder struct {
	mu   sync.Mutex
	msgs []string
	errs []string
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		if a.Key == "err" {
			r.errs = append(r.errs, a.Value.String())
		}
		return true
	})
	return nil
}

func TestRun(t *testing.T) {
	errStore := errors.New("store unavailable")
	tests := []struct {
		name string
		// results are what the runs return, in order; the run after the
		// last one cancels the context and returns errAfterEnd.
		results     []error
		errAfterEnd error
		wantLogged  int
	}{
		{name: "no errors", results: []error{nil, nil, nil}},
		{name: "errors are logged and the loop goes on", results: []error{errStore, nil, errStore}, wantLogged: 2},
		{name: "an error after the end is not logged", results: []error{nil}, errAfterEnd: context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			rec := &recorder{}
			runs := 0
			done := make(chan struct{})
			go func() {
				defer close(done)
				Run(ctx, time.Millisecond, slog.New(rec), "test: job", func(ctx context.Context) error {
					defer func() { runs++ }()
					if runs < len(tc.results) {
						return tc.results[runs]
					}
					cancel()
					return tc.errAfterEnd
				})
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return after the context ended")
			}
			if want := len(tc.results) + 1; runs != want {
				t.Errorf("%d runs, want %d", runs, want)
			}
			rec.mu.Lock()
			defer rec.mu.Unlock()
			if len(rec.msgs) != tc.wantLogged {
				t.Fatalf("logged %q, want %d records", rec.msgs, tc.wantLogged)
			}
			for i, m := range rec.msgs {
				if m != "test: job" || rec.errs[i] != errStore.Error() {
					t.Errorf("record %d: %q err=%q, want %q err=%q", i, m, rec.errs[i], "test: job", errStore)
				}
			}
		})
	}
}

func TestRunEndsWhileWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	runs := make(chan struct{}, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, time.Hour, slog.New(slog.DiscardHandler), "test: job", func(context.Context) error {
			runs <- struct{}{}
			return nil
		})
	}()
	<-runs // the first run, at once, long before the first tick
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when the context ended between runs")
	}
	if n := len(runs); n != 0 {
		t.Errorf("%d more runs after the context ended", n)
	}
}
