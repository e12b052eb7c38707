package checkreport

import (
	"slices"
	"strings"
)

// Finding codes (docs/inbound.md). The lab fixtures assert on them: never
// rename one; add new ones.
const (
	CodeMXPresent  = "mx.present"
	CodeMXNull     = "mx.null"
	CodeMXImplicit = "mx.implicit"
	CodeMXNone     = "mx.none"
	CodeMXCNAME    = "mx.cname"

	CodeDNSSECMXSecure        = "dnssec.mx.secure"
	CodeDNSSECMXInsecure      = "dnssec.mx.insecure"
	CodeDNSSECMXBogus         = "dnssec.mx.bogus"
	CodeDNSSECAddressSecure   = "dnssec.address.secure"
	CodeDNSSECAddressInsecure = "dnssec.address.insecure"
	CodeDNSSECAddressBogus    = "dnssec.address.bogus"
	CodeDNSSECTLSASecure      = "dnssec.tlsa.secure"
	CodeDNSSECTLSAInsecure    = "dnssec.tlsa.insecure"
	CodeDNSSECTLSABogus       = "dnssec.tlsa.bogus"
	// Extensions of the contract.
	CodeDNSSECResolverUntrusted = "dnssec.resolver_untrusted"
	CodeDNSSECUnvalidated       = "dnssec.unvalidated"

	CodeSTARTTLSOffered = "smtp.starttls.offered"
	CodeSTARTTLSMissing = "smtp.starttls.missing"
	CodeUnreachable     = "smtp.unreachable"
	CodeNotTestable     = "smtp.not_testable"
	CodePrivateRefused  = "safety.private_refused"

	CodeHandshakeFailed  = "tls.handshake_failed"
	CodeProtocolOld      = "tls.protocol.old"
	CodeCertTrusted      = "tls.cert.trusted"
	CodeCertUntrusted    = "tls.cert.untrusted"
	CodeCertSelfSigned   = "tls.cert.self_signed"
	CodeCertNameMismatch = "tls.cert.name_mismatch"
	CodeCertExpired      = "tls.cert.expired"
	CodeCertExpiresSoon  = "tls.cert.expires_soon"
	CodeLegacyAccepted   = "tls.version.legacy_accepted"
	CodeCipherWeak       = "tls.cipher.weak"

	CodeDANENone          = "dane.none"
	CodeDANEValid         = "dane.valid"
	CodeDANEMismatch      = "dane.mismatch"
	CodeDANENotSecure     = "dane.not_secure"
	CodeDANEUnusable      = "dane.unusable"
	CodeDANERolloverReady = "dane.rollover_ready"
	CodeDANENoRollover    = "dane.no_rollover"
	CodeDANELookupFailed  = "dane.lookup_failed" // extension

	CodeMTASTSNone          = "mtasts.none"
	CodeMTASTSRecordInvalid = "mtasts.record_invalid"
	CodeMTASTSFetchFailed   = "mtasts.fetch_failed"
	CodeMTASTSPolicyInvalid = "mtasts.policy_invalid"
	CodeMTASTSEnforce       = "mtasts.enforce"
	CodeMTASTSTesting       = "mtasts.testing"
	CodeMTASTSModeNone      = "mtasts.mode_none"
	CodeMTASTSMXMatch       = "mtasts.mx_match"
	CodeMTASTSMXMismatch    = "mtasts.mx_mismatch"
	CodeMTASTSMaxAgeShort   = "mtasts.max_age_short" // extension

	CodeTLSRPTNone    = "tlsrpt.none"
	CodeTLSRPTValid   = "tlsrpt.valid"
	CodeTLSRPTInvalid = "tlsrpt.invalid"

	CodeSPFNone           = "spf.none"
	CodeSPFValid          = "spf.valid"
	CodeSPFInvalid        = "spf.invalid"
	CodeSPFTooManyLookups = "spf.too_many_lookups"

	CodeDMARCNone      = "dmarc.none"
	CodeDMARCValid     = "dmarc.valid"
	CodeDMARCInvalid   = "dmarc.invalid"
	CodeDMARCOrgDomain = "dmarc.org_domain"

	CodeQualified    = "encryption.qualified"
	CodeNotQualified = "encryption.not_qualified"

	CodeDeadline = "check.deadline" // extension
)

// Severities of the codes: fixed by the contract, so a code always means
// the same grade.
var severities = map[string]Severity{
	CodeMXPresent: SevInfo, CodeMXNull: SevInfo, CodeMXImplicit: SevWarning, CodeMXNone: SevBad, CodeMXCNAME: SevWarning,

	CodeDNSSECMXSecure: SevGood, CodeDNSSECMXInsecure: SevBad, CodeDNSSECMXBogus: SevError,
	CodeDNSSECAddressSecure: SevGood, CodeDNSSECAddressInsecure: SevBad, CodeDNSSECAddressBogus: SevError,
	CodeDNSSECTLSASecure: SevGood, CodeDNSSECTLSAInsecure: SevBad, CodeDNSSECTLSABogus: SevError,
	CodeDNSSECResolverUntrusted: SevWarning, CodeDNSSECUnvalidated: SevWarning,

	CodeSTARTTLSOffered: SevGood, CodeSTARTTLSMissing: SevBad, CodeUnreachable: SevError,
	CodeNotTestable: SevWarning, CodePrivateRefused: SevError,

	CodeHandshakeFailed: SevBad, CodeProtocolOld: SevWarning, CodeCertTrusted: SevGood, CodeCertUntrusted: SevBad,
	CodeCertSelfSigned: SevBad, CodeCertNameMismatch: SevBad, CodeCertExpired: SevBad, CodeCertExpiresSoon: SevWarning,
	CodeLegacyAccepted: SevWarning, CodeCipherWeak: SevBad,

	CodeDANENone: SevInfo, CodeDANEValid: SevGood, CodeDANEMismatch: SevError, CodeDANENotSecure: SevWarning,
	CodeDANEUnusable: SevWarning, CodeDANERolloverReady: SevGood, CodeDANENoRollover: SevInfo, CodeDANELookupFailed: SevError,

	CodeMTASTSNone: SevInfo, CodeMTASTSRecordInvalid: SevBad, CodeMTASTSFetchFailed: SevBad,
	CodeMTASTSPolicyInvalid: SevBad, CodeMTASTSEnforce: SevGood, CodeMTASTSTesting: SevInfo, CodeMTASTSModeNone: SevInfo,
	CodeMTASTSMXMatch: SevGood, CodeMTASTSMXMismatch: SevBad, CodeMTASTSMaxAgeShort: SevInfo,

	CodeTLSRPTNone: SevInfo, CodeTLSRPTValid: SevGood, CodeTLSRPTInvalid: SevBad,
	CodeSPFNone: SevWarning, CodeSPFValid: SevGood, CodeSPFInvalid: SevBad, CodeSPFTooManyLookups: SevBad,
	CodeDMARCNone: SevWarning, CodeDMARCValid: SevGood, CodeDMARCInvalid: SevBad, CodeDMARCOrgDomain: SevInfo,

	CodeQualified: SevGood, CodeNotQualified: SevInfo,
	CodeDeadline: SevError,
}

// Codes returns every finding code with its severity, sorted by code.
func Codes() []Finding {
	out := make([]Finding, 0, len(severities))
	for c, s := range severities {
		out = append(out, Finding{Code: c, Severity: s})
	}
	slices.SortFunc(out, func(a, b Finding) int { return strings.Compare(a.Code, b.Code) })
	return out
}
