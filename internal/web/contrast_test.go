package web

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/matrix"
)

// TestContrastAA: every text colour of the pages meets WCAG 2.x AA (4.5:1,
// SC 1.4.3) on every background it can be drawn on: a rule's own colour
// on its own background; the colours of rules without a background (and
// the inline colours of the report, which sits on the verdict's colour,
// and the body's) on every background of the style sheet and the report.
func TestContrastAA(t *testing.T) {
	css, err := os.ReadFile("static/style.css")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := os.ReadFile("../report/templates/report.html.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	colourRe := regexp.MustCompile(`(?:^|[;{}"])\s*color:\s*(#[0-9a-fA-F]{3,6})`)
	backRe := regexp.MustCompile(`background:\s*(#[0-9a-fA-F]{3,6})`)
	type pair struct{ fg, bg, where string }
	var pairs []pair
	var free []string            // text colours without their own background
	backs := []string{"#ffffff"} // the page's own
	body := "#000000"
	own := map[string]string{} // selector → its background
	for _, rule := range regexp.MustCompile(`([^{}]+)\{([^}]*)\}`).FindAllStringSubmatch(string(css), -1) {
		sel, decl := strings.TrimSpace(rule[1]), "{"+rule[2]
		fg, bg := colourRe.FindStringSubmatch(decl), backRe.FindStringSubmatch(decl)
		if bg != nil {
			own[sel] = bg[1]
		}
		// "header a" sits on header's background.
		ancestor, _, nested := strings.Cut(sel, " ")
		switch {
		case fg != nil && bg != nil:
			pairs = append(pairs, pair{fg[1], bg[1], sel})
		case fg != nil && nested && own[ancestor] != "":
			pairs = append(pairs, pair{fg[1], own[ancestor], sel})
		case fg != nil && sel == "body":
			body = fg[1]
		case fg != nil:
			free = append(free, fg[1])
		case bg != nil:
			backs = append(backs, bg[1])
		}
	}
	for _, m := range colourRe.FindAllStringSubmatch(string(tmpl), -1) {
		free = append(free, m[1])
	}
	for _, m := range backRe.FindAllStringSubmatch(string(tmpl), -1) {
		backs = append(backs, m[1])
	}
	if len(free) < 5 || len(backs) < 6 || len(pairs) < 1 {
		t.Fatalf("parsed %d colours, %d backgrounds, %d pairs: the parser missed the style sheet", len(free), len(backs), len(pairs))
	}
	for _, fg := range append(free, body) {
		for _, bg := range backs {
			pairs = append(pairs, pair{fg, bg, "text on a background"})
		}
	}
	for _, p := range pairs {
		r, err := matrix.ContrastRatio(p.fg, p.bg)
		if err != nil {
			t.Fatal(err)
		}
		if r < 4.5 {
			t.Errorf("%s: %s on %s has contrast %.2f:1, below WCAG AA's 4.5:1", p.where, p.fg, p.bg, r)
		}
	}
}
