// Package mailauth evaluates a test mail's authentication once, when it
// arrives: SPF for the MAIL FROM and the HELO identities (RFC 7208 §2.3,
// §2.4; blitiri.com.ar/go/spf with its look-up limits), DMARC of the
// RFC5322.From domain with SPF and DKIM alignment against the
// organizational domain of the public suffix list (RFC 7489; the record
// through go-msgauth's dmarc), and the ARC chain (RFC 8617 §5.2). The
// DKIM signatures come verified from the SMTP server (internal/smtpd, with
// go-msgauth's dkim), which reads the message anyway.
//
// Every DNS question goes to the service's own resolver. The result,
// store.Authentication, is stored with the mail's connection; the report,
// the API, the result mail and resultmail.Decide read that one
// evaluation.
package mailauth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dmarc"
	"github.com/miekg/dns"
	"golang.org/x/net/publicsuffix"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// Results, as RFC 7208 §2.6 and RFC 7489 §11.2 (Authentication-Results,
// RFC 8601) name them.
const (
	ResultPass      = "pass"
	ResultFail      = "fail"
	ResultNone      = "none"
	ResultTempError = "temperror"
	ResultPermError = "permerror"
)

// Envelope is what the SMTP session said about a mail.
type Envelope struct {
	Client   netip.Addr // the SMTP client's address
	HELO     string     // the EHLO/HELO argument
	MailFrom string     // the reverse-path, without angle brackets; "" for the null sender
}

// Evaluate evaluates the authentication of msg, which came with env and
// whose signatures smtpd has listed and verified (sigs: the DKIM
// signatures with their results are taken over). dnsc nil (no resolver
// configured) gives temperror for SPF, DMARC and a signed ARC chain. ctx
// bounds the DNS look-ups.
func Evaluate(ctx context.Context, dnsc DNS, env Envelope, msg []byte, sigs []store.Signature) store.Authentication {
	a := store.Authentication{DKIM: []store.Signature{}}
	for _, s := range sigs {
		if s.Type == "dkim" {
			a.DKIM = append(a.DKIM, s)
		}
	}
	a.ARC = VerifyARC(ctx, dnsc, msg)
	a.SPFMailFrom, a.SPFHELO = evaluateSPF(ctx, dnsc, env)
	a.DMARC = evaluateDMARC(ctx, dnsc, msg, a)
	return a
}

// evaluateSPF runs check_host() for the MAIL FROM identity and for the
// HELO identity.
func evaluateSPF(ctx context.Context, dnsc DNS, env Envelope) (mailFrom, helo store.SPFCheck) {
	heloDomain := ""
	if isDomain(env.HELO) {
		heloDomain = dnsname.Canonical(env.HELO)
	}
	// RFC 7208 §2.3: the HELO identity is checked with <sender>
	// "postmaster@" the HELO domain, when HELO is a domain at all (not
	// an address literal).
	if heloDomain == "" {
		helo = store.SPFCheck{Result: ResultNone, Reason: "the HELO name is not a domain name"}
	} else {
		helo = checkHost(ctx, dnsc, env, heloDomain, "postmaster@"+heloDomain)
	}
	// RFC 7208 §2.4: for the null reverse-path the MAIL FROM identity
	// is postmaster@ the HELO domain.
	sender := env.MailFrom
	domain := SenderDomain(sender)
	if sender == "" {
		if heloDomain == "" {
			return store.SPFCheck{Result: ResultNone, Reason: "null sender and no HELO domain"}, helo
		}
		return helo, helo
	}
	if !isDomain(domain) {
		return store.SPFCheck{Domain: untrustedName(domain), Result: ResultNone, Reason: "MAIL FROM has no valid domain"}, helo
	}
	return checkHost(ctx, dnsc, env, domain, sender), helo
}

