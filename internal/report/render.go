package report

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	"io"
	"strings"
	"text/template"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/verdict"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// funcs are the templates' functions: t is a message of the catalogues
// (internal/i18n) in the report's language, {{t .Lang "key" args…}};
// indent and wrap lay out the text part.
var funcs = map[string]any{
	"t": func(l i18n.Lang, key string, args ...any) string { return i18n.T(l, key, args...) },
	"indent": func(s string) string {
		return "    " + strings.ReplaceAll(s, "\n", "\n    ")
	},
	"wrap": wrap,
}

// The templates are parsed once; a parse error is a programming error
// caught by every test.
var (
	htmlTmpl = htmltemplate.Must(htmltemplate.New("report.html.tmpl").Funcs(funcs).ParseFS(templateFS, "templates/report.html.tmpl"))
	textTmpl = template.Must(template.New("report.txt.tmpl").Funcs(funcs).ParseFS(templateFS, "templates/report.txt.tmpl"))
)

// wrap breaks s into lines of at most 72 characters at spaces (the text
// part's legend; RFC 5322 §2.1.1 recommends 78).
func wrap(s string) string {
	var b strings.Builder
	n := 0
	for i, w := range strings.Fields(s) {
		switch {
		case i == 0:
		case n+1+len([]rune(w)) > 72:
			b.WriteByte('\n')
			n = 0
		default:
			b.WriteByte(' ')
			n++
		}
		b.WriteString(w)
		n += len([]rune(w))
	}
	return b.String()
}

// Proven are the findings seen in the connections.
func (r Report) Proven() []Sentence { return r.withConfidence(verdict.Proven) }

// Likely are the findings inferred from what did not happen.
func (r Report) Likely() []Sentence { return r.withConfidence(verdict.Likely) }

func (r Report) withConfidence(c verdict.Confidence) []Sentence {
	var out []Sentence
	for _, s := range r.Outbound {
		if s.Confidence == c || c == verdict.Proven && s.Confidence == "" {
			out = append(out, s)
		}
	}
	return out
}

// Advice is what to change, once per kind of finding, in the order of the
// findings.
func (r Report) Advice() []Advice {
	var out []Advice
	seen := map[string]bool{}
	for _, s := range r.Outbound {
		if s.Advice != nil && !seen[s.Advice.Key] {
			seen[s.Advice.Key] = true
			out = append(out, *s.Advice)
		}
	}
	return out
}

// Text renders the report as the result mail's plain-text part.
func Text(r Report) (string, error) {
	var b bytes.Buffer
	if err := textTmpl.ExecuteTemplate(&b, "text", r); err != nil {
		return "", err
	}
	return b.String(), nil
}

// HTML renders the report as a whole HTML document (the result mail's
// HTML part). Styles are inline: mail clients drop style sheets.
func HTML(r Report) (string, error) {
	var b bytes.Buffer
	if err := htmlTmpl.ExecuteTemplate(&b, "mail", r); err != nil {
		return "", err
	}
	return b.String(), nil
}

// WriteFragment writes the report's body (without <html>) for a web page.
func WriteFragment(w io.Writer, r Report) error {
	return htmlTmpl.ExecuteTemplate(w, "report", r)
}

// Fragment is WriteFragment into a string that html/template embeds
// unescaped (it was escaped when rendered).
func Fragment(r Report) (htmltemplate.HTML, error) {
	var b bytes.Buffer
	if err := WriteFragment(&b, r); err != nil {
		return "", err
	}
	return htmltemplate.HTML(b.String()), nil //nolint:gosec // rendered by html/template above
}
