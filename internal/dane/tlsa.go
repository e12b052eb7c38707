// Package dane authenticates TLS servers of SMTP by DANE TLSA records
// (RFC 6698, updated by RFC 7671 for operations and RFC 7672 for SMTP).
//
// # Protocol
//
// A domain publishes, in a DNSSEC-signed zone, TLSA records at
// _25._tcp.<mx host> (RFC 6698 §3, RFC 7672 §2.2.3). Each record has
// four fields:
//
//	usage         0 PKIX-TA, 1 PKIX-EE, 2 DANE-TA, 3 DANE-EE   (RFC 6698 §2.1.1, RFC 7218)
//	selector      0 the whole certificate, 1 its SubjectPublicKeyInfo (RFC 6698 §2.1.2)
//	matching type 0 the data itself, 1 SHA2-256, 2 SHA2-512     (RFC 6698 §2.1.3)
//	data          the certificate association data
//
// For SMTP only usages DANE-TA(2) and DANE-EE(3) are usable; PKIX-TA(0)
// and PKIX-EE(1) are not, because there are no agreed public CAs for
// SMTP (RFC 7672 §3.1.3). Records with an unknown usage, selector or
// matching type, or with a digest of the wrong length, are unusable too
// (RFC 7671 §4.1, §9). A TLSA RRset with no usable record is as good as
// none for authentication (RFC 7672 §2.2: the client still insists on
// TLS, but cannot authenticate).
//
//   - DANE-EE(3) (RFC 7672 §3.1.1, RFC 7671 §5.1): the server's own
//     certificate (or key) matches. Nothing else is checked: neither the
//     names in the certificate nor its validity dates, and no chain.
//   - DANE-TA(2) (RFC 7672 §3.1.2, RFC 7671 §5.2): a certificate of the
//     chain the server sends (or its key) matches and serves as trust
//     anchor; the server certificate must chain up to it, be within its
//     validity dates, and carry the reference identifier — the TLSA base
//     domain, i.e. the MX host name (RFC 7672 §3.2.2) — in a DNS
//     subjectAltName (wildcards as in RFC 6125).
//
// A connection is authenticated when at least one usable record matches
// (RFC 6698 §4.1).
//
// # What this package does not do
//
// It does not look records up. The caller must only hand in records from
// a DNSSEC-validated ("secure") answer — RFC 7672 §2.2 — and must not use
// DANE when the MX or address records were insecure; internal/sender does
// this with internal/resolver, which trusts the AD bit of a loopback
// validating resolver only. It does not follow CNAMEs to a different TLSA
// base domain (RFC 7672 §2.2.2): the caller passes the MX host name.
//
// # Record type
//
// TLSA is a small struct of this package rather than miekg/dns's type: the
// data is bytes (miekg keeps a hex string), the fields are typed, and the
// verification code does not depend on the DNS library (miekg/dns v1 is
// in maintenance; v2 lives elsewhere). FromRR converts.
package dane

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// Usage is the certificate usage field (RFC 6698 §2.1.1).
type Usage uint8

// Certificate usages (RFC 7218 acronyms).
const (
	UsagePKIXTA Usage = 0 // unusable for SMTP (RFC 7672 §3.1.3)
	UsagePKIXEE Usage = 1 // unusable for SMTP (RFC 7672 §3.1.3)
	UsageDANETA Usage = 2
	UsageDANEEE Usage = 3
)

// usageNames are the mnemonics of RFC 7218 §2.1.
var usageNames = [...]string{UsagePKIXTA: "PKIX-TA", UsagePKIXEE: "PKIX-EE", UsageDANETA: "DANE-TA", UsageDANEEE: "DANE-EE"}

func (u Usage) String() string { return mnemonic(usageNames[:], uint8(u), "usage") }

// Selector says what part of a certificate is matched (RFC 6698 §2.1.2).
type Selector uint8

// Selectors.
const (
	SelectorCert Selector = 0 // the full certificate (DER)
	SelectorSPKI Selector = 1 // the SubjectPublicKeyInfo (DER)
)

// selectorNames are the mnemonics of RFC 7218 §2.2.
var selectorNames = [...]string{SelectorCert: "Cert", SelectorSPKI: "SPKI"}

func (s Selector) String() string { return mnemonic(selectorNames[:], uint8(s), "selector") }

// MatchingType says how the selected data is compared (RFC 6698 §2.1.3).
type MatchingType uint8

// Matching types.
const (
	MatchFull   MatchingType = 0 // exact match of the selected data
	MatchSHA256 MatchingType = 1 // SHA2-256 of the selected data
	MatchSHA512 MatchingType = 2 // SHA2-512 of the selected data
)

// matchingTypeNames are the mnemonics of RFC 7218 §2.3.
var matchingTypeNames = [...]string{MatchFull: "Full", MatchSHA256: "SHA2-256", MatchSHA512: "SHA2-512"}

func (m MatchingType) String() string {
	return mnemonic(matchingTypeNames[:], uint8(m), "matching type")
}

// mnemonic names field value v by names, or as "<field> <number>" when
// it has no name (a value unassigned in the IANA registry).
func mnemonic(names []string, v uint8, field string) string {
	if int(v) < len(names) {
		return names[v]
	}
	return field + " " + strconv.Itoa(int(v))
}

// TLSA is one TLSA record's data (RFC 6698 §2.1).
type TLSA struct {
	Usage        Usage
	Selector     Selector
	MatchingType MatchingType
	Data         []byte
}

