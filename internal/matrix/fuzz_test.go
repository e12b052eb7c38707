package matrix

import (
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/verdict"
)

// FuzzPicture draws random histories (as FuzzJudge judges them): the
// drawing never panics, both SVGs are well-formed and accessible, the
// timeline has a mark per connection, and the matrix's row of the sender
// says what the verdict saw (Verdict.Seen) in every persona column.
func FuzzPicture(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 3, 0, 30, 4, 1, 31, 5, 0, 60, 6, 1, 61}, false, false)
	f.Add([]byte{9, 0, 0, 0, 1, 1, 1, 1, 7, 1, 2, 8, 1, 3, 2, 0, 200}, true, true)
	f.Add([]byte{10, 0, 0, 10, 0, 255, 255, 255, 255}, false, true)
	cols := []string{"1w", "1o", "2", "3", "4", "5", "6", "7p", "7t", "broken", "v6", "open"}
	f.Fuzz(func(t *testing.T, data []byte, fetched, broken bool) {
		var steps []step
		for i := 0; i+2 < len(data) && len(steps) < 60; i += 3 {
			col := cols[int(data[i])%len(cols)]
			if (col == "broken" || col == "v6") && !broken {
				col = "1w"
			}
			steps = append(steps, step{col: col, delivered: data[i+1]%2 == 1, at: time.Duration(data[i+2]) * 7 * time.Second})
		}
		conns := history(steps...)
		p, v := build(t, conns, fetched, broken, broken)
		m, tl := p.MatrixSVG(English), p.TimelineSVG(English, time.UTC)
		checkSVG(t, m)
		checkSVG(t, tl)
		if got := strings.Count(tl, "<g><title>") - 1; len(conns) > 0 && got != len(conns) { // one group is the window's
			t.Errorf("%d marks for %d connections", got, len(conns))
		}
		for i, c := range p.Columns {
			if c.Key == verdict.ColumnBrokenHost || c.Key == verdict.ColumnIPv6Host || c.Key == verdict.ColumnPolicyFetch {
				continue
			}
			want := map[string]Outcome{"": OutcomeNone, "D": OutcomeDelivered, "R": OutcomeRefused, "DR": OutcomeBoth}[v.Seen[c.Name]]
			if p.Observed[i].Outcome != want {
				t.Errorf("%s: the picture shows %q, the verdict saw %q", c.Name, p.Observed[i].Outcome, v.Seen[c.Name])
			}
		}
		if len(p.Rows) == 0 || len(p.Rows) > MaxRows {
			t.Errorf("%d rows", len(p.Rows))
		}
		_ = p.Text(English)
	})
}
