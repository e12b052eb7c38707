package demo

import (
	"context"
	"testing"
	"time"
)

// TestDemo is `mailsec demo` as CI runs it: the whole service in-process,
// the eight reference senders, every verdict as expected and settled.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo (about 20 s)")
	}
	rep, err := Run(context.Background(), Options{Deadline: 2 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) != len(References()) {
		t.Fatalf("%d results for %d senders", len(rep.Results), len(References()))
	}
	for _, r := range rep.Results {
		t.Logf("%-13s verdict %-13s attempts A %d B %d, %.1fs", r.Sender, r.Verdict, r.Attempts, r.AttemptsB, r.Seconds)
		if !r.OK || r.Verdict != r.Expected || !r.Complete {
			t.Errorf("%s: verdict %s (complete %v), want %s: %s\nseen %v", r.Sender, r.Verdict, r.Complete, r.Expected, r.Why, r.Seen)
		}
		if r.Attempts < 1 || r.Test == "" {
			t.Errorf("%s: no attempt or no test recorded", r.Sender)
		}
	}
	if !rep.OK || rep.Seconds > 120 {
		t.Fatalf("report ok=%v after %.0fs", rep.OK, rep.Seconds)
	}
}
