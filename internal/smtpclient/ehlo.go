package smtpclient

import "strings"

// EHLO is a server's answer to EHLO (RFC 5321 §4.1.1.1): its name and
// greeting on the first line, one extension per further line.
type EHLO struct {
	// Greeting is the first line: the server's domain and free text.
	Greeting string
	// Extensions in the server's order, at most one per line.
	Extensions []Extension
}

// Extension is one line of an EHLO reply after the first: "ehlo-keyword
// *( SP ehlo-param )" (RFC 5321 §4.1.1.1).
type Extension struct {
	Line    string // as sent, after the code
	Keyword string // upper-cased; "" for a blank line
	Params  string // the rest after the first space
}

// ParseEHLO reads the extensions of a 250 reply to EHLO.
func ParseEHLO(r Reply) EHLO {
	var e EHLO
	if len(r.Lines) == 0 {
		return e
	}
	e.Greeting = r.Lines[0]
	for _, l := range r.Lines[1:] {
		kw, params, _ := strings.Cut(strings.TrimSpace(l), " ")
		e.Extensions = append(e.Extensions, Extension{Line: l, Keyword: strings.ToUpper(kw), Params: params})
	}
	return e
}

// Has tells whether the server offers the extension keyword (any case;
// RFC 5321 §2.4: keywords are case-insensitive).
func (e EHLO) Has(keyword string) bool {
	_, ok := e.Param(keyword)
	return ok
}

// Param returns the parameters of the extension keyword, if offered (the
// first line that names it).
func (e EHLO) Param(keyword string) (string, bool) {
	for _, x := range e.Extensions {
		if x.Keyword != "" && strings.EqualFold(x.Keyword, keyword) {
			return x.Params, true
		}
	}
	return "", false
}
