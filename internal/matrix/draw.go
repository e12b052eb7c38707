package matrix

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/verdict"
)

// Layout of both drawings, in CSS pixels.
const (
	margin    = 8.0
	labelW    = 184.0 // the row labels' column
	colW      = 66.0
	headH     = 40.0
	obsH      = 46.0
	rowH      = 38.0
	legendH   = 26.0
	titleH    = 24.0
	laneH     = 24.0
	bandH     = 18.0
	axisH     = 40.0
	plotRight = 16.0
)

// width is the drawings' width: the matrix's columns decide it, and the
// timeline takes the same so that both line up.
func (p Picture) width() float64 { return margin*2 + labelW + colW*float64(len(p.Columns)) }

// matrix records the persona matrix.
func (p Picture) matrix(l Labels) *canvas {
	c := &canvas{width: p.width(), title: l.get(LabelMatrixTitle), desc: l.get(LabelMatrixDesc)}
	c.label = p.Summary(l)
	y := margin
	c.text(margin, y+15, l.get(LabelMatrixTitle), 14, inkText, anchorStart, true)
	y += titleH
	x0 := margin + labelW
	// Header: the hosts.
	c.rect(x0, y, colW*float64(len(p.Columns)), headH, headFill, nil, 0)
	for i, col := range p.Columns {
		cx := x0 + colW*(float64(i)+0.5)
		c.group(l.get(ColumnLabel(col.Key, "long")), func() {
			c.text(cx, y+16, l.get(ColumnLabel(col.Key, "top")), 13, inkHead, anchorMiddle, true)
			c.text(cx, y+31, l.get(ColumnLabel(col.Key, "bottom")), 10, inkHead, anchorMiddle, false)
		})
	}
	y += headH
	// What the sender did.
	c.text(margin, y+obsH/2+5, l.get(LabelObserved), 13, inkText, anchorStart, true)
	for i, col := range p.Columns {
		cell := p.Observed[i]
		x := x0 + colW*float64(i)
		title := l.get(ColumnLabel(col.Key, "long")) + ": " + p.outcomeText(l, col.Key, cell)
		c.group(title, func() {
			k, sym := outcomeStyle(col.Key, cell.Outcome)
			c.rect(x+2, y+2, colW-4, obsH-4, k.bg, &gridLine, 1)
			if cell.Outcome == OutcomeBoth {
				c.drawSymbol(symCheck, x+colW/2-9, y+17, 14, goodInk)
				c.drawSymbol(symCross, x+colW/2+9, y+17, 14, badInk)
			} else {
				c.drawSymbol(sym, x+colW/2, y+17, 16, k.fg)
			}
			if len(cell.Attempts) > 0 {
				c.text(x+colW/2, y+obsH-8, attemptsShort(cell.Attempts), 10, k, anchorMiddle, false)
			}
		})
	}
	y += obsH + 4
	c.line(margin, y, c.width-margin, y, gridLine, 1)
	y += 4
	// What each policy does there.
	for _, r := range p.Rows {
		kind := rowLabels[r.Kind]
		fit := l.get(LabelFits)
		fitInk := inkGoodText
		if r.Misfits > 0 {
			fit, fitInk = fmt.Sprintf("%s (≠ %d)", l.get(LabelContradictions), r.Misfits), inkBadText
		}
		c.group(fmt.Sprintf("%s: %s — %s", l.get(kind), r.Policy, fit), func() {
			c.text(margin, y+15, string(r.Policy), 13, inkText, anchorStart, r.Kind == RowVerdict)
			k := l.get(kind) + " ·"
			c.text(margin, y+30, k, 10, inkMuted, anchorStart, false)
			c.text(margin+approxWidth(k, 10)+4, y+30, fit, 10, fitInk, anchorStart, false)
		})
		for i, col := range p.Columns {
			x := x0 + colW*float64(i)
			e := r.Expect[i]
			title := fmt.Sprintf("%s, %s: %s", r.Policy, l.get(ColumnLabel(col.Key, "long")), expectText(l, col.Key, e))
			if r.Contradicted[i] {
				title += " — " + l.get(LabelContradicted)
			}
			c.group(title, func() {
				if r.Contradicted[i] {
					c.rect(x+2, y+2, colW-4, rowH-4, badFill, &misfitInk, 2)
					c.text(x+colW-7, y+15, "≠", 13, inkMisfitOn, anchorEnd, true)
				} else {
					c.rect(x+2, y+2, colW-4, rowH-4, white, &gridLine, 1)
				}
				drawExpect(c, e, x+colW/2, y+rowH/2)
			})
		}
		y += rowH
	}
	y += 6
	y = legend(c, l, margin, y)
	c.height = y + margin
	return c
}

