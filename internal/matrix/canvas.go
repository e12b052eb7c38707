package matrix

// The drawings are recorded once as a list of shapes (canvas) and then
// written out as SVG (svg.go) or rasterised to PNG (png.go), so the web's
// picture and the mail's are the same drawing.

// anchor is a text's horizontal alignment at its x.
type anchor int

const (
	anchorStart anchor = iota
	anchorMiddle
	anchorEnd
)

// opKind is the kind of one recorded shape.
type opKind int

const (
	opRect     opKind = iota // x, y, w, h; fill, stroke (width 0: none)
	opLine                   // x, y to x2, y2; stroke, width
	opPoly                   // pts, filled
	opCircle                 // x, y centre, r in w; fill or stroke
	opText                   // x baseline, y; text; size; ink; anchor; bold
	opGroup                  // begin an element group with a title (screen readers)
	opGroupEnd               // end it
)

type pt struct{ x, y float64 }

// op is one recorded shape.
type op struct {
	kind         opKind
	x, y, w, h   float64
	x2, y2       float64
	pts          []pt
	fill, stroke rgb
	hasFill      bool
	width        float64
	text         string
	size         float64
	bold         bool
	anchor       anchor
}

// canvas records shapes in a width×height drawing (units: CSS pixels).
type canvas struct {
	width, height float64
	ops           []op
	label         string // aria-label of the whole drawing
	title, desc   string
}

func (c *canvas) rect(x, y, w, h float64, fill rgb, stroke *rgb, width float64) {
	o := op{kind: opRect, x: x, y: y, w: w, h: h, fill: fill, hasFill: true, width: width}
	if stroke != nil {
		o.stroke = *stroke
	} else {
		o.width = 0
	}
	c.ops = append(c.ops, o)
}

func (c *canvas) line(x1, y1, x2, y2 float64, stroke rgb, width float64) {
	c.ops = append(c.ops, op{kind: opLine, x: x1, y: y1, x2: x2, y2: y2, stroke: stroke, width: width})
}

func (c *canvas) poly(fill rgb, pts ...pt) {
	c.ops = append(c.ops, op{kind: opPoly, pts: pts, fill: fill, hasFill: true})
}

// circle is filled (width 0) or an outline of the given width.
func (c *canvas) circle(x, y, r float64, col rgb, width float64) {
	o := op{kind: opCircle, x: x, y: y, w: r, width: width}
	if width == 0 {
		o.fill, o.hasFill = col, true
	} else {
		o.stroke = col
	}
	c.ops = append(c.ops, o)
}

// text draws s in the ink's foreground; the caller draws it only on the
// ink's background (palette.go).
func (c *canvas) text(x, y float64, s string, size float64, k ink, a anchor, bold bool) {
	c.ops = append(c.ops, op{kind: opText, x: x, y: y, text: s, size: size, fill: k.fg, anchor: a, bold: bold})
}

// group makes what draw draws one element with a title, which screen
// readers read (SVG 2 §5.9, the title element).
func (c *canvas) group(title string, draw func()) {
	c.ops = append(c.ops, op{kind: opGroup, text: title})
	draw()
	c.ops = append(c.ops, op{kind: opGroupEnd})
}

// symbol is an outcome's or an expectation's shape.
type symbol int

const (
	symCheck   symbol = iota // ✓ delivered, delivers
	symCross                 // ✗ refused, refuses
	symDash                  // – never contacted, never goes there
	symDot                   // ● contacted (broken host), fetched
	symHollow                // ○ says nothing
	symDiamond               // ◆ the broken host on the timeline
)

// drawSymbol draws s centred at x, y in a box of size s.
func (c *canvas) drawSymbol(s symbol, x, y, size float64, col rgb) {
	h := size / 2
	w := max(1.5, size/7)
	switch s {
	case symCheck:
		c.line(x-h*0.8, y, x-h*0.2, y+h*0.6, col, w)
		c.line(x-h*0.2, y+h*0.6, x+h*0.9, y-h*0.7, col, w)
	case symCross:
		c.line(x-h*0.7, y-h*0.7, x+h*0.7, y+h*0.7, col, w)
		c.line(x-h*0.7, y+h*0.7, x+h*0.7, y-h*0.7, col, w)
	case symDash:
		c.line(x-h*0.7, y, x+h*0.7, y, col, w)
	case symDot:
		c.circle(x, y, h*0.6, col, 0)
	case symHollow:
		c.circle(x, y, h*0.55, col, w*0.8)
	case symDiamond:
		c.poly(col, pt{x, y - h*0.8}, pt{x + h*0.8, y}, pt{x, y + h*0.8}, pt{x - h*0.8, y})
	}
}
