// Package csvsafe makes text safe to put in a CSV cell that a spreadsheet
// will open: a cell whose first character makes Excel, LibreOffice or
// Google Sheets read it as a formula (OWASP "CSV injection") is prefixed
// with an apostrophe, which those programs show as text. The scan's CSV
// and the provider table's CSV share it.
package csvsafe

import "strings"

// formulaStarts are the first characters a spreadsheet may read as the
// start of a formula: = + - @, and tab and carriage return, after which
// some programs look again.
const formulaStarts = "=+-@\t\r"

// Cell returns s, prefixed with an apostrophe if a spreadsheet would take
// it for a formula.
func Cell(s string) string {
	if s != "" && strings.ContainsRune(formulaStarts, rune(s[0])) {
		return "'" + s
	}
	return s
}
