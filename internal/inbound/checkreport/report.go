package checkreport

import (
	"crypto/x509"
	"slices"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/colour"
)

// Schema names the JSON document a Report encodes to. Keys are only ever
// added to it, never renamed or given another meaning (docs/inbound.md).
const Schema = "mailsec.check.v1"

// Severity grades a finding.
type Severity string

// Severities, from best to worst.
const (
	SevGood    Severity = "good"
	SevInfo    Severity = "info"
	SevWarning Severity = "warning"
	SevBad     Severity = "bad"
	SevError   Severity = "error"
)

// DNSSEC is the validation state of an answer (RFC 4033 §5, RFC 4035
// §4.3), as the validating resolver reported it.
type DNSSEC string

// DNSSEC states. Indeterminate means the state could not be learnt: the
// look-up failed for another reason than validation, or the resolver is
// not trusted (not on loopback).
const (
	Secure        DNSSEC = "secure"
	Insecure      DNSSEC = "insecure"
	Bogus         DNSSEC = "bogus"
	Indeterminate DNSSEC = "indeterminate"
)

// MX kinds.
const (
	MXKindMX       = "mx"       // MX records with hosts
	MXKindImplicit = "implicit" // no MX: the domain's own A/AAAA (RFC 5321 §5.1)
	MXKindNull     = "null"     // "MX 0 ." (RFC 7505): the domain takes no mail
	MXKindNone     = "none"     // neither MX nor address records
)

// Address statuses.
const (
	StatusOK          = "ok"           // connected, greeted, EHLO answered
	StatusUnreachable = "unreachable"  // the TCP connection failed
	StatusNotTestable = "not_testable" // 421/4xx, tarpit, rate limit, timeout after connect
	StatusRefused     = "refused"      // not contacted: private or reserved address
	StatusError       = "error"        // the peer does not speak SMTP (protocol error)
)

// DANE states of an address.
const (
	DANEValid     = "valid"      // a usable, secure TLSA record matched
	DANEMismatch  = "mismatch"   // usable secure TLSA records, none matched (or no TLS)
	DANENone      = "none"       // no TLSA records
	DANENotSecure = "not_secure" // TLSA present, but the path to it is not DNSSEC-secure
	DANEUnusable  = "unusable"   // secure TLSA records, but none usable for SMTP
)

// Report is the result of one check, the mailsec.check.v1 document: the
// observations (mx, mta_sts, tls_rpt, spf, dmarc, resolver, incomplete,
// errors, timings) and what Evaluate concluded from them (colour,
// colour_reason, qualified_encryption, findings, sentences). Reports read
// back from the store decode into it whatever version wrote them: keys are
// only ever added.
type Report struct {
	Schema    string    `json:"schema"`
	Domain    string    `json:"domain"` // A-label, no trailing dot
	Input     string    `json:"input"`  // as given
	CheckedAt time.Time `json:"checked_at"`
	Seconds   float64   `json:"seconds"`

	Colour              colour.Colour `json:"colour"`
	ColourReason        string        `json:"colour_reason"`
	QualifiedEncryption bool          `json:"qualified_encryption"`
	Findings            []Finding     `json:"findings"`
	Sentences           []string      `json:"sentences"`

	MX     MXInfo     `json:"mx"`
	MTASTS MTASTSInfo `json:"mta_sts"`
	TLSRPT TLSRPTInfo `json:"tls_rpt"`
	SPF    SPFInfo    `json:"spf"`
	DMARC  DMARCInfo  `json:"dmarc"`

	Timings Timings  `json:"timings_ms"`
	Errors  []string `json:"errors"`
	// Incomplete: the overall deadline ended the check before every step
	// finished; what was not done is in Errors.
	Incomplete bool `json:"incomplete"`

	// Resolver says which resolver answered and whether its AD bit was
	// believed (extension of the contract).
	Resolver ResolverInfo `json:"resolver"`
}

// Finding is one conclusion with its code (docs/inbound.md lists them).
type Finding struct {
	Code     string   `json:"code"`
	Severity Severity `json:"severity"`
	Text     string   `json:"text"`
	Host     string   `json:"host"`
	Address  string   `json:"address"`
}

