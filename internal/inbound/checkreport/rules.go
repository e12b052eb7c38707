package checkreport

import (
	"fmt"
	"strings"

	"github.com/mailsec/mailsec/internal/dane"
)

// Thresholds of the rules.
const (
	// expiresSoonDays: a certificate with fewer days left is flagged.
	expiresSoonDays = 14
	// shortMaxAge: RFC 8461 §3.2 recommends a max_age of weeks; below a
	// day the policy protects little against a downgrade.
	shortMaxAge = 86400
	// maxSPFLookups is the limit of DNS-querying terms (RFC 7208 §4.6.4).
	maxSPFLookups = 10
)

// Has tells whether the report has a finding with code (for any host).
func (r *Report) Has(code string) bool {
	for _, f := range r.Findings {
		if f.Code == code {
			return true
		}
	}
	return false
}

// evaluation collects findings in order.
type evaluation struct {
	r *Report
}

func (e *evaluation) add(code, host, addr, format string, args ...any) {
	sev, ok := severities[code]
	if !ok {
		sev = SevInfo
	}
	e.r.Findings = append(e.r.Findings, Finding{Code: code, Severity: sev, Text: fmt.Sprintf(format, args...), Host: host, Address: addr})
}

// Evaluate derives the findings, the colour and its reason, qualified
// transport encryption and the sentences from the observations in r
// (mx, mta_sts, tls_rpt, spf, dmarc, resolver, incomplete). It is a pure
// function of them, so that the rules can be tested on synthesized
// reports; it replaces whatever r held in the fields it sets.
func Evaluate(r *Report) {
	r.Findings = []Finding{}
	e := &evaluation{r: r}
	e.resolverFindings()
	e.mxFindings()
	e.hostFindings()
	e.mtastsFindings()
	e.recordFindings()
	s := summarize(r)
	r.QualifiedEncryption = s.qualified
	if s.qualified {
		e.add(CodeQualified, "", "", "Qualified transport encryption: DNSSEC-secure MX and address records, STARTTLS on every mail server, trusted certificates matching the MX names.")
	} else {
		e.add(CodeNotQualified, "", "", "No qualified transport encryption: %s.", s.unqualifiedWhy)
	}
	if r.Incomplete {
		e.add(CodeDeadline, "", "", "The check hit its deadline; some steps did not finish (see errors).")
	}
	r.Colour, r.ColourReason = grade(r, s)
	r.Sentences = sentences(r, s)
}

func (e *evaluation) resolverFindings() {
	r := e.r
	if !r.Resolver.TrustsAD {
		e.add(CodeDNSSECResolverUntrusted, "", "", "The resolver %s is not on loopback: its AD bit is not trusted, so no DNSSEC status can be given. Use a validating resolver on 127.0.0.1 or ::1.", r.Resolver.Address)
		return
	}
	if r.Resolver.ZoneSigned && r.MX.DNSSEC == Insecure {
		e.add(CodeDNSSECUnvalidated, "", "", "The zone publishes DNSKEY records, but its answers came back unvalidated: the resolver %s does not validate DNSSEC, or the chain of trust (DS in the parent zone) is missing.", r.Resolver.Address)
	}
}

func (e *evaluation) mxFindings() {
	r := e.r
	switch r.MX.Kind {
	case MXKindMX:
		names := make([]string, 0, len(r.MX.Hosts))
		for _, h := range r.MX.Hosts {
			names = append(names, h.Name)
		}
		e.add(CodeMXPresent, "", "", "MX records: %s.", strings.Join(names, ", "))
	case MXKindNull:
		e.add(CodeMXNull, "", "", "Null MX (RFC 7505): the domain accepts no mail.")
	case MXKindImplicit:
		e.add(CodeMXImplicit, "", "", "No MX records: mail goes to the domain's own address records (implicit MX, RFC 5321 §5.1).")
	case MXKindNone:
		if r.MX.Error != "" {
			e.add(CodeMXNone, "", "", "The MX records could not be looked up: %s.", r.MX.Error)
		} else {
			e.add(CodeMXNone, "", "", "Neither MX nor address records: the domain cannot receive mail.")
		}
	}
	switch r.MX.DNSSEC {
	case Secure:
		e.add(CodeDNSSECMXSecure, "", "", "The MX answer is DNSSEC-secure.")
	case Insecure:
		e.add(CodeDNSSECMXInsecure, "", "", "The MX answer is not DNSSEC-signed (insecure): an attacker can redirect mail.")
	case Bogus:
		e.add(CodeDNSSECMXBogus, "", "", "DNSSEC validation of the MX answer fails (bogus): validating senders cannot deliver.")
	}
}

