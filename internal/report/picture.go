package report

import (
	htmltemplate "html/template"
	"net/url"
	"strings"

	"github.com/mailsec/mailsec/internal/matrix"
)

// MatrixSVG is the persona matrix as inline SVG (the web report and the
// live page).
func (r Report) MatrixSVG() htmltemplate.HTML {
	return htmltemplate.HTML(r.Picture.MatrixSVG(r.pictureLabels)) //nolint:gosec // matrix escapes every string it writes
}

// TimelineSVG is the timeline of the connections as inline SVG.
func (r Report) TimelineSVG() htmltemplate.HTML {
	return htmltemplate.HTML(r.Picture.TimelineSVG(r.pictureLabels, r.location)) //nolint:gosec // as MatrixSVG
}

// MailImageURL is the cid: URL of the picture's PNG in the result mail
// (RFC 2392), which html/template would otherwise refuse as an unknown
// scheme.
func (r Report) MailImageURL() htmltemplate.URL {
	return htmltemplate.URL("cid:" + strings.ReplaceAll(url.PathEscape(r.MailImage), "@", "%40")) //nolint:gosec // our own Content-ID, escaped
}

// PictureTitle is the persona matrix's title.
func (r Report) PictureTitle() string { return r.pictureLabels.Get(matrix.LabelMatrixTitle) }

// PictureText is the persona matrix as a fixed-width table (the result
// mail's plain text).
func (r Report) PictureText() string { return r.Picture.Text(r.pictureLabels) }

// PictureSummary is the picture in words: the mail image's alt text.
func (r Report) PictureSummary() string { return r.Picture.Summary(r.pictureLabels) }

// PicturePNG is the matrix above the timeline as one PNG, with its size
// in CSS pixels, for the result mail.
func (r Report) PicturePNG() ([]byte, int, int, error) {
	return r.Picture.PNG(r.pictureLabels, r.location)
}

// PictureLabels are the labels the picture is drawn with (nil: English),
// for a caller drawing it again (the live page's updates).
func (r Report) PictureLabels() matrix.Labels { return r.pictureLabels }
