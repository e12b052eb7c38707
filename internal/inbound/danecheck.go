package inbound

import (
	"crypto/tls"

	"github.com/mailsec/mailsec/internal/dane"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// daneVerdict judges one address by the host's TLSA records (RFC 7672 §3).
// Unlike the rules of checkreport it runs while the check observes: it
// needs the certificate chain the server sent (Address.Peer), which the
// report does not keep; the report records its outcome (Address.DANE).
func (c *checker) daneVerdict(mxState checkreport.DNSSEC, h *checkreport.Host, records []dane.TLSA, base string, a *Address) DANEInfo {
	info := DANEInfo{Matched: []string{}}
	secure, why := checkreport.SecureTLSAPath(mxState, h)
	switch {
	case h.TLSA.DNSSEC == checkreport.Bogus || h.TLSA.Error != "":
		info.Detail = "TLSA look-up failed: " + h.TLSA.Error
	case len(records) == 0:
		info.State = checkreport.DANENone
	case !secure:
		info.State, info.Detail = checkreport.DANENotSecure, why
	case h.TLSA.Usable == 0:
		info.State, info.Detail = checkreport.DANEUnusable, "only usages 0 and 1, or unknown parameters (RFC 7672 §3.1.3)"
	case a.Status != StatusOK:
		info.Detail = "address not tested"
	case len(a.Peer) == 0:
		info.State, info.Detail = checkreport.DANEMismatch, "no TLS session (STARTTLS missing or failed): DANE senders defer"
	default:
		cs := tls.ConnectionState{PeerCertificates: a.Peer}
		res, err := dane.Verify(cs, records, base, c.now)
		if err != nil && base != h.Name {
			// RFC 7672 §3.2.2: the MX host name is a reference identifier too.
			if r2, err2 := dane.Verify(cs, records, h.Name, c.now); err2 == nil {
				res, err = r2, nil
			}
		}
		if err != nil {
			info.State, info.Detail = checkreport.DANEMismatch, untrusted.Printable(res.Summary(), 500)
			break
		}
		info.State = checkreport.DANEValid
		for _, ch := range res.Checks {
			if ch.Matched {
				info.Matched = append(info.Matched, ch.Record.String())
			}
		}
	}
	return info
}