func (e *evaluation) hostFindings() {
	r := e.r
	for i := range r.MX.Hosts {
		h := &r.MX.Hosts[i]
		if h.CNAMETarget != "" {
			e.add(CodeMXCNAME, h.Name, "", "The MX host %s is an alias (CNAME to %s); RFC 2181 §10.3 requires MX targets to be host names with address records.", h.Name, h.CNAMETarget)
		}
		switch h.AddressDNSSEC {
		case Secure:
			e.add(CodeDNSSECAddressSecure, h.Name, "", "The address records of %s are DNSSEC-secure.", h.Name)
		case Insecure:
			e.add(CodeDNSSECAddressInsecure, h.Name, "", "The address records of %s are not DNSSEC-signed (insecure).", h.Name)
		case Bogus:
			e.add(CodeDNSSECAddressBogus, h.Name, "", "DNSSEC validation of the address records of %s fails (bogus).", h.Name)
		}
		if len(h.Addresses) == 0 {
			why := h.AddressError
			if why == "" {
				why = "no A or AAAA records"
			}
			e.add(CodeUnreachable, h.Name, "", "%s cannot be reached: %s.", h.Name, why)
		}
		e.tlsaFindings(h)
		for j := range h.Addresses {
			e.addressFindings(h, &h.Addresses[j])
		}
	}
}

// SecureTLSAPath tells whether a DANE client would use the TLSA records of
// h, an MX host from an MX answer in state mx: MX, address and TLSA answers
// all secure (RFC 7672 §2.2). If not, why says which answer is not.
func SecureTLSAPath(mx DNSSEC, h *Host) (secure bool, why string) {
	switch {
	case mx != Secure:
		return false, "the MX answer is " + string(mx)
	case h.AddressDNSSEC != Secure:
		return false, "the address records are " + string(h.AddressDNSSEC)
	case h.TLSA.DNSSEC != Secure:
		return false, "the TLSA answer is " + string(h.TLSA.DNSSEC)
	}
	return true, ""
}

func (e *evaluation) tlsaFindings(h *Host) {
	r := e.r
	t := &h.TLSA
	switch t.DNSSEC {
	case Secure:
		if len(t.Records) > 0 {
			e.add(CodeDNSSECTLSASecure, h.Name, "", "The TLSA records at %s are DNSSEC-secure.", t.Name)
		} else {
			e.add(CodeDNSSECTLSASecure, h.Name, "", "The absence of TLSA records at %s is DNSSEC-proven.", t.Name)
		}
	case Insecure:
		if len(t.Records) > 0 {
			e.add(CodeDNSSECTLSAInsecure, h.Name, "", "The TLSA records at %s are not DNSSEC-signed (insecure).", t.Name)
		} else {
			e.add(CodeDNSSECTLSAInsecure, h.Name, "", "No TLSA records at %s, and the answer is not DNSSEC-signed (insecure).", t.Name)
		}
	case Bogus:
		e.add(CodeDNSSECTLSABogus, h.Name, "", "DNSSEC validation of the TLSA answer at %s fails (bogus): DANE senders defer mail (RFC 7672 §2.1.1).", t.Name)
	}
	securePath, why := SecureTLSAPath(r.MX.DNSSEC, h)
	switch {
	case t.DNSSEC == Indeterminate && t.Error != "":
		if r.MX.DNSSEC == Secure && h.AddressDNSSEC == Secure {
			e.add(CodeDANELookupFailed, h.Name, "", "The TLSA look-up at %s fails (%s): DANE senders defer mail to this host (RFC 7672 §2.1.1).", t.Name, t.Error)
		}
	case t.DNSSEC == Bogus:
		// reported above
	case len(t.Records) == 0:
		e.add(CodeDANENone, h.Name, "", "No TLSA records for %s: no DANE (RFC 7672).", h.Name)
	case !securePath:
		e.add(CodeDANENotSecure, h.Name, "", "TLSA records for %s exist, but %s: DANE senders cannot use them (RFC 7672 §2.2).", h.Name, why)
	case t.Usable == 0:
		e.add(CodeDANEUnusable, h.Name, "", "None of the TLSA records for %s is usable for SMTP (only DANE-TA(2) and DANE-EE(3) are, RFC 7672 §3.1.3).", h.Name)
	default:
		if ready, how := rolloverReady(t.Records); ready {
			e.add(CodeDANERolloverReady, h.Name, "", "The TLSA records for %s are ready for a key rollover (%s).", h.Name, how)
		} else {
			e.add(CodeDANENoRollover, h.Name, "", "The TLSA records for %s cover one key only: publish the next key's record (or a DANE-TA record) before a certificate change (RFC 7671 §8.1).", h.Name)
		}
	}
}