// ResolverInfo describes the resolver the check used.
type ResolverInfo struct {
	Address  string `json:"address"`
	TrustsAD bool   `json:"trusts_ad"` // on loopback: its AD bit counts
	// ZoneSigned: the domain publishes DNSKEY records. A signed zone whose
	// answers come back insecure means the resolver does not validate or
	// the chain of trust is broken.
	ZoneSigned bool `json:"zone_signed"`
}

// MXInfo is the MX look-up and everything below it.
type MXInfo struct {
	Kind   string `json:"kind"`
	DNSSEC DNSSEC `json:"dnssec"`
	Hosts  []Host `json:"hosts"`
	// Error is why the MX look-up failed ("" if it did not).
	Error string `json:"error,omitempty"`
	// Omitted counts MX hosts beyond the check's limit, not tested.
	Omitted int `json:"omitted,omitempty"`
}

// Host is one MX host (or the domain itself for an implicit MX).
type Host struct {
	Name       string `json:"name"`
	Preference uint16 `json:"preference"`
	// CNAMETarget is where the name leads when it is an alias (RFC 2181
	// §10.3 forbids MX targets that are aliases), "" otherwise.
	CNAMETarget   string    `json:"cname_target"`
	AddressDNSSEC DNSSEC    `json:"address_dnssec"`
	AddressError  string    `json:"address_error,omitempty"`
	TLSA          TLSAInfo  `json:"tlsa"`
	Addresses     []Address `json:"addresses"`
	// OmittedAddresses counts addresses beyond the check's limit.
	OmittedAddresses int `json:"omitted_addresses,omitempty"`
}

// TLSAInfo is the TLSA RRset of a host (RFC 7672 §2.2.3).
type TLSAInfo struct {
	// Name is the name asked for: _25._tcp.<TLSA base domain>.
	Name    string   `json:"name"`
	DNSSEC  DNSSEC   `json:"dnssec"`
	Records []string `json:"records"` // presentation form "3 1 1 ab…"
	Usable  int      `json:"usable"`  // usages 2/3 with known selector and matching type
	Error   string   `json:"error"`
}

// Address is one tested address of an MX host.
type Address struct {
	IP       string      `json:"ip"`
	Status   string      `json:"status"`
	Detail   string      `json:"detail"`
	Banner   string      `json:"banner"`
	EHLO     []string    `json:"ehlo"`
	STARTTLS bool        `json:"starttls"`
	TLS      *TLSInfo    `json:"tls"`
	Cert     *CertInfo   `json:"certificate"`
	DANE     DANEInfo    `json:"dane"`
	Timings  AddrTimings `json:"timings_ms"`
	TLSError string      `json:"tls_error,omitempty"` // why STARTTLS or the handshake failed
	Reply    string      `json:"reply,omitempty"`     // the reply that made it not testable

	// Peer is the chain the server sent in the TLS handshake, kept so that
	// internal/inbound can judge DANE once the TLSA records are in. It is
	// not part of the document (not encoded, nil when decoded).
	Peer []*x509.Certificate `json:"-"`
}

// TLSInfo is the negotiated TLS session, and what further sessions with
// one protocol version or only weak cipher suites offered showed
// (docs/inbound.md "TLS versions and weak cipher suites").
type TLSInfo struct {
	Version     string `json:"version"`      // "TLS 1.3"
	Cipher      string `json:"cipher"`       // IANA name
	KeyExchange string `json:"key_exchange"` // X25519, P-256, X25519MLKEM768, RSA

	// Versions is the answer to each of TLS 1.0 … 1.3 offered alone, in
	// that order; nil when the versions were not probed (switched off,
	// or a report from before they were).
	Versions []VersionProbe `json:"versions,omitempty"`
	// WeakProbe is the outcome of the session that offered only the weak
	// suites Go implements (WeakSuiteClass): accepted, refused or unknown;
	// "" when it was not made (no version up to TLS 1.2 accepted, or not
	// probed).
	WeakProbe string `json:"weak_probe,omitempty"`
	// WeakCiphers are the weak suites a server chose, in any session.
	WeakCiphers []WeakCipher `json:"weak_ciphers,omitempty"`
}

// Results of a VersionProbe and of TLSInfo.WeakProbe.
const (
	ProbeAccepted = "accepted" // the handshake completed
	ProbeRefused  = "refused"  // the server refused the handshake (an alert, or it closed)
	ProbeUnknown  = "unknown"  // the session ended before the handshake said either
)