// checkHost evaluates the SPF record of domain for the client.
func checkHost(ctx context.Context, dnsc DNS, env Envelope, domain, sender string) store.SPFCheck {
	c := store.SPFCheck{Domain: domain}
	switch {
	case dnsc == nil:
		c.Result, c.Reason = ResultTempError, "no resolver configured"
		return c
	case !env.Client.IsValid():
		c.Result, c.Reason = ResultNone, "no client address"
		return c
	}
	ip := env.Client.Unmap()
	res, err := spf.CheckHostWithSender(net.IP(ip.AsSlice()), env.HELO, sender,
		spf.WithContext(ctx), spf.WithResolver(spfResolver{dnsc}))
	c.Result = string(res)
	if res != spf.Pass {
		c.Reason = spfReason(res, err, ip)
	}
	return c
}

// spfReason says why an SPF evaluation did not pass.
func spfReason(res spf.Result, err error, ip netip.Addr) string {
	switch {
	case errors.Is(err, spf.ErrLookupLimitReached):
		return "more than 10 DNS look-ups (RFC 7208 §4.6.4)"
	case errors.Is(err, spf.ErrVoidLookupLimitReached):
		return "more than 2 void DNS look-ups (RFC 7208 §4.6.4)"
	case errors.Is(err, spf.ErrNoResult):
		return "no SPF record"
	case errors.Is(err, spf.ErrMultipleRecords):
		return "more than one SPF record (RFC 7208 §4.5)"
	case res == spf.Fail || res == spf.SoftFail || res == spf.Neutral:
		return fmt.Sprintf("%s is not permitted by the record", ip)
	}
	var dnsErr *net.DNSError
	switch {
	case res == spf.TempError && errors.As(err, &dnsErr):
		// dnsErr.Err is the resolver's own text, which names the
		// question ("resolver: example.org. TXT: rcode SERVFAIL").
		return "DNS failure: " + untrustedName(dnsErr.Err)
	case err != nil:
		return untrustedName(err.Error())
	}
	return ""
}

// evaluateDMARC evaluates the DMARC policy of the From domain (RFC 7489
// §6.6) given the SPF and DKIM results in a.
func evaluateDMARC(ctx context.Context, dnsc DNS, msg []byte, a store.Authentication) store.DMARCCheck {
	from, err := FromDomain(msg)
	if err != nil {
		// RFC 7489 §6.6.1: a message without exactly one author
		// domain cannot be evaluated.
		// The error may quote the sender's header line.
		return store.DMARCCheck{Result: ResultPermError, Reason: untrustedName(err.Error())}
	}
	d := store.DMARCCheck{FromDomain: from}
	if dnsc == nil {
		d.Result, d.Reason = ResultTempError, "no resolver configured"
		return d
	}
	lookup := LookupTXT(ctx, dnsc)
	org := OrgDomain(from)
	// RFC 7489 §6.6.3: the record of the From domain, else that of its
	// organizational domain.
	rec, err := dmarc.LookupWithOptions(from, &dmarc.LookupOptions{LookupTXT: lookup})
	d.RecordDomain = from
	if errors.Is(err, dmarc.ErrNoPolicy) && org != from {
		rec, err = dmarc.LookupWithOptions(org, &dmarc.LookupOptions{LookupTXT: lookup})
		d.RecordDomain = org
	}
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		d.RecordDomain = ""
		d.Result, d.Reason = ResultNone, "no DMARC record"
	case dmarc.IsTempFail(err):
		d.RecordDomain = ""
		d.Result, d.Reason = ResultTempError, untrustedName(err.Error())
	case err != nil:
		d.Result, d.Reason = ResultPermError, "invalid DMARC record: "+untrustedName(strings.TrimPrefix(err.Error(), "dmarc: "))
	}
	// Alignment (RFC 7489 §3.1) is computed with or without a record:
	// the report says what a record would find. Relaxed is the default
	// of adkim= and aspf=.
	var spfMode, dkimMode dmarc.AlignmentMode = dmarc.AlignmentRelaxed, dmarc.AlignmentRelaxed
	if rec != nil {
		d.Policy = string(rec.Policy)
		if d.RecordDomain != from && rec.SubdomainPolicy != "" {
			d.Policy = string(rec.SubdomainPolicy) // sp= (RFC 7489 §6.3)
		}
		if rec.SPFAlignment == dmarc.AlignmentStrict {
			spfMode = dmarc.AlignmentStrict
		}
		if rec.DKIMAlignment == dmarc.AlignmentStrict {
			dkimMode = dmarc.AlignmentStrict
		}
		d.SPFAlignment, d.DKIMAlignment = alignmentName(spfMode), alignmentName(dkimMode)
	}
	d.SPFAligned = a.SPFMailFrom.Result == ResultPass && aligned(a.SPFMailFrom.Domain, from, spfMode)
	for _, s := range a.DKIM {
		if s.Result == ResultPass && aligned(s.Domain, from, dkimMode) {
			d.DKIMAligned = true
		}
	}
	if rec == nil {
		return d
	}
	// RFC 7489 §4.2: pass when either identifier passes and is aligned.
	switch {
	case d.SPFAligned || d.DKIMAligned:
		d.Result = ResultPass
	default:
		d.Result = ResultFail
		d.Reason = "neither a passing SPF nor a passing DKIM identity is aligned with " + from
	}
	return d
}

