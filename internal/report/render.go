package report

import (
	"bytes"
	"embed"
	htmltemplate "html/template"
	"io"
	"text/template"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// The templates are parsed once; a parse error is a programming error
// caught by every test.
var (
	htmlTmpl = htmltemplate.Must(htmltemplate.ParseFS(templateFS, "templates/report.html.tmpl"))
	textTmpl = template.Must(template.ParseFS(templateFS, "templates/report.txt.tmpl"))
)

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
