package matrix

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"sync"
	"time"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// PNGScale is the PNG's pixels per CSS pixel: the mail shows the image at
// the drawings' width, sharp on high-density screens.
const PNGScale = 2

// PNG is the matrix above the timeline as one PNG image, for the result
// mail: many mail clients strip inline SVG but show an inline image
// (multipart/related, RFC 2387). It is rasterised here in pure Go
// (golang.org/x/image: vector, the Go fonts), the same drawing as the
// SVG, into a paletted image (the drawing has a few colours; edges are
// smoothed in four steps between two of them): a third of the bytes of
// RGB to compress and no row filters, which keeps a result mail's
// composition cheap (tens of milliseconds; the race detector's test run
// feels it most). It returns the image and its width and height in CSS
// pixels.
func (p Picture) PNG(l Labels, loc *time.Location) ([]byte, int, int, error) {
	m, t := p.matrix(l), p.timeline(l, loc)
	w, h := m.width, m.height+t.height
	pal := newPaletteBuilder(white) // index 0: the background
	img := image.NewPaletted(image.Rect(0, 0, int(math.Ceil(w*PNGScale)), int(math.Ceil(h*PNGScale))), nil)
	z := vector.NewRasterizer(0, 0)
	z.DrawOp = draw.Src
	r := &raster{img: img, pal: pal, z: z}
	if err := r.paint(m, 0); err != nil {
		return nil, 0, 0, err
	}
	if err := r.paint(t, m.height); err != nil {
		return nil, 0, 0, err
	}
	img.Palette = pal.colours
	var b bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&b, img); err != nil {
		return nil, 0, 0, fmt.Errorf("matrix: encoding the PNG: %w", err)
	}
	return b.Bytes(), int(math.Ceil(w)), int(math.Ceil(h)), nil
}

// smoothSteps is how many coverage steps an edge has between a shape's
// colour and what lies beneath (the last step is the colour itself).
const smoothSteps = 4

// paletteBuilder hands out palette indexes: the drawing's colours and the
// blends of its edges, at most 256 (then the nearest colour).
type paletteBuilder struct {
	colours color.Palette
	index   map[rgb]uint8
	blends  map[[3]uint8]uint8 // colour, beneath, step
}

func newPaletteBuilder(background rgb) *paletteBuilder {
	b := &paletteBuilder{index: map[rgb]uint8{}, blends: map[[3]uint8]uint8{}}
	b.of(background)
	return b
}

// of is the index of c, added to the palette while there is room.
func (b *paletteBuilder) of(c rgb) uint8 {
	if i, ok := b.index[c]; ok {
		return i
	}
	if len(b.colours) < 256 {
		i := uint8(len(b.colours))
		b.colours = append(b.colours, c.rgba())
		b.index[c] = i
		return i
	}
	i := uint8(b.colours.Index(c.rgba()))
	b.index[c] = i
	return i
}

// blend is the index of fg over bg at step (1 to smoothSteps-1) of
// coverage.
func (b *paletteBuilder) blend(fg, bg uint8, step int) uint8 {
	key := [3]uint8{fg, bg, uint8(step)}
	if i, ok := b.blends[key]; ok {
		return i
	}
	f, g := b.colours[fg].(color.RGBA), b.colours[bg].(color.RGBA)
	mix := func(x, y uint8) uint8 { return uint8((int(x)*step + int(y)*(smoothSteps-step)) / smoothSteps) }
	i := b.of(rgb{mix(f.R, g.R), mix(f.G, g.G), mix(f.B, g.B)})
	b.blends[key] = i
	return i
}

// fonts are the Go fonts, parsed once (they are embedded; a parse error
// is a programming error that every test would show).
var fonts = sync.OnceValues(func() ([2]*opentype.Font, error) {
	reg, err := opentype.Parse(goregular.TTF)
	if err != nil {
		return [2]*opentype.Font{}, err
	}
	bold, err := opentype.Parse(gobold.TTF)
	return [2]*opentype.Font{reg, bold}, err
})

// raster paints recorded drawings onto a paletted image: each shape and
// text is rasterised to a coverage mask over its bounding box only, then
// laid on the image in its colour (composite).
type raster struct {
	img   *image.Paletted
	pal   *paletteBuilder
	z     *vector.Rasterizer
	faces map[[2]int]font.Face
}