// rolloverReady tells whether a TLSA RRset survives the change of the
// server key: it holds a DANE-EE and a DANE-TA record ("3 1 1" + "2 1 1"),
// or two different keys of the same kind (current and next, RFC 7671
// §8.1).
func rolloverReady(records []string) (bool, string) {
	type kind struct{ u, s, m uint8 }
	data := map[kind]map[string]bool{}
	var kinds []kind // in record order, for a stable text
	ee, ta := false, false
	for _, s := range records {
		t, err := dane.ParseTLSA(s)
		if err != nil || t.Unusable() != "" {
			continue
		}
		k := kind{uint8(t.Usage), uint8(t.Selector), uint8(t.MatchingType)}
		if data[k] == nil {
			data[k] = map[string]bool{}
			kinds = append(kinds, k)
		}
		data[k][string(t.Data)] = true
		ee = ee || t.Usage == dane.UsageDANEEE
		ta = ta || t.Usage == dane.UsageDANETA
	}
	if ee && ta {
		return true, "DANE-EE and DANE-TA records"
	}
	for _, k := range kinds {
		if d := data[k]; len(d) >= 2 {
			return true, fmt.Sprintf("%d different %d %d %d records", len(d), k.u, k.s, k.m)
		}
	}
	return false, ""
}

func (e *evaluation) addressFindings(h *Host, a *Address) {
	switch a.Status {
	case StatusRefused:
		e.add(CodePrivateRefused, h.Name, a.IP, "%s (%s) is a private or reserved address: not contacted (allow with --allow-private).", a.IP, h.Name)
		return
	case StatusUnreachable:
		e.add(CodeUnreachable, h.Name, a.IP, "%s (%s) port 25 is unreachable: %s.", a.IP, h.Name, a.Detail)
		return
	case StatusNotTestable:
		e.add(CodeNotTestable, h.Name, a.IP, "%s (%s) is not testable now: %s. This says nothing about STARTTLS.", a.IP, h.Name, a.Detail)
		return
	case StatusError:
		e.add(CodeNotTestable, h.Name, a.IP, "%s (%s) does not speak SMTP as expected: %s.", a.IP, h.Name, a.Detail)
		return
	}
	if !a.STARTTLS {
		e.add(CodeSTARTTLSMissing, h.Name, a.IP, "%s (%s) does not offer STARTTLS: mail to it travels in plain text.", a.IP, h.Name)
	} else {
		e.add(CodeSTARTTLSOffered, h.Name, a.IP, "%s (%s) offers STARTTLS.", a.IP, h.Name)
	}
	if a.STARTTLS && a.TLS == nil {
		e.add(CodeHandshakeFailed, h.Name, a.IP, "STARTTLS with %s (%s) fails: %s.", a.IP, h.Name, a.TLSError)
	}
	if a.TLS != nil && (a.TLS.Version == "TLS 1.0" || a.TLS.Version == "TLS 1.1" || a.TLS.Version == "SSL 3.0") {
		e.add(CodeProtocolOld, h.Name, a.IP, "%s (%s) negotiates %s; TLS 1.2 or later is expected (RFC 8996).", a.IP, h.Name, a.TLS.Version)
	}
	if a.TLS != nil {
		if legacy := a.TLS.LegacyVersions(); len(legacy) > 0 {
			e.add(CodeLegacyAccepted, h.Name, a.IP, "%s (%s) still accepts %s, deprecated since 2021 (RFC 8996): switch off every version below TLS 1.2.", a.IP, h.Name, strings.Join(legacy, " and "))
		}
		if weak := a.TLS.Weak(); len(weak) > 0 {
			names := make([]string, 0, len(weak))
			for _, w := range weak {
				names = append(names, fmt.Sprintf("%s (%s, %s)", w.Cipher, w.Version, w.Class))
			}
			e.add(CodeCipherWeak, h.Name, a.IP, "%s (%s) accepts weak cipher suites: %s. RC4 is forbidden (RFC 7465); 3DES has 64-bit blocks (SWEET32, CVE-2016-2183).", a.IP, h.Name, strings.Join(names, ", "))
		}
	}
	if c := a.Cert; c != nil {
		if c.PKIXValid {
			e.add(CodeCertTrusted, h.Name, a.IP, "The certificate of %s (%s) chains to a trusted root (issuer %s).", a.IP, h.Name, c.Issuer)
		} else {
			e.add(CodeCertUntrusted, h.Name, a.IP, "The certificate of %s (%s) is not trusted: %s.", a.IP, h.Name, c.PKIXError)
		}
		if c.SelfSigned {
			e.add(CodeCertSelfSigned, h.Name, a.IP, "The certificate of %s (%s) is self-signed (%s).", a.IP, h.Name, c.Subject)
		}
		if !c.NameMatch {
			names := strings.Join(c.Names, ", ")
			if names == "" {
				names = "none"
			}
			e.add(CodeCertNameMismatch, h.Name, a.IP, "The certificate of %s does not name the MX host %s (its names: %s).", a.IP, h.Name, names)
		}
		switch {
		case c.DaysLeft < 0:
			e.add(CodeCertExpired, h.Name, a.IP, "The certificate of %s (%s) expired on %s.", a.IP, h.Name, c.NotAfter.Format("2006-01-02"))
		case c.DaysLeft < expiresSoonDays:
			e.add(CodeCertExpiresSoon, h.Name, a.IP, "The certificate of %s (%s) expires in %d days (%s).", a.IP, h.Name, c.DaysLeft, c.NotAfter.Format("2006-01-02"))
		}
	}
	switch a.DANE.State {
	case DANEValid:
		e.add(CodeDANEValid, h.Name, a.IP, "%s (%s) is authenticated by DANE: %s matches.", a.IP, h.Name, strings.Join(shortRecords(a.DANE.Matched), ", "))
	case DANEMismatch:
		e.add(CodeDANEMismatch, h.Name, a.IP, "No TLSA record of %s authenticates %s: %s. DANE senders will not deliver to it.", h.Name, a.IP, a.DANE.Detail)
	}
}

