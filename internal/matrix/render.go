package matrix

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// The SVG elements' ids (one of each per page).
const (
	MatrixID   = "matrix"
	TimelineID = "timeline"
)

// MatrixSVG is the persona matrix as an inline SVG element.
func (p Picture) MatrixSVG(l Labels) string {
	var b bytes.Buffer
	_ = writeSVG(&b, p.matrix(l), MatrixID) // a bytes.Buffer does not fail
	return b.String()
}

// TimelineSVG is the timeline as an inline SVG element; times in loc
// (nil: UTC).
func (p Picture) TimelineSVG(l Labels, loc *time.Location) string {
	var b bytes.Buffer
	_ = writeSVG(&b, p.timeline(l, loc), TimelineID)
	return b.String()
}

// Text is the matrix as a fixed-width table, for plain text: one line per
// column (host), what the sender did and what each row's policy does
// there, "≠" where that contradicts it.
func (p Picture) Text(l Labels) string {
	var b strings.Builder
	head := []string{"", l.get(LabelObserved)}
	for _, r := range p.Rows {
		head = append(head, string(r.Policy))
	}
	lines := [][]string{head}
	for i, col := range p.Columns {
		line := []string{l.get(ColumnLabel(col.Key, "top")) + " " + l.get(ColumnLabel(col.Key, "bottom")), p.outcomeText(l, col.Key, p.Observed[i])}
		for _, r := range p.Rows {
			s := expectText(l, col.Key, r.Expect[i])
			if r.Contradicted[i] {
				s = "≠ " + s
			}
			line = append(line, s)
		}
		lines = append(lines, line)
	}
	widths := make([]int, len(head))
	for _, line := range lines {
		for j, s := range line {
			widths[j] = max(widths[j], len([]rune(s)))
		}
	}
	for _, line := range lines {
		var row strings.Builder
		for j, s := range line {
			if j > 0 {
				row.WriteString(" | ")
			}
			fmt.Fprintf(&row, "%-*s", widths[j], s)
		}
		b.WriteString(strings.TrimRight(row.String(), " ") + "\n")
	}
	return b.String()
}
