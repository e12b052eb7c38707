// Package periodic runs the service's background jobs (finalising tests,
// sending result mails, the retention purge): a job runs at once and then
// at every tick until the context ends.
package periodic

import (
	"context"
	"log/slog"
	"time"
)

// Run runs job at once and then every interval until ctx ends. A failed
// run is logged as what went wrong (e.g. "results: finalising tests") and
// the next tick tries again: a passing outage, of the store for instance,
// must not stop the loop. An error once ctx has ended is the end, not a
// failure, and is not logged. A run that takes longer than interval delays
// the next one (the ticker drops the ticks in between); Run returns when
// ctx ends, after the run in progress.
func Run(ctx context.Context, interval time.Duration, log *slog.Logger, what string, job func(context.Context) error) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := job(ctx); err != nil && ctx.Err() == nil {
			log.Error(what, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
