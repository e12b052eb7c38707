package checkreport

import "fmt"

// sentences are the summary in the seed's style ("Domain does use DNSSEC
// with MX-Records (good).").
func sentences(r *Report, s summary) []string {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	switch r.MX.Kind {
	case MXKindNull:
		add("Domain does not accept mail (null MX, RFC 7505).")
		return out
	case MXKindNone:
		add("Domain does not have a mail server (bad).")
		return out
	case MXKindImplicit:
		add("Domain does not have MX-Records; mail goes to its own address (warning).")
	}
	switch r.MX.DNSSEC {
	case Secure:
		add("Domain does use DNSSEC with MX-Records (good).")
	case Insecure:
		add("Domain does not use DNSSEC with MX-Records (bad).")
	case Bogus:
		add("Domain does use DNSSEC with MX-Records, but validation fails (error).")
	}
	switch {
	case len(r.MX.Hosts) == 0:
	case s.addrAllSecure:
		add("Domain does use DNSSEC with A-Records (good).")
	case anyHost(r, func(h *Host) bool { return h.AddressDNSSEC == Bogus }):
		add("Domain does use DNSSEC with A-Records, but validation fails (error).")
	case anyHost(r, func(h *Host) bool { return h.AddressDNSSEC == Insecure }):
		add("Domain does not use DNSSEC with A-Records (bad).")
	}
	if s.tlsaPresent {
		if s.tlsaAllSecure {
			add("Domain does use DNSSEC with TLSA-Records (good).")
		} else {
			add("Domain does not use DNSSEC with TLSA-Records (bad).")
		}
	}
	switch {
	case s.tested == 0:
		add("Domain could not be tested for STARTTLS (not testable now).")
	case len(s.noTLS) == 0:
		add("Domain does support STARTTLS (good).")
	case len(s.noTLS) == s.tested:
		add("Domain does not support STARTTLS (bad).")
	default:
		add("Domain does support STARTTLS on some mail servers only (bad).")
	}
	if withTLS := s.tested - len(s.noTLS); withTLS > 0 {
		if len(s.untrusted) == 0 {
			add("Domain does use valid certificates (good).")
		} else {
			add("Domain does not use valid certificates (bad).")
		}
	}
	switch {
	case len(s.legacyTLS) > 0:
		add("Domain does still accept TLS 1.0 or 1.1 (warning).")
	case s.withTLS > 0 && s.versionsKnown == s.withTLS:
		add("Domain does not accept TLS 1.0 or 1.1 (good).")
	}
	switch {
	case len(s.weakCiphers) > 0:
		add("Domain does accept weak cipher suites (bad).")
	case s.withTLS > 0 && s.weakKnown == s.withTLS:
		add("Domain does not accept weak cipher suites (good).")
	}
	if s.qualified {
		add("Domain does support qualified transport encryption (good).")
	} else {
		add("Domain does not support qualified transport encryption.")
	}
	switch {
	case s.tested > 0 && s.daneValid == s.tested:
		add("Domain does support RFC 7672 SMTP-DANE (good).")
	case s.daneValid > 0 || r.Has(CodeDANEMismatch):
		add("Domain does publish TLSA-Records, but not every mail server matches them (error).")
	case r.Has(CodeDANENotSecure):
		add("Domain does publish TLSA-Records without DNSSEC protection: no SMTP-DANE (warning).")
	case r.Has(CodeDANEUnusable):
		add("Domain does publish TLSA-Records, but none usable for SMTP-DANE (warning).")
	default:
		add("Domain does not support RFC 7672 SMTP-DANE.")
	}
	switch {
	case r.Has(CodeMTASTSEnforce) && r.Has(CodeMTASTSMXMatch):
		add("Domain does support RFC 8461 MTA-STS (good).")
	case r.Has(CodeMTASTSEnforce):
		add("Domain does support RFC 8461 MTA-STS, but its policy does not list every MX host (bad).")
	case r.Has(CodeMTASTSTesting):
		add("Domain does support RFC 8461 MTA-STS in testing mode only.")
	case r.Has(CodeMTASTSRecordInvalid) || r.Has(CodeMTASTSFetchFailed) || r.Has(CodeMTASTSPolicyInvalid):
		add("Domain does publish RFC 8461 MTA-STS, but it is broken (bad).")
	default:
		add("Domain does not support RFC 8461 MTA-STS.")
	}
	switch {
	case r.TLSRPT.Valid:
		add("Domain does support RFC 8460 TLS reporting (good).")
	case r.TLSRPT.Present:
		add("Domain does publish an invalid RFC 8460 TLS-RPT record (bad).")
	}
	switch {
	case r.SPF.Valid && r.SPF.Lookups <= maxSPFLookups:
		add("Domain does publish a valid SPF record (good).")
	case r.SPF.Present:
		add("Domain does publish an SPF record with errors (bad).")
	default:
		add("Domain does not publish an SPF record.")
	}
	switch {
	case r.DMARC.Valid && r.DMARC.OrgDomain != "":
		add("Domain does inherit the DMARC policy %s of its organizational domain %s (good).", r.DMARC.Policy, r.DMARC.OrgDomain)
	case r.DMARC.Valid:
		add("Domain does publish a DMARC policy p=%s (good).", r.DMARC.Policy)
	case r.DMARC.Present:
		add("Domain does publish an invalid DMARC record (bad).")
	default:
		add("Domain does not publish a DMARC policy.")
	}
	return out
}

func anyHost(r *Report, f func(*Host) bool) bool {
	for i := range r.MX.Hosts {
		if f(&r.MX.Hosts[i]) {
			return true
		}
	}
	return false
}