// rowLabels are the label keys of the row kinds.
var rowLabels = map[RowKind]string{RowVerdict: LabelVerdictRow, RowCandidate: LabelCandidateRow, RowAbsent: LabelAbsentRow, RowOther: LabelOtherRow}

// legend draws the symbols with their words, so that no symbol and no
// colour must be guessed; it returns the y below it.
func legend(c *canvas, l Labels, x, y float64) float64 {
	items := []struct {
		sym symbol
		col rgb
		key string
	}{
		{symCheck, goodInk, LabelDelivered}, {symCross, badInk, LabelRefused}, {symDash, noneInk, LabelNotContacted},
		{symDot, brokenInk, LabelContacted}, {symHollow, noneInk, LabelOpen},
	}
	for _, it := range items {
		c.drawSymbol(it.sym, x+7, y+9, 12, it.col)
		s := l.get(it.key)
		c.text(x+17, y+13, s, 11, inkText, anchorStart, false)
		x += 24 + approxWidth(s, 11)
	}
	c.text(x+7, y+13, "≠", 13, inkMisfit, anchorMiddle, true)
	c.text(x+17, y+13, l.get(LabelContradicted), 11, inkText, anchorStart, false)
	return y + legendH
}

// approxWidth estimates a sans-serif text's width for the layout (the
// PNG measures exactly; a browser's font is close to this).
func approxWidth(s string, size float64) float64 { return float64(len([]rune(s))) * size * 0.56 }

// outcomeStyle is the fill, ink and symbol of an observed outcome.
func outcomeStyle(key string, o Outcome) (ink, symbol) {
	switch o {
	case OutcomeDelivered:
		return inkGood, symCheck
	case OutcomeRefused:
		return inkBad, symCross
	case OutcomeBoth:
		return inkHead, symCheck
	case OutcomeContacted:
		switch key {
		case verdict.ColumnPolicyFetch:
			return inkWindow, symDot
		case verdict.ColumnIPv6Host:
			return inkGood, symDot // it delivers over IPv6
		}
		return inkBroken, symDot
	}
	return inkNone, symDash
}

// drawExpect draws an expectation's symbol: ✓, ✗, –; "never delivers" is
// ✗ and –; "either" ✓ and ✗.
func drawExpect(c *canvas, e verdict.Expectation, x, y float64) {
	switch e {
	case verdict.ExpectDeliver:
		c.drawSymbol(symCheck, x, y, 16, goodInk)
	case verdict.ExpectRefuse:
		c.drawSymbol(symCross, x, y, 16, badInk)
	case verdict.ExpectNever:
		c.drawSymbol(symDash, x, y, 16, noneInk)
	case verdict.ExpectNoMail:
		c.drawSymbol(symCross, x-9, y, 12, badInk)
		c.drawSymbol(symDash, x+9, y, 12, noneInk)
	case verdict.ExpectAny:
		c.drawSymbol(symCheck, x-9, y, 12, goodInk)
		c.drawSymbol(symCross, x+9, y, 12, badInk)
	}
}

// outcomeText is an observation in words, with its attempts.
func (p Picture) outcomeText(l Labels, key string, cell Cell) string {
	var s string
	switch cell.Outcome {
	case OutcomeDelivered:
		s = l.get(LabelDelivered)
	case OutcomeRefused:
		s = l.get(LabelRefused)
	case OutcomeBoth:
		s = l.get(LabelBoth)
	case OutcomeContacted:
		s = l.get(LabelContacted)
		if key == verdict.ColumnPolicyFetch {
			s = l.get(LabelFetched)
		}
	case OutcomeNone:
		s = l.get(LabelNotContacted)
		if key == verdict.ColumnPolicyFetch {
			s = l.get(LabelNotFetched)
		}
	}
	switch len(cell.Attempts) {
	case 0:
	case 1:
		s += fmt.Sprintf(" (%s %d)", l.get(LabelAttempt), cell.Attempts[0])
	default:
		s += fmt.Sprintf(" (%s %s)", l.get(LabelAttempts), attemptList(cell.Attempts))
	}
	return s
}