// aligned tells whether domain is aligned with the From domain under
// mode (RFC 7489 §3.1.1, §3.1.2): the same name (strict) or the same
// organizational domain (relaxed).
func aligned(domain, from string, mode dmarc.AlignmentMode) bool {
	domain = dnsname.Canonical(domain)
	if domain == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return domain == from
	}
	return OrgDomain(domain) == OrgDomain(from)
}

func alignmentName(m dmarc.AlignmentMode) string {
	if m == dmarc.AlignmentStrict {
		return "strict"
	}
	return "relaxed"
}

// Sentinel errors of FromDomain (RFC 7489 §6.6.1).
var (
	ErrNoFrom        = errors.New("no From header field")
	ErrManyFrom      = errors.New("more than one From header field")
	ErrFromAddresses = errors.New("the From header field does not hold exactly one address")
	ErrFromDomain    = errors.New("the From address has no valid domain")
)

// FromDomain returns the domain of the message's RFC5322.From address,
// lower case (RFC 7489 §3.1: the author domain). A message with no From,
// several From fields or several addresses in it has no one author
// domain (RFC 7489 §6.6.1) and gives an error.
func FromDomain(msg []byte) (string, error) {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return "", fmt.Errorf("unreadable header: %w", err)
	}
	switch fields := m.Header["From"]; len(fields) {
	case 0:
		return "", ErrNoFrom
	case 1:
	default:
		return "", ErrManyFrom
	}
	addrs, err := m.Header.AddressList("From")
	if err != nil || len(addrs) != 1 {
		return "", ErrFromAddresses
	}
	d := SenderDomain(addrs[0].Address)
	if !isDomain(d) {
		return "", ErrFromDomain
	}
	return d, nil
}

// SenderDomain is the lower-case domain of an address, without angle
// brackets or a trailing dot; "" for the null sender or an address
// without a domain.
func SenderDomain(addr string) string {
	addr = strings.Trim(addr, "<> ")
	if at := strings.LastIndexByte(addr, '@'); at >= 0 && at < len(addr)-1 {
		return dnsname.Canonical(addr[at+1:])
	}
	return ""
}

// OrgDomain is the organizational domain (RFC 7489 §3.2) by the public
// suffix list.
func OrgDomain(d string) string {
	d = dnsname.Canonical(d)
	if o, err := publicsuffix.EffectiveTLDPlusOne(d); err == nil {
		return o
	}
	return d
}

// isDomain tells whether s is a domain name SPF and DMARC can look up: at
// least two labels, no address literal.
func isDomain(s string) bool {
	s = dnsname.Canonical(s)
	if s == "" || strings.HasPrefix(s, "[") || !strings.Contains(s, ".") {
		return false
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return false
	}
	_, ok := dns.IsDomainName(s)
	return ok
}

// maxReasonText bounds the text from DNS records and peers in a reason.
const maxReasonText = 300

// untrustedName bounds text from the sender's DNS or message before it is
// stored and shown.
func untrustedName(s string) string {
	return untrusted.Printable(s, maxReasonText)
}
