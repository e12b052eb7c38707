package report

import (
	"time"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/verdict"
)

// Cell is one cell of the provider table: "yes", "no" or "?" with its
// colour.
type Cell struct {
	Value  string        `json:"value"`
	Colour colour.Colour `json:"colour"`
}

// ProviderRow is one line of the public provider table, in the seed's
// columns (Encryption, Adequate Certificates, RFC 7672, Encryption
// mandatory, DKIM, ARC, Comments).
type ProviderRow struct {
	Domain              string        `json:"domain"`
	Tested              time.Time     `json:"tested,omitzero"`
	Policy              string        `json:"policy"`
	Colour              colour.Colour `json:"colour"`
	Encryption          Cell          `json:"encryption"`
	AdequateCertificate Cell          `json:"adequate_certificates"`
	RFC7672             Cell          `json:"rfc7672"`
	EncryptionMandatory Cell          `json:"encryption_mandatory"`
	DKIM                Cell          `json:"dkim"`
	ARC                 Cell          `json:"arc"`
	InboundColour       colour.Colour `json:"inbound_colour,omitempty"`
	// InboundChecked is when the inbound check that gave InboundColour
	// ran (absent without one).
	InboundChecked time.Time `json:"inbound_checked,omitzero"`
	Comments       string    `json:"comments"`
	// OperatorComment and Footnotes are the operator's notes on the
	// provider (web.provider_notes_file, internal/providernotes).
	OperatorComment string   `json:"operator_comment,omitempty"`
	Footnotes       []string `json:"footnotes,omitempty"`
}

// Provider builds a provider's row from its latest final verdict and the
// latest inbound check of its domain (nil: none); ok is false for a
// provider without a test yet (the row then says so).
func Provider(domain string, tested time.Time, v verdict.Verdict, ok bool, inbound *Inbound) ProviderRow {
	row := ProviderRow{Domain: domain, Tested: tested, Policy: string(v.Policy), Colour: VerdictColour(v)}
	unknown := Cell{"?", colour.Grey}
	// The inbound check is the domain's as a receiver: shown beside the
	// outbound verdict, with or without a test.
	if inbound != nil {
		row.InboundColour, row.InboundChecked = inbound.Colour, inbound.CheckedAt
	}
	if !ok {
		row.Policy, row.Colour = "", colour.Grey
		row.Encryption, row.AdequateCertificate, row.RFC7672 = unknown, unknown, unknown
		row.EncryptionMandatory, row.DKIM, row.ARC = unknown, unknown, unknown
		row.Comments = "not tested yet"
		return row
	}
	fact := func(name string) (verdict.Fact, bool) {
		for _, f := range v.Facts {
			if f.Name == name {
				return f, f.Confidence != verdict.Unknown
			}
		}
		return verdict.Fact{}, false
	}
	cell := func(name string, yes, no colour.Colour) Cell {
		f, known := fact(name)
		switch {
		case !known:
			return unknown
		case f.Value && f.Caveat != "":
			// It holds, but a named behaviour defeats it: "yes" (the
			// API's values are yes, no and ?), not in the good colour;
			// the comments name the behaviour.
			return Cell{"yes", colour.Yellow}
		case f.Value:
			return Cell{"yes", yes}
		}
		return Cell{"no", no}
	}
	switch v.Policy {
	case verdict.PolicyNone:
		row.Encryption = Cell{"no", colour.Red}
	case verdict.PolicyUnknown, verdict.PolicyInconsistent:
		row.Encryption = unknown
	default:
		row.Encryption = Cell{"yes", colour.Green}
	}
	pkix, _ := fact(verdict.FactValidatesPKIX)
	dane, _ := fact(verdict.FactValidatesDANE)
	switch {
	case pkix.Confidence != verdict.Unknown && pkix.Value && pkix.Caveat == "", dane.Confidence != verdict.Unknown && dane.Value && dane.Caveat == "":
		row.AdequateCertificate = Cell{"yes", colour.Green}
	case pkix.Confidence != verdict.Unknown && pkix.Value, dane.Confidence != verdict.Unknown && dane.Value:
		// Checked, but a named behaviour defeats the check.
		row.AdequateCertificate = Cell{"yes", colour.Yellow}
	case pkix.Confidence == verdict.Unknown && dane.Confidence == verdict.Unknown:
		row.AdequateCertificate = unknown
	default:
		row.AdequateCertificate = Cell{"no", colour.Yellow}
	}
	row.RFC7672 = cell(verdict.FactValidatesDANE, colour.Green, colour.White)
	row.EncryptionMandatory = cell(verdict.FactEnforcesEncryption, colour.Green, colour.Red)
	row.DKIM = cell(verdict.FactSignsDKIM, colour.Green, colour.White)
	row.ARC = cell(verdict.FactSignsARC, colour.Green, colour.White)
	row.Comments = redactText(v.Why)
	if !v.Complete {
		row.Comments = "not settled: " + row.Comments
	}
	return row
}