// String gives the presentation form "3 1 1 <hex>" (RFC 6698 §2.2).
func (r TLSA) String() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, hex.EncodeToString(r.Data))
}

// Short is String with the data cut to 16 hex digits, for logs.
func (r TLSA) Short() string {
	h := hex.EncodeToString(r.Data)
	if len(h) > 16 {
		h = h[:16] + "…"
	}
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, h)
}

// Errors of record conversion and parsing.
var ErrBadRecord = errors.New("dane: malformed TLSA record")

// ParseTLSA parses the presentation form "usage selector mtype hexdata"
// (the hex may contain white space, RFC 6698 §2.2).
func ParseTLSA(s string) (TLSA, error) {
	f := strings.Fields(s)
	if len(f) < 4 {
		return TLSA{}, fmt.Errorf("%w: %q: want 4 fields", ErrBadRecord, s)
	}
	var n [3]uint8
	for i := range n {
		v, err := strconv.ParseUint(f[i], 10, 8)
		if err != nil {
			return TLSA{}, fmt.Errorf("%w: field %d of %q", ErrBadRecord, i+1, s)
		}
		n[i] = uint8(v)
	}
	data, err := hex.DecodeString(strings.Join(f[3:], ""))
	if err != nil {
		return TLSA{}, fmt.Errorf("%w: data of %q: %w", ErrBadRecord, s, err)
	}
	return TLSA{Usage: Usage(n[0]), Selector: Selector(n[1]), MatchingType: MatchingType(n[2]), Data: data}, nil
}

// FromRR converts a miekg/dns TLSA record.
func FromRR(rr *dns.TLSA) (TLSA, error) {
	data, err := hex.DecodeString(rr.Certificate)
	if err != nil {
		return TLSA{}, fmt.Errorf("%w: %s: %w", ErrBadRecord, rr.Hdr.Name, err)
	}
	return TLSA{Usage: Usage(rr.Usage), Selector: Selector(rr.Selector), MatchingType: MatchingType(rr.MatchingType), Data: data}, nil
}

// FromRRs converts the TLSA records among rrs (other types, such as the
// RRSIGs and CNAMEs of an answer, are skipped). Records whose data is not
// hex are dropped and counted in malformed; from the wire that cannot
// happen.
func FromRRs(rrs []dns.RR) (records []TLSA, malformed int) {
	for _, rr := range rrs {
		t, ok := rr.(*dns.TLSA)
		if !ok {
			continue
		}
		r, err := FromRR(t)
		if err != nil {
			malformed++
			continue
		}
		records = append(records, r)
	}
	return records, malformed
}

// Compute returns the record of the given kind for cert, e.g. the "3 1 1"
// record of a server certificate.
func Compute(u Usage, s Selector, m MatchingType, cert *x509.Certificate) (TLSA, error) {
	data, err := associationData(s, m, cert)
	if err != nil {
		return TLSA{}, err
	}
	return TLSA{Usage: u, Selector: s, MatchingType: m, Data: data}, nil
}

// associationData selects and digests cert (RFC 6698 §2.1.2, §2.1.3).
func associationData(s Selector, m MatchingType, cert *x509.Certificate) ([]byte, error) {
	var sel []byte
	switch s {
	case SelectorCert:
		sel = cert.Raw
	case SelectorSPKI:
		sel = cert.RawSubjectPublicKeyInfo
	default:
		return nil, fmt.Errorf("%w: unknown %v", ErrBadRecord, s)
	}
	switch m {
	case MatchFull:
		return append([]byte(nil), sel...), nil
	case MatchSHA256:
		sum := sha256.Sum256(sel)
		return sum[:], nil
	case MatchSHA512:
		sum := sha512.Sum512(sel)
		return sum[:], nil
	}
	return nil, fmt.Errorf("%w: unknown %v", ErrBadRecord, m)
}

// Unusable tells why a record cannot be used to authenticate an SMTP
// server, or "" if it can (RFC 7672 §3.1.3; RFC 7671 §4.1).
func (r TLSA) Unusable() string {
	switch r.Usage {
	case UsageDANETA, UsageDANEEE:
	case UsagePKIXTA, UsagePKIXEE:
		return fmt.Sprintf("usage %v is not used for SMTP (RFC 7672 §3.1.3)", r.Usage)
	default:
		return fmt.Sprintf("unknown %v", r.Usage)
	}
	if r.Selector != SelectorCert && r.Selector != SelectorSPKI {
		return fmt.Sprintf("unknown %v", r.Selector)
	}
	switch r.MatchingType {
	case MatchFull:
		if len(r.Data) == 0 {
			return "empty data"
		}
	case MatchSHA256:
		if len(r.Data) != sha256.Size {
			return fmt.Sprintf("SHA2-256 data of %d octets, want %d", len(r.Data), sha256.Size)
		}
	case MatchSHA512:
		if len(r.Data) != sha512.Size {
			return fmt.Sprintf("SHA2-512 data of %d octets, want %d", len(r.Data), sha512.Size)
		}
	default:
		return fmt.Sprintf("unknown %v", r.MatchingType)
	}
	return ""
}

// Usable returns the records usable for SMTP, in order.
func Usable(records []TLSA) []TLSA {
	var out []TLSA
	for _, r := range records {
		if r.Unusable() == "" {
			out = append(out, r)
		}
	}
	return out
}
