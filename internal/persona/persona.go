// Package persona describes the receiving "personas" of the outbound test
// (DESIGN.md §2) and keeps their private keys.
//
// A persona is one virtual MX host of zone A or B with its own STARTTLS,
// certificate and TLSA set-up. Which personas a sender delivers to, refuses or
// never contacts reveals its TLS policy. The table is fixed knowledge shared by
// the DNS zones (which publish MX, TLSA and the MTA-STS policy from it), the
// SMTP listeners (which serve it) and the verdict (which reads it).
package persona

import (
	"fmt"
)

// Zone tells the two test zones apart.
type Zone int

// The test zones of DESIGN.md §2.
const (
	ZoneA Zone = iota + 1 // DNSSEC-signed, TLSA, MTA-STS, TLS-RPT
	ZoneB                 // no TLSA, no MTA-STS
)

func (z Zone) String() string {
	switch z {
	case ZoneA:
		return "A"
	case ZoneB:
		return "B"
	}
	return fmt.Sprintf("Zone(%d)", int(z))
}

// Cert is the kind of certificate a persona serves.
type Cert int

// Certificate kinds.
const (
	CertNone       Cert = iota // plain-text persona
	CertSelfSigned             // not PKIX-valid; may match DANE-EE
	CertCASigned               // from the ACME CA: PKIX-valid for its host name
)

// TLSA is what zone A publishes at _25._tcp.<host>.
type TLSA int

// TLSA kinds.
const (
	TLSANone    TLSA = iota // no TLSA record
	TLSAWrong               // a 3 1 1 record that matches no key we serve
	TLSACorrect             // DANE-EE 3 1 1 of the persona's key (RFC 7671 §5.1)
)

// Persona is one row of the server table.
type Persona struct {
	Number   int    // 1..7, as in the seed's result mails ("Server 4")
	Zone     Zone   // zone of its MX record
	Host     string // first label of its MX host ("mx4"); "" for personas without an own host
	STARTTLS bool   // reached only through STARTTLS
	SNI      bool   // selected by SNI (its host name)
	Cert     Cert
	TLSA     TLSA
	InMTASTS bool // listed in the mx lines of zone A's MTA-STS policy
}

// HasKey tells whether the persona serves a certificate of its own, whose
// private key is kept by Keys.
func (p Persona) HasKey() bool { return p.Cert != CertNone }

// Table returns the server table of DESIGN.md §2, ordered by number. It
// returns a fresh slice on each call so that callers cannot change the
// shared knowledge.
func Table() []Persona {
	return []Persona{
		{Number: 1, Zone: ZoneA},
		{Number: 2, Zone: ZoneA, STARTTLS: true, Cert: CertSelfSigned},
		{Number: 3, Zone: ZoneA, Host: "mx3", STARTTLS: true, SNI: true, Cert: CertSelfSigned, TLSA: TLSAWrong},
		{Number: 4, Zone: ZoneA, Host: "mx4", STARTTLS: true, SNI: true, Cert: CertSelfSigned, TLSA: TLSACorrect, InMTASTS: true},
		{Number: 5, Zone: ZoneA, Host: "mx5", STARTTLS: true, SNI: true, Cert: CertCASigned, TLSA: TLSAWrong, InMTASTS: true},
		{Number: 6, Zone: ZoneA, Host: "mx6", STARTTLS: true, SNI: true, Cert: CertCASigned, TLSA: TLSACorrect, InMTASTS: true},
		{Number: 7, Zone: ZoneB, Host: "mx7", STARTTLS: true, SNI: true, Cert: CertCASigned},
	}
}

// ByNumber returns the persona with number n.
func ByNumber(n int) (Persona, bool) {
	for _, p := range Table() {
		if p.Number == n {
			return p, true
		}
	}
	return Persona{}, false
}

// MXHosts returns the personas that have an MX record in zone z, in number
// order: mx3..mx6 for A, mx7 for B.
func MXHosts(z Zone) []Persona {
	var out []Persona
	for _, p := range Table() {
		if p.Zone == z && p.Host != "" {
			out = append(out, p)
		}
	}
	return out
}
