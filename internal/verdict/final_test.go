package verdict

import (
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

func TestFinal(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	conn := store.SMTPConnection{Started: t0.Add(time.Minute), Ended: t0.Add(2 * time.Minute)}
	open := store.SMTPConnection{Started: t0.Add(time.Minute)}
	acked := store.Test{Created: t0, State: store.TestAcked, Acked: t0.Add(2 * time.Minute)}
	pending := store.Test{Created: t0, State: store.TestOpen}
	complete := Verdict{Complete: true, Candidates: []Policy{PolicyDANE, PolicyDANEMTASTS}}
	single := Verdict{Complete: true, Candidates: []Policy{PolicyVerify}}
	inconsistent := Verdict{Complete: true, Policy: PolicyInconsistent}
	q, exp := 10*time.Minute, time.Hour
	for _, c := range []struct {
		name  string
		t     store.Test
		conns []store.SMTPConnection
		v     Verdict
		now   time.Time
		want  bool
	}{
		{"no mail yet", pending, nil, Verdict{}, t0.Add(30 * time.Minute), false},
		{"no mail ever", pending, nil, Verdict{}, t0.Add(exp), true},
		{"acked and quiet", acked, []store.SMTPConnection{conn}, complete, t0.Add(12 * time.Minute), true},
		{"acked, not quiet", acked, []store.SMTPConnection{conn}, complete, t0.Add(5 * time.Minute), false},
		{"acked and quiet, incomplete", acked, []store.SMTPConnection{conn}, Verdict{Candidates: complete.Candidates}, t0.Add(30 * time.Minute), false},
		{"451 given, several candidates", pending, []store.SMTPConnection{conn}, complete, t0.Add(30 * time.Minute), false},
		{"451 given, one candidate", pending, []store.SMTPConnection{conn}, single, t0.Add(30 * time.Minute), true},
		{"451 given, inconsistent", pending, []store.SMTPConnection{conn}, inconsistent, t0.Add(30 * time.Minute), true},
		{"connection open", acked, []store.SMTPConnection{open}, complete, t0.Add(30 * time.Minute), false},
		{"expired", pending, []store.SMTPConnection{conn}, Verdict{}, t0.Add(2*time.Minute + exp), true},
		{"not yet expired", pending, []store.SMTPConnection{conn}, Verdict{}, t0.Add(2*time.Minute + exp - time.Second), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := FinalInput{Test: c.t, Connections: c.conns, Verdict: c.v, Now: c.now, Quiet: q, Expiry: exp}
			if got := Final(in); got != c.want {
				t.Errorf("Final = %v, want %v", got, c.want)
			}
		})
	}
}

func TestLastActivity(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tt := store.Test{Created: t0}
	for _, c := range []struct {
		name  string
		conns []store.SMTPConnection
		want  time.Time
	}{
		{"none: creation", nil, t0},
		{"latest end", []store.SMTPConnection{{Started: t0.Add(time.Minute), Ended: t0.Add(3 * time.Minute)}, {Started: t0.Add(2 * time.Minute), Ended: t0.Add(150 * time.Second)}}, t0.Add(3 * time.Minute)},
		{"open: its start", []store.SMTPConnection{{Started: t0.Add(time.Minute), Ended: t0.Add(90 * time.Second)}, {Started: t0.Add(2 * time.Minute)}}, t0.Add(2 * time.Minute)},
		{"before creation (tied)", []store.SMTPConnection{{Started: t0.Add(-time.Hour), Ended: t0.Add(-time.Minute)}}, t0},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := LastActivity(tt, c.conns); !got.Equal(c.want) {
				t.Errorf("LastActivity = %v, want %v", got, c.want)
			}
		})
	}
}