func (e *evaluation) mtastsFindings() {
	m := &e.r.MTASTS
	// Not present with an error: the look-up failed (in Errors); nothing
	// can be said about the record. The same holds below for TLS-RPT, SPF
	// and DMARC.
	switch {
	case !m.Record.Present && m.Record.Error == "":
		e.add(CodeMTASTSNone, "", "", "No MTA-STS record (_mta-sts TXT, RFC 8461 §3.1).")
		return
	case !m.Record.Present:
		return
	case !m.Record.Valid:
		e.add(CodeMTASTSRecordInvalid, "", "", "The MTA-STS record is invalid: %s.", m.Record.Error)
	}
	p := &m.Policy
	for _, ip := range p.RefusedAddresses {
		e.add(CodePrivateRefused, "mta-sts."+e.r.Domain, ip, "%s (mta-sts.%s) is a private or reserved address: not contacted (allow with --allow-private).", ip, e.r.Domain)
	}
	switch {
	case !p.Fetched:
		if p.Error != "" {
			e.add(CodeMTASTSFetchFailed, "", "", "The MTA-STS policy could not be fetched: %s.", p.Error)
		}
		return
	case !p.Valid:
		e.add(CodeMTASTSPolicyInvalid, "", "", "The MTA-STS policy is invalid: %s.", p.Error)
		return
	}
	switch p.Mode {
	case "enforce":
		e.add(CodeMTASTSEnforce, "", "", "MTA-STS policy in mode enforce: senders require TLS with a valid certificate for the listed MX hosts.")
	case "testing":
		e.add(CodeMTASTSTesting, "", "", "MTA-STS policy in mode testing: failures are only reported (RFC 8460), not enforced.")
	case "none":
		e.add(CodeMTASTSModeNone, "", "", "MTA-STS policy in mode none: the policy is withdrawn (RFC 8461 §8.3).")
		return
	}
	if m.MXMatch {
		e.add(CodeMTASTSMXMatch, "", "", "Every MX host matches an mx pattern of the MTA-STS policy.")
	} else if e.r.MX.Kind == MXKindMX || e.r.MX.Kind == MXKindImplicit {
		e.add(CodeMTASTSMXMismatch, "", "", "MX hosts not matched by the MTA-STS policy (senders in enforce mode will not deliver to them): %s.", strings.Join(m.UnmatchedMX, ", "))
	}
	if p.MaxAge < shortMaxAge {
		e.add(CodeMTASTSMaxAgeShort, "", "", "The MTA-STS max_age is %d seconds; RFC 8461 §3.2 recommends weeks.", p.MaxAge)
	}
}

