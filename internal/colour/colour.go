// Package colour is the seed's colour code (DESIGN.md §1.3): the one-word
// summary mailsec gives of a sending and of a receiving mail domain, in the
// result mail, on the web pages, in the provider table and in a bulk scan.
// Every package shows the same five values through this one type.
//
// For a sender (the outbound test; internal/report.PolicyColour maps the
// verdict's policy onto it):
//
//   - red: sends in plain text, or encrypts only where STARTTLS is offered
//     (an attacker who strips STARTTLS reads everything);
//   - yellow: enforces encryption but accepts any certificate;
//   - white: enforces valid certificates (PKIX, or an MTA-STS policy);
//   - green: validates RFC 7672 DANE;
//   - grey: see the comments (not settled yet, or no policy fits).
//
// For a receiving domain (the inbound check, internal/inbound/checkreport;
// the rule is in docs/inbound.md):
//
//   - red: no encryption (a tested mail server without working STARTTLS);
//   - yellow: encryption without trusted certificates;
//   - white: encryption with valid certificates;
//   - green: RFC 7672 DANE or qualified transport encryption (DNSSEC-secure
//     MX and address records, STARTTLS, trusted certificates);
//   - grey: see the comments (not testable, no mail server, DNSSEC bogus,
//     TLSA records that match nothing).
package colour

// Colour is one of the five colours. Its JSON and text form is the
// lower-case English name ("green"), as every stored document and API
// response has it.
type Colour string

// The colours, from worst to best, and grey beside them.
const (
	Red    Colour = "red"
	Yellow Colour = "yellow"
	White  Colour = "white"
	Green  Colour = "green"
	Grey   Colour = "grey"
)

// Known tells whether c is one of the five colours. Colours read from a
// stored document or another program may be anything; callers show those
// as Grey.
func (c Colour) Known() bool {
	switch c {
	case Red, Yellow, White, Green, Grey:
		return true
	}
	return false
}
