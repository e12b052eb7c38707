package matrix

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"
)

// rgb is a colour of the palette.
type rgb struct{ r, g, b uint8 }

func (c rgb) hex() string { return fmt.Sprintf("#%02x%02x%02x", c.r, c.g, c.b) }

func (c rgb) rgba() color.RGBA { return color.RGBA{c.r, c.g, c.b, 0xff} }

// The palette. Fills are light, inks dark: every ink is drawn only on the
// fills it is paired with in inks, and each pair meets WCAG 2.x AA for
// text (4.5:1, success criterion 1.4.3; TestContrast). The outcome is
// never told by colour alone: each has its symbol and shape too.
var (
	white      = rgb{0xff, 0xff, 0xff}
	textInk    = rgb{0x1a, 0x1a, 0x1a}
	mutedInk   = rgb{0x4d, 0x4d, 0x4d}
	gridLine   = rgb{0x76, 0x76, 0x76} // non-text: 3:1 on white (SC 1.4.11)
	goodFill   = rgb{0xdc, 0xf2, 0xdc}
	goodInk    = rgb{0x0b, 0x55, 0x1c}
	badFill    = rgb{0xfb, 0xe0, 0xe0}
	badInk     = rgb{0x9b, 0x14, 0x14}
	noneFill   = rgb{0xf0, 0xf0, 0xf0}
	noneInk    = rgb{0x4a, 0x4a, 0x4a}
	brokenFill = rgb{0xfd, 0xeb, 0xc8}
	brokenInk  = rgb{0x7a, 0x3e, 0x00}
	windowFill = rgb{0xe4, 0xe9, 0xf5}
	windowInk  = rgb{0x1f, 0x3a, 0x6e}
	headFill   = rgb{0xe8, 0xe8, 0xe8}
	misfitInk  = rgb{0xa8, 0x00, 0x1e}
)

// ink is a text colour on the fill it is drawn on.
type ink struct{ fg, bg rgb }

// inks are every pairing of text and fill the drawings use (and nothing
// else: draw.go names its text colours through these).
var (
	inkText     = ink{textInk, white}
	inkMuted    = ink{mutedInk, white}
	inkHead     = ink{textInk, headFill}
	inkGood     = ink{goodInk, goodFill}
	inkBad      = ink{badInk, badFill}
	inkNone     = ink{noneInk, noneFill}
	inkBroken   = ink{brokenInk, brokenFill}
	inkWindow   = ink{windowInk, windowFill}
	inkMisfit   = ink{misfitInk, white}
	inkMisfitOn = ink{misfitInk, badFill}
	inkGoodText = ink{goodInk, white}
	inkBadText  = ink{badInk, white}
	inkBrokenOn = ink{brokenInk, white}
	inkNoneText = ink{noneInk, white}
	inkTextOnW  = ink{textInk, windowFill}
	inkWindowW  = ink{windowInk, white}
)

// allInks lists the pairs for TestContrast.
var allInks = map[string]ink{
	"text": inkText, "muted": inkMuted, "head": inkHead, "good": inkGood, "bad": inkBad, "none": inkNone,
	"broken": inkBroken, "window": inkWindow, "misfit": inkMisfit, "misfit-on-bad": inkMisfitOn,
	"good-on-white": inkGoodText, "bad-on-white": inkBadText, "broken-on-white": inkBrokenOn,
	"none-on-white": inkNoneText, "text-on-window": inkTextOnW, "window-on-white": inkWindowW,
}

// luminance is the relative luminance of WCAG 2.x (its definition of
// "relative luminance", sRGB).
func luminance(c rgb) float64 {
	ch := func(v uint8) float64 {
		s := float64(v) / 255
		if s <= 0.04045 {
			return s / 12.92
		}
		return math.Pow((s+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(c.r) + 0.7152*ch(c.g) + 0.0722*ch(c.b)
}

// contrast is the WCAG contrast ratio of two colours, 1 to 21.
func contrast(a, b rgb) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// ContrastRatio is the WCAG 2.x contrast ratio of two CSS colours in hex
// ("#rgb" or "#rrggbb"), for the tests of the pages' style sheets.
func ContrastRatio(a, b string) (float64, error) {
	ca, err := parseHex(a)
	if err != nil {
		return 0, err
	}
	cb, err := parseHex(b)
	if err != nil {
		return 0, err
	}
	return contrast(ca, cb), nil
}

// ErrColour is a colour ContrastRatio cannot read.
var ErrColour = errors.New("matrix: not a hex colour")

func parseHex(s string) (rgb, error) {
	h := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "#")
	if len(h) == 3 {
		h = string([]byte{h[0], h[0], h[1], h[1], h[2], h[2]})
	}
	if len(h) != 6 {
		return rgb{}, fmt.Errorf("%w: %q", ErrColour, s)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return rgb{}, fmt.Errorf("%w: %q", ErrColour, s)
	}
	return rgb{uint8(v >> 16), uint8(v >> 8), uint8(v)}, nil
}