// composite lays col on the image where mask covers it.
func (r *raster) composite(col rgb, mask *image.Alpha) {
	box := mask.Rect.Intersect(r.img.Rect)
	fg := r.pal.of(col)
	for y := box.Min.Y; y < box.Max.Y; y++ {
		mi, di := mask.PixOffset(box.Min.X, y), r.img.PixOffset(box.Min.X, y)
		for x := box.Min.X; x < box.Max.X; x, mi, di = x+1, mi+1, di+1 {
			step := (int(mask.Pix[mi])*smoothSteps + 127) / 255
			switch {
			case step == 0:
			case step >= smoothSteps:
				r.img.Pix[di] = fg
			default:
				r.img.Pix[di] = r.pal.blend(fg, r.img.Pix[di], step)
			}
		}
	}
}

// fill paints the path in col.
func (r *raster) fill(col rgb, path func(z *pathRecorder)) {
	var p pathRecorder
	path(&p)
	if len(p.cmds) == 0 {
		return
	}
	box := image.Rect(int(math.Floor(float64(p.minX)))-1, int(math.Floor(float64(p.minY)))-1,
		int(math.Ceil(float64(p.maxX)))+1, int(math.Ceil(float64(p.maxY)))+1).Intersect(r.img.Bounds())
	if box.Empty() {
		return
	}
	r.z.Reset(box.Dx(), box.Dy())
	ox, oy := float32(box.Min.X), float32(box.Min.Y)
	for _, c := range p.cmds {
		switch c.op {
		case 'M':
			r.z.MoveTo(c.p[0]-ox, c.p[1]-oy)
		case 'L':
			r.z.LineTo(c.p[0]-ox, c.p[1]-oy)
		case 'C':
			r.z.CubeTo(c.p[0]-ox, c.p[1]-oy, c.p[2]-ox, c.p[3]-oy, c.p[4]-ox, c.p[5]-oy)
		case 'Z':
			r.z.ClosePath()
		}
	}
	mask := image.NewAlpha(box)
	r.z.Draw(mask, box, image.Opaque, image.Point{})
	r.composite(col, mask)
}

// pathRecorder collects a path and its bounding box (the rasteriser's
// calls, in image coordinates).
type pathRecorder struct {
	cmds                   []pathCmd
	minX, minY, maxX, maxY float32
}

type pathCmd struct {
	op byte
	p  [6]float32
}

func (p *pathRecorder) add(op byte, pts ...float32) {
	c := pathCmd{op: op}
	copy(c.p[:], pts)
	for i := 0; i+1 < len(pts); i += 2 {
		x, y := pts[i], pts[i+1]
		if len(p.cmds) == 0 && i == 0 {
			p.minX, p.maxX, p.minY, p.maxY = x, x, y, y
		}
		p.minX, p.maxX, p.minY, p.maxY = min(p.minX, x), max(p.maxX, x), min(p.minY, y), max(p.maxY, y)
	}
	p.cmds = append(p.cmds, c)
}

func (p *pathRecorder) MoveTo(x, y float32)             { p.add('M', x, y) }
func (p *pathRecorder) LineTo(x, y float32)             { p.add('L', x, y) }
func (p *pathRecorder) CubeTo(a, b, c, d, e, f float32) { p.add('C', a, b, c, d, e, f) }
func (p *pathRecorder) ClosePath()                      { p.add('Z') }

