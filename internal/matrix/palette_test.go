package matrix

import (
	"math"
	"strings"
	"testing"
)

// TestContrast: every text colour on the fill it is drawn on meets WCAG
// 2.x AA for text (4.5:1, SC 1.4.3); the grid and the outlines of
// shapes, non-text, 3:1 on white (SC 1.4.11). The ratio itself is checked
// against known values first.
func TestContrast(t *testing.T) {
	for _, c := range []struct {
		a, b rgb
		want float64
	}{
		{rgb{0, 0, 0}, rgb{0xff, 0xff, 0xff}, 21},
		{rgb{0xff, 0xff, 0xff}, rgb{0xff, 0xff, 0xff}, 1},
		{rgb{0x76, 0x76, 0x76}, rgb{0xff, 0xff, 0xff}, 4.54},
		{rgb{0x77, 0x77, 0x77}, rgb{0xff, 0xff, 0xff}, 4.48},
	} {
		if got := contrast(c.a, c.b); math.Abs(got-c.want) > 0.01 {
			t.Errorf("contrast(%s, %s) = %.3f, want %.2f", c.a.hex(), c.b.hex(), got, c.want)
		}
	}
	for name, k := range allInks {
		if r := contrast(k.fg, k.bg); r < 4.5 {
			t.Errorf("ink %s: %s on %s has contrast %.2f:1, below WCAG AA's 4.5:1", name, k.fg.hex(), k.bg.hex(), r)
		}
	}
	for _, fill := range []rgb{white, goodFill, badFill, noneFill, brokenFill, windowFill, headFill} {
		if r := contrast(gridLine, fill); r < 3 {
			t.Errorf("grid %s on %s: %.2f:1, below 3:1", gridLine.hex(), fill.hex(), r)
		}
	}
}

func TestContrastRatio(t *testing.T) {
	if r, err := ContrastRatio("#000", "#ffffff"); err != nil || math.Abs(r-21) > 0.01 {
		t.Errorf("black on white: %v %v", r, err)
	}
	for _, bad := range []string{"", "red", "#12", "#gggggg", "#1234567"} {
		if _, err := ContrastRatio(bad, "#fff"); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestGermanLabels: the German set has every label key, and none of its
// sentences is left in English.
func TestGermanLabels(t *testing.T) {
	for _, k := range Keys() {
		g, ok := german[k]
		if !ok || g == "" {
			t.Errorf("German label %s missing", k)
		}
		if len(strings.Fields(g)) > 1 && g == english[k] && !strings.HasPrefix(k, "column.") { // "7 (B)", "CA + TLSA" are names
			t.Errorf("German label %s is the English %q", k, g)
		}
	}
	for k := range german {
		if _, ok := english[k]; !ok {
			t.Errorf("German label %s has no English", k)
		}
	}
}
