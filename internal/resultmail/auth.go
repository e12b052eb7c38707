package resultmail

import (
	"fmt"
	"slices"
	"strings"

	"github.com/mailsec/mailsec/internal/mailauth"
	"github.com/mailsec/mailsec/internal/store"
)

// Auth is whether the test mail authenticated its envelope sender, which
// decides whether a result mail may go to it (no backscatter: DESIGN.md §4).
type Auth struct {
	OK     bool
	Method string // "spf" or "dkim" when OK
	Reason string // why (not): one sentence, no full address
}

// Authenticate decides from a test's connections whether the envelope
// sender was authenticated: SPF pass for the envelope sender's domain
// from the client address of a connection that carried the mail (RFC 7208
// §2.4), or a DKIM signature that verified whose d= is aligned with that
// domain in DMARC's relaxed sense (RFC 7489 §3.1.1: the same
// organizational domain).
//
// It reads the evaluation made when the mail arrived
// (store.SMTPConnection.Authentication, internal/mailauth): the one the
// report and the API show. Connections stored before that evaluation
// existed have their DKIM results only.
func Authenticate(sender string, conns []store.SMTPConnection) Auth {
	domain := SenderDomain(sender)
	if domain == "" {
		return Auth{Reason: "the test mail had no envelope sender"}
	}
	org := mailauth.OrgDomain(domain)
	var spfResults []string
	for _, c := range conns {
		if c.State.Rank() < store.StateMail.Rank() || SenderDomain(c.MailFrom) != domain {
			continue
		}
		sigs := c.Signatures
		if c.Authentication != nil {
			sigs = c.Authentication.DKIM
		}
		for _, sig := range sigs {
			if sig.Type == "dkim" && sig.Result == mailauth.ResultPass && sig.Domain != "" && mailauth.OrgDomain(sig.Domain) == org {
				return Auth{OK: true, Method: "dkim", Reason: fmt.Sprintf("a valid DKIM signature of %s, aligned with the envelope sender's domain %s", sig.Domain, domain)}
			}
		}
		if c.Authentication == nil {
			continue
		}
		ip := c.Client.Addr().Unmap()
		spf := c.Authentication.SPFMailFrom
		if spf.Result == mailauth.ResultPass && spf.Domain == domain {
			return Auth{OK: true, Method: "spf", Reason: fmt.Sprintf("SPF pass for %s from %s", domain, ip)}
		}
		r := fmt.Sprintf("SPF %s for %s from %s", spf.Result, domain, ip)
		if spf.Reason != "" {
			r += " (" + spf.Reason + ")"
		}
		if !slices.Contains(spfResults, r) {
			// Each mail of a sender says the same: once is enough.
			spfResults = append(spfResults, r)
		}
	}
	if len(spfResults) == 0 {
		return Auth{Reason: "no valid DKIM signature aligned with " + domain + ", and no evaluated mail of the test came with the envelope sender's domain " + domain}
	}
	return Auth{Reason: "the test mail's sender was not authenticated: " + strings.Join(spfResults, "; ") +
		", and no valid DKIM signature aligned with " + domain}
}

// SenderDomain is the lower-case domain of an envelope address, without
// angle brackets or a trailing dot; "" for the null sender or an address
// without a domain.
func SenderDomain(addr string) string {
	return mailauth.SenderDomain(addr)
}