func (r *raster) paint(c *canvas, dy float64) error {
	s := func(v float64) float32 { return float32(v * PNGScale) }
	sy := func(v float64) float32 { return float32((v + dy) * PNGScale) }
	for _, o := range c.ops {
		switch o.kind {
		case opRect:
			r.fill(o.fill, func(z *pathRecorder) { rectPath(z, s(o.x), sy(o.y), s(o.w), s(o.h), false) })
			if o.width > 0 {
				hw := o.width / 2
				r.fill(o.stroke, func(z *pathRecorder) {
					rectPath(z, s(o.x-hw), sy(o.y-hw), s(o.w+o.width), s(o.h+o.width), false)
					rectPath(z, s(o.x+hw), sy(o.y+hw), s(o.w-o.width), s(o.h-o.width), true)
				})
			}
		case opLine:
			r.fill(o.stroke, func(z *pathRecorder) { linePath(z, s(o.x), sy(o.y), s(o.x2), sy(o.y2), s(o.width)) })
		case opPoly:
			r.fill(o.fill, func(z *pathRecorder) {
				for i, p := range o.pts {
					if i == 0 {
						z.MoveTo(s(p.x), sy(p.y))
					} else {
						z.LineTo(s(p.x), sy(p.y))
					}
				}
				z.ClosePath()
			})
		case opCircle:
			if o.hasFill {
				r.fill(o.fill, func(z *pathRecorder) { circlePath(z, s(o.x), sy(o.y), s(o.w), false) })
			} else {
				r.fill(o.stroke, func(z *pathRecorder) {
					circlePath(z, s(o.x), sy(o.y), s(o.w+o.width/2), false)
					circlePath(z, s(o.x), sy(o.y), s(o.w-o.width/2), true)
				})
			}
		case opText:
			if err := r.text(o, dy); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *raster) text(o op, dy float64) error {
	fs, err := fonts()
	if err != nil {
		return fmt.Errorf("matrix: the Go fonts: %w", err)
	}
	bold := 0
	if o.bold {
		bold = 1
	}
	key := [2]int{int(o.size * PNGScale * 10), bold}
	face := r.faces[key]
	if face == nil {
		face, err = opentype.NewFace(fs[bold], &opentype.FaceOptions{Size: o.size * PNGScale, DPI: 72, Hinting: font.HintingFull})
		if err != nil {
			return fmt.Errorf("matrix: font face: %w", err)
		}
		if r.faces == nil {
			r.faces = map[[2]int]font.Face{}
		}
		r.faces[key] = face
	}
	d := font.Drawer{Src: image.Opaque, Face: face}
	x := o.x * PNGScale
	switch o.anchor {
	case anchorMiddle:
		x -= float64(d.MeasureString(o.text)) / 64 / 2
	case anchorEnd:
		x -= float64(d.MeasureString(o.text)) / 64
	}
	d.Dot = fixed.Point26_6{X: fixed.Int26_6(x * 64), Y: fixed.Int26_6((o.y + dy) * PNGScale * 64)}
	bounds, _ := d.BoundString(o.text)
	box := image.Rect(bounds.Min.X.Floor()-1, bounds.Min.Y.Floor()-1, bounds.Max.X.Ceil()+1, bounds.Max.Y.Ceil()+1).Intersect(r.img.Rect)
	if box.Empty() {
		return nil
	}
	mask := image.NewAlpha(box)
	d.Dst = mask
	d.DrawString(o.text)
	r.composite(o.fill, mask)
	return nil
}

// rectPath adds a rectangle, counter-clockwise when hole (the rasteriser
// accumulates signed area: an opposite winding cuts a hole).
func rectPath(z *pathRecorder, x, y, w, h float32, hole bool) {
	z.MoveTo(x, y)
	if hole {
		z.LineTo(x, y+h)
		z.LineTo(x+w, y+h)
		z.LineTo(x+w, y)
	} else {
		z.LineTo(x+w, y)
		z.LineTo(x+w, y+h)
		z.LineTo(x, y+h)
	}
	z.ClosePath()
}

// linePath adds a line of the given width as a rectangle along it.
func linePath(z *pathRecorder, x1, y1, x2, y2, w float32) {
	dx, dy := x2-x1, y2-y1
	n := float32(math.Hypot(float64(dx), float64(dy)))
	if n == 0 {
		return
	}
	// Half a width across, and half a width beyond each end (round-ish
	// caps, as the SVG's stroke-linecap="round").
	px, py := -dy/n*w/2, dx/n*w/2
	ex, ey := dx/n*w/2, dy/n*w/2
	z.MoveTo(x1-ex+px, y1-ey+py)
	z.LineTo(x2+ex+px, y2+ey+py)
	z.LineTo(x2+ex-px, y2+ey-py)
	z.LineTo(x1-ex-px, y1-ey-py)
	z.ClosePath()
}

// circlePath adds a circle of four cubic Béziers, counter-clockwise when
// hole.
func circlePath(z *pathRecorder, cx, cy, r float32, hole bool) {
	if r <= 0 {
		return
	}
	k := r * 0.5523
	sgn := float32(1)
	if hole {
		sgn = -1
	}
	z.MoveTo(cx+r, cy)
	z.CubeTo(cx+r, cy+sgn*k, cx+k, cy+sgn*r, cx, cy+sgn*r)
	z.CubeTo(cx-k, cy+sgn*r, cx-r, cy+sgn*k, cx-r, cy)
	z.CubeTo(cx-r, cy-sgn*k, cx-k, cy-sgn*r, cx, cy-sgn*r)
	z.CubeTo(cx+k, cy-sgn*r, cx+r, cy-sgn*k, cx+r, cy)
	z.ClosePath()
}
