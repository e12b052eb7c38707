package matrix

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// writeSVG writes the recorded drawing as an inline SVG element (SVG 1.1
// / 2, no script, no external reference): role="img" with an aria-label
// and a <title> and <desc> (WAI-ARIA Graphics; SVG 2 §5.9) so that screen
// readers name it, and a <title> for each mark and cell. Every string is
// XML-escaped: labels may come from a translation, and nothing from the
// peer is drawn but numbers.
func writeSVG(w io.Writer, c *canvas, id string) error {
	var b bytes.Buffer
	esc := func(s string) string {
		var e bytes.Buffer
		_ = xml.EscapeText(&e, []byte(s))
		return e.String()
	}
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" id="%s" class="picture" role="img" aria-label="%s" aria-describedby="%s-desc" viewBox="0 0 %s %s" width="%s" height="%s" font-family="sans-serif">`,
		esc(id), esc(c.label), esc(id), num(c.width), num(c.height), num(c.width), num(c.height))
	fmt.Fprintf(&b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, esc(id), esc(c.title), esc(id), esc(c.desc))
	for _, o := range c.ops {
		switch o.kind {
		case opRect:
			fmt.Fprintf(&b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"`, num(o.x), num(o.y), num(o.w), num(o.h), o.fill.hex())
			if o.width > 0 {
				fmt.Fprintf(&b, ` stroke="%s" stroke-width="%s"`, o.stroke.hex(), num(o.width))
			}
			b.WriteString("/>")
		case opLine:
			fmt.Fprintf(&b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s" stroke-linecap="round"/>`,
				num(o.x), num(o.y), num(o.x2), num(o.y2), o.stroke.hex(), num(o.width))
		case opPoly:
			pts := make([]string, len(o.pts))
			for i, p := range o.pts {
				pts[i] = num(p.x) + "," + num(p.y)
			}
			fmt.Fprintf(&b, `<polygon points="%s" fill="%s"/>`, strings.Join(pts, " "), o.fill.hex())
		case opCircle:
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="%s"`, num(o.x), num(o.y), num(o.w))
			if o.hasFill {
				fmt.Fprintf(&b, ` fill="%s"/>`, o.fill.hex())
			} else {
				fmt.Fprintf(&b, ` fill="none" stroke="%s" stroke-width="%s"/>`, o.stroke.hex(), num(o.width))
			}
		case opText:
			a := ""
			switch o.anchor {
			case anchorMiddle:
				a = ` text-anchor="middle"`
			case anchorEnd:
				a = ` text-anchor="end"`
			}
			weight := ""
			if o.bold {
				weight = ` font-weight="bold"`
			}
			fmt.Fprintf(&b, `<text x="%s" y="%s" font-size="%s" fill="%s"%s%s>%s</text>`, num(o.x), num(o.y), num(o.size), o.fill.hex(), a, weight, esc(o.text))
		case opGroup:
			fmt.Fprintf(&b, `<g><title>%s</title>`, esc(o.text))
		case opGroupEnd:
			b.WriteString("</g>")
		}
	}
	b.WriteString("</svg>")
	_, err := w.Write(b.Bytes())
	return err
}

// num writes a coordinate with at most one decimal, so that the SVG is
// stable (golden files) and small.
func num(f float64) string {
	return strconv.FormatFloat(float64(int64(f*10+0.5*sign(f)))/10, 'f', -1, 64)
}

func sign(f float64) float64 {
	if f < 0 {
		return -1
	}
	return 1
}
