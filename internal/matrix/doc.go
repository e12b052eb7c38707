// Package matrix draws the verdict as a picture (issue 19): the persona
// matrix — one column per host of the policy table (personas 1–7, the
// broken-DNSSEC host, the MTA-STS policy fetch), the sender's observed
// behaviour in each (delivered ✓, refused ✗, never contacted –, with the
// attempt numbers), beside the rows the policy table expects for the
// verdict and for the nearest other policies — and a timeline of the
// attempts (one mark per connection on a time axis, by outcome, the
// downgrade window shaded).
//
// It is pure: Build turns the verdict and the connections into a Picture;
// MatrixSVG and TimelineSVG write SVG for the web (no JavaScript: the
// page shows it inline), PNG one raster image of both for the result mail
// (mail clients strip inline SVG), Text the matrix as a fixed-width table
// for the plain-text part. The table and the classification of each
// connection come from internal/verdict (TableColumns, Expected,
// Contacts): the picture never tells a different story from the verdict.
//
// Every word drawn is a label looked up through Labels (a func(key)
// string; English is the default set, labels.go), so translations plug in
// without touching the drawing. Colour is never the only signal: every
// outcome has its own symbol and shape and a <title> for screen readers,
// the SVG carries role="img" and an aria-label summarising it, and every
// text colour meets WCAG 2.x AA contrast (4.5:1) on the fill it is drawn
// on (palette.go; TestContrast).
package matrix