func expectText(l Labels, key string, e verdict.Expectation) string {
	if key == verdict.ColumnPolicyFetch {
		if e == verdict.ExpectNever {
			return l.get(LabelExpectNoFetch)
		}
		return l.get(LabelExpectMayFetch)
	}
	return l.get(map[verdict.Expectation]string{verdict.ExpectDeliver: LabelExpectDeliver, verdict.ExpectRefuse: LabelExpectRefuse,
		verdict.ExpectNever: LabelExpectNever, verdict.ExpectNoMail: LabelExpectNoMail, verdict.ExpectAny: LabelExpectAny}[e])
}

func attemptList(a []int) string {
	s := make([]string, len(a))
	for i, n := range a {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}

// attemptsShort is the attempts under a cell's symbol: "#1", "#1,3",
// "#1,3…" when more than fit.
func attemptsShort(a []int) string {
	const most = 3
	s := make([]string, 0, most)
	for i, n := range a {
		if i == most {
			return "#" + strings.Join(s, ",") + "…"
		}
		s = append(s, strconv.Itoa(n))
	}
	return "#" + strings.Join(s, ",")
}

// Summary is the matrix in one paragraph of words: the SVG's aria-label
// and the mail image's alt text.
func (p Picture) Summary(l Labels) string {
	var parts []string
	for i, col := range p.Columns {
		if p.Observed[i].Outcome == OutcomeNone {
			continue
		}
		parts = append(parts, l.get(ColumnLabel(col.Key, "long"))+": "+p.outcomeText(l, col.Key, p.Observed[i]))
	}
	if len(parts) == 0 {
		parts = append(parts, strings.TrimSuffix(l.get(LabelTimelineEmpty), "."))
	}
	s := l.get(LabelObserved) + ": " + strings.Join(parts, "; ") + "."
	for _, r := range p.Rows {
		kind := rowLabels[r.Kind]
		fit := l.get(LabelFits)
		if r.Misfits > 0 {
			var where []string
			for i, bad := range r.Contradicted {
				if bad {
					where = append(where, l.get(ColumnLabel(p.Columns[i].Key, "long")))
				}
			}
			fit = l.get(LabelContradictions) + ": " + strings.Join(where, ", ")
		}
		s += fmt.Sprintf(" %s: %s — %s.", l.get(kind), r.Policy, fit)
	}
	return s
}

// timeline records the timeline of the attempts: one lane per host that
// was contacted (in the matrix's column order), one mark per connection.
func (p Picture) timeline(l Labels, loc *time.Location) *canvas {
	if loc == nil {
		loc = time.UTC
	}
	c := &canvas{width: p.width(), title: l.get(LabelTimelineTitle), desc: l.get(LabelTimelineDesc)}
	y := margin
	c.text(margin, y+15, l.get(LabelTimelineTitle), 14, inkText, anchorStart, true)
	y += titleH
	if len(p.Marks) == 0 {
		c.label = l.get(LabelTimelineEmpty)
		c.text(margin, y+14, l.get(LabelTimelineEmpty), 12, inkMuted, anchorStart, false)
		c.height = y + 22 + margin
		return c
	}
	// Lanes: the columns with a mark, then the connections that say
	// nothing.
	lane := map[string]int{}
	var lanes []string
	for _, col := range p.Columns {
		for _, m := range p.Marks {
			if m.Column == col.Key {
				lane[col.Key] = len(lanes)
				lanes = append(lanes, col.Key)
				break
			}
		}
	}
	for _, m := range p.Marks {
		if m.Column == "" {
			lane[""] = len(lanes)
			lanes = append(lanes, "")
			break
		}
	}
	x0, x1 := margin+labelW, c.width-margin-plotRight
	span := p.End.Sub(p.Start)
	if span <= 0 {
		span = time.Second
	}
	xAt := func(t time.Time) float64 { return x0 + (x1-x0)*float64(t.Sub(p.Start))/float64(span) }
	top := y
	plotH := bandH + laneH*float64(len(lanes))
	if p.Window > 0 {
		wx := xAt(p.Start.Add(p.Window))
		c.group(l.get(LabelWindow), func() {
			c.rect(x0, top, wx-x0, plotH, windowFill, nil, 0)
			// On the band or, where the window is narrow, the white beside
			// it: its ink suits both (inkWindow, inkWindowW).
			c.text(x0+4, top+13, l.get(LabelWindow), 11, inkWindow, anchorStart, false)
		})
	}
	y += bandH
	for i, key := range lanes {
		ly := y + laneH*float64(i)
		name := l.get(LabelOpen)
		if key != "" {
			name = l.get(ColumnLabel(key, "top")) + " " + l.get(ColumnLabel(key, "bottom"))
		}
		c.text(margin, ly+laneH/2+4, name, 11, inkText, anchorStart, false)
		c.line(x0, ly+laneH, x1, ly+laneH, headFill, 1)
	}
	c.line(x0, y+laneH*float64(len(lanes)), x1, y+laneH*float64(len(lanes)), gridLine, 1)
	// The attempt number is written once per run of marks of one attempt
	// close together in a lane (a retry burst would print it on itself).
	labelled := map[string]struct {
		x       float64
		attempt int
	}{}
	for _, m := range p.Marks {
		mx, my := xAt(m.At), y+laneH*float64(lane[m.Column])+laneH/2
		last, seen := labelled[m.Column]
		label := m.Attempt > 0 && (!seen || last.attempt != m.Attempt || mx-last.x > 14)
		if label {
			labelled[m.Column] = struct {
				x       float64
				attempt int
			}{mx, m.Attempt}
		}
		k, sym := outcomeStyle(m.Column, m.Outcome)
		switch {
		case m.Column == "":
			sym = symHollow
		case m.Column == verdict.ColumnBrokenHost, m.Column == verdict.ColumnIPv6Host:
			sym = symDiamond
		case m.Outcome == OutcomeDelivered:
			sym = symDot // a filled circle: delivered (✓ in the matrix)
		}
		what := l.get(LabelOpen)
		if m.Column != "" {
			what = p.outcomeText(l, m.Column, Cell{Outcome: m.Outcome, Attempts: nonZero(m.Attempt)})
		}
		title := fmt.Sprintf("%s %s: %s", m.At.In(loc).Format("15:04:05"), laneName(l, m.Column), what)
		c.group(title, func() {
			c.drawSymbol(sym, mx, my, 14, k.fg)
			if label {
				c.text(mx+7, my-4, strconv.Itoa(m.Attempt), 9, inkText, anchorStart, false)
			}
		})
	}
	y += laneH * float64(len(lanes))
	// The axis: ticks at a round step, labelled from the first connection.
	step := tickStep(span)
	for i := range 12 {
		t := step * time.Duration(i)
		if t > span || t < 0 {
			break
		}
		tx := xAt(p.Start.Add(t))
		c.line(tx, y, tx, y+5, gridLine, 1)
		c.text(tx, y+17, clock(t), 10, inkText, anchorMiddle, false)
	}
	c.text(x0, y+33, fmt.Sprintf("%s (%s %s)", l.get(LabelTimeAxis), p.Start.In(loc).Format("2006-01-02 15:04:05"), loc), 10, inkMuted, anchorStart, false)
	y += axisH
	c.height = y + margin
	c.label = l.get(LabelTimelineTitle) + ": " + timelineSummary(p, l, loc)
	return c
}

func nonZero(n int) []int {
	if n == 0 {
		return nil
	}
	return []int{n}
}

func laneName(l Labels, key string) string {
	if key == "" {
		return "–"
	}
	return l.get(ColumnLabel(key, "long"))
}

// timelineSummary lists the connections in words, at most 20.
func timelineSummary(p Picture, l Labels, loc *time.Location) string {
	var parts []string
	for i, m := range p.Marks {
		if i == 20 {
			parts = append(parts, "…")
			break
		}
		what := l.get(LabelOpen)
		if m.Column != "" {
			what = p.outcomeText(l, m.Column, Cell{Outcome: m.Outcome, Attempts: nonZero(m.Attempt)})
		}
		parts = append(parts, fmt.Sprintf("%s %s: %s", m.At.In(loc).Format("15:04:05"), laneName(l, m.Column), what))
	}
	return strings.Join(parts, "; ")
}

// tickStep is a round step giving at most about eight ticks over span.
func tickStep(span time.Duration) time.Duration {
	for _, s := range []time.Duration{time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour,
		6 * time.Hour, 12 * time.Hour, 24 * time.Hour} {
		if span/s <= 8 {
			return s
		}
	}
	return span / 8
}

// clock is an offset as m:ss or h:mm:ss, the same in every language.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, s := int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60
	if h > 0 {
		return fmt.Sprintf("%d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%d:%02d", m, s)
}