func (e *evaluation) recordFindings() {
	r := e.r
	if t := &r.TLSRPT; e.validRecord("TLS-RPT", t.Present, t.Valid, t.Error, CodeTLSRPTNone, CodeTLSRPTInvalid,
		"No TLS-RPT record (_smtp._tls TXT, RFC 8460 §3): senders cannot report TLS failures.") {
		e.add(CodeTLSRPTValid, "", "", "TLS-RPT reports go to %s.", strings.Join(t.RUA, ", "))
	}
	if s := &r.SPF; e.validRecord("SPF", s.Present, s.Valid, s.Error, CodeSPFNone, CodeSPFInvalid, "No SPF record (RFC 7208).") {
		if s.Lookups > maxSPFLookups {
			e.add(CodeSPFTooManyLookups, "", "", "The SPF record needs %d DNS look-ups; more than %d is a permanent error (RFC 7208 §4.6.4).", s.Lookups, maxSPFLookups)
		} else {
			e.add(CodeSPFValid, "", "", "SPF record valid (%d DNS look-ups of at most %d): %s", s.Lookups, maxSPFLookups, s.Record)
		}
	}
	d := &r.DMARC
	if d.Present && d.OrgDomain != "" {
		e.add(CodeDMARCOrgDomain, "", "", "No DMARC record at _dmarc.%s: the record of the organizational domain %s applies (RFC 7489 §6.6.3), its sp= (or else p=) for subdomains.", r.Domain, d.OrgDomain)
	}
	if e.validRecord("DMARC", d.Present, d.Valid, d.Error, CodeDMARCNone, CodeDMARCInvalid, "No DMARC record (_dmarc TXT, RFC 7489 §6.1).") {
		if d.OrgDomain != "" {
			e.add(CodeDMARCValid, "", "", "DMARC policy %s, from the record of the organizational domain %s.", d.Policy, d.OrgDomain)
		} else {
			e.add(CodeDMARCValid, "", "", "DMARC policy p=%s.", d.Policy)
		}
	}
}

// validRecord tells whether one of the domain's TXT records (TLS-RPT,
// SPF, DMARC) is there and valid, so that the caller adds what it says;
// otherwise it adds the finding that the domain has none (code none,
// text noneText) or that the record is invalid (code invalid, with the
// parse error). A failed look-up (not present, with an error) gives no
// finding: it is among the report's errors.
func (e *evaluation) validRecord(name string, present, valid bool, errText, none, invalid, noneText string) bool {
	switch {
	case !present && errText == "":
		e.add(none, "", "", "%s", noneText)
	case present && !valid:
		e.add(invalid, "", "", "The %s record is invalid: %s.", name, errText)
	}
	return present && valid
}