// VersionProbe is the server's answer to one protocol version offered
// alone, with every cipher suite.
type VersionProbe struct {
	Version string `json:"version"` // "TLS 1.0"
	Result  string `json:"result"`  // ProbeAccepted, ProbeRefused, ProbeUnknown
	Cipher  string `json:"cipher,omitempty"`
	Detail  string `json:"detail,omitempty"`
}

// WeakCipher is a weak suite a server chose, the version it was chosen
// under, and why it is weak (WeakSuiteClass).
type WeakCipher struct {
	Version string `json:"version"`
	Cipher  string `json:"cipher"`
	Class   string `json:"class"`
}

// LegacyVersions are the versions below TLS 1.2 the server accepted when
// offered alone, or negotiated (RFC 8996 deprecates TLS 1.0 and 1.1).
func (t *TLSInfo) LegacyVersions() []string {
	var out []string
	seen := map[string]bool{}
	add := func(v string) {
		if IsLegacyVersion(v) && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	add(t.Version)
	for _, v := range t.Versions {
		if v.Result == ProbeAccepted {
			add(v.Version)
		}
	}
	slices.Sort(out)
	return out
}

// Weak lists the weak suites the server chose: the negotiated one when
// it is weak, and those in WeakCiphers.
func (t *TLSInfo) Weak() []WeakCipher {
	var out []WeakCipher
	if class := WeakSuiteClass(t.Cipher); class != "" {
		out = append(out, WeakCipher{Version: t.Version, Cipher: t.Cipher, Class: class})
	}
	for _, w := range t.WeakCiphers {
		if !slices.Contains(out, w) {
			out = append(out, w)
		}
	}
	return out
}

// WeakSuiteClass says why a cipher suite, by its IANA name, is weak, or ""
// when it is not. The classes are those testssl.sh (3.0, "-s": NULL,
// aNULL, EXPORT, LOW, 3DES) and internet.nl (NCSC-NL TLS guidelines:
// "insufficient", and 3DES "phase out") report: no encryption (NULL), no
// authentication (anon), export grade (EXPORT), DES and RC2/RC4 (RFC
// 7465 forbids RC4), IDEA and 3DES (64-bit blocks: SWEET32). CBC suites
// with SHA-1 are not counted: both tools rate them "obsolete" or
// "sufficient", not weak, and the check does not grade them.
func WeakSuiteClass(name string) string {
	n := strings.ToUpper(name)
	switch {
	case n == "":
		return ""
	case strings.Contains(n, "_NULL_") || strings.HasSuffix(n, "_NULL"):
		return "NULL"
	case strings.Contains(n, "_ANON_"):
		return "anonymous"
	case strings.Contains(n, "EXPORT"):
		return "EXPORT"
	case strings.Contains(n, "RC4"):
		return "RC4"
	case strings.Contains(n, "RC2"):
		return "RC2"
	case strings.Contains(n, "3DES"):
		return "3DES"
	case strings.Contains(n, "_DES_") || strings.Contains(n, "_DES40_"):
		return "DES"
	case strings.Contains(n, "IDEA"):
		return "IDEA"
	}
	return ""
}

// IsLegacyVersion: SSL 3.0, TLS 1.0 or TLS 1.1 (RFC 7568, RFC 8996).
func IsLegacyVersion(v string) bool {
	return v == "SSL 3.0" || v == "TLS 1.0" || v == "TLS 1.1"
}

// versionsKnown: every version was probed and answered (accepted or
// refused), so that "no legacy version accepted" is a fact.
func (t *TLSInfo) versionsKnown() bool {
	if len(t.Versions) == 0 {
		return false
	}
	for _, v := range t.Versions {
		if v.Result == ProbeUnknown {
			return false
		}
	}
	return true
}

// weakKnown: "no weak suite accepted" is a fact as far as Go can offer
// them: the weak-suite session was refused, or no version up to TLS 1.2
// is accepted at all (TLS 1.3 has no weak suites, RFC 8446 §9.1).
func (t *TLSInfo) weakKnown() bool {
	switch {
	case !t.versionsKnown():
		return false
	case t.WeakProbe == ProbeRefused || t.WeakProbe == ProbeAccepted:
		return true
	case t.WeakProbe == ProbeUnknown:
		return false
	}
	for _, v := range t.Versions {
		if v.Result == ProbeAccepted && v.Version != "TLS 1.3" {
			return false
		}
	}
	return true
}

// CertInfo describes the server certificate and its chain.
type CertInfo struct {
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Names       []string  `json:"names"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
	DaysLeft    int       `json:"days_left"`
	PKIXValid   bool      `json:"pkix_valid"` // chains to a trusted root (system or extra), dates valid
	PKIXError   string    `json:"pkix_error"`
	NameMatch   bool      `json:"name_match"` // carries the MX host name (RFC 6125)
	SelfSigned  bool      `json:"self_signed"`
	ChainLength int       `json:"chain_length"` // certificates the server sent
	// SPKISHA256 is the "3 1 1" association data of the server key, a
	// ready TLSA record for the operator.
	SPKISHA256 string `json:"spki_sha256"`
}

// DANEInfo is the DANE verdict for one address (RFC 7672 §3).
type DANEInfo struct {
	State   string   `json:"state"`
	Matched []string `json:"matched"`
	Detail  string   `json:"detail,omitempty"`
}

// AddrTimings are the steps of one SMTP probe, in milliseconds.
type AddrTimings struct {
	Connect   float64 `json:"connect"`
	Banner    float64 `json:"banner"`
	EHLO      float64 `json:"ehlo"`
	STARTTLS  float64 `json:"starttls"`
	Handshake float64 `json:"handshake"`
}

// MTASTSInfo is the MTA-STS record and policy (RFC 8461).
type MTASTSInfo struct {
	Record      MTASTSRecord `json:"record"`
	Policy      MTASTSPolicy `json:"policy"`
	MXMatch     bool         `json:"mx_match"`
	UnmatchedMX []string     `json:"unmatched_mx"`
}

// MTASTSRecord is the _mta-sts TXT record (RFC 8461 §3.1).
type MTASTSRecord struct {
	Present bool   `json:"present"`
	Valid   bool   `json:"valid"`
	ID      string `json:"id"`
	Error   string `json:"error"`
}

// MTASTSPolicy is the fetched policy (RFC 8461 §3.2, §3.3).
type MTASTSPolicy struct {
	Fetched bool     `json:"fetched"`
	Valid   bool     `json:"valid"`
	Error   string   `json:"error"`
	Mode    string   `json:"mode"`
	MX      []string `json:"mx"`
	MaxAge  int64    `json:"max_age"` // seconds
	// URL is where it was fetched from.
	URL string `json:"url,omitempty"`
	// RefusedAddresses are addresses of the policy host that were not
	// contacted: private or reserved (safety.private_refused).
	RefusedAddresses []string `json:"refused_addresses,omitempty"`
}

// TLSRPTInfo is the _smtp._tls TXT record (RFC 8460 §3).
type TLSRPTInfo struct {
	Present bool     `json:"present"`
	Valid   bool     `json:"valid"`
	RUA     []string `json:"rua"`
	Error   string   `json:"error"`
}

// SPFInfo is the domain's SPF record (RFC 7208).
type SPFInfo struct {
	Present bool   `json:"present"`
	Valid   bool   `json:"valid"`
	Record  string `json:"record"`
	Lookups int    `json:"lookups"` // DNS-querying terms, RFC 7208 §4.6.4
	Error   string `json:"error"`
}

// DMARCInfo is the _dmarc TXT record (RFC 7489 §6.1) that applies to
// the domain: its own, or else the organizational domain's (§6.6.3).
type DMARCInfo struct {
	Present bool `json:"present"`
	Valid   bool `json:"valid"`
	// Policy is the policy for mail from the domain: p=, or the sp= of an
	// organizational domain's record when it has one (§6.3).
	Policy string `json:"policy"`
	Record string `json:"record"`
	Error  string `json:"error"`
	// OrgDomain names the organizational domain whose record applies
	// because the domain has none of its own; "" when the record is the
	// domain's own.
	OrgDomain string `json:"org_domain,omitempty"`
}

// Timings are the steps of the check, in milliseconds. The steps overlap:
// they run in parallel.
type Timings struct {
	MX      float64 `json:"mx"`      // the MX look-up
	Hosts   float64 `json:"hosts"`   // addresses, TLSA and SMTP probes of every host
	MTASTS  float64 `json:"mta_sts"` // record and policy fetch
	Records float64 `json:"records"` // TLS-RPT, SPF, DMARC
	Total   float64 `json:"total"`
}
