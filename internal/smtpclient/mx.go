package smtpclient

import (
	"cmp"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

// MX is one mail exchanger of a domain.
type MX struct {
	Host       string // lower case, no trailing dot
	Preference uint16
}

// MXHosts reads an MX RRset (records of other types are ignored) the way
// RFC 5321 §5.1 asks a sender to: sorted by preference (lowest first;
// equal preferences keep the answer's order, for the caller to shuffle or
// sort further), each host once at its lowest preference, names in lower
// case without the trailing dot. A target "." is a null MX (RFC 7505 §3):
// it is left out and null reports it, so that a null MX alone (no hosts,
// null) means "no mail", and one beside real hosts (which RFC 7505 §3
// forbids) can be reported while the real hosts are used. No hosts and no
// null MX means the implicit MX, the domain itself (RFC 5321 §5.1); that
// is the caller's to apply, as it may first need to know whether the
// domain exists.
func MXHosts(rrs []dns.RR) (hosts []MX, null bool) {
	for _, rr := range rrs {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		name := canonical(mx.Mx)
		if name == "" {
			null = true
			continue
		}
		hosts = append(hosts, MX{Host: name, Preference: mx.Preference})
	}
	slices.SortStableFunc(hosts, func(a, b MX) int { return cmp.Compare(a.Preference, b.Preference) })
	seen := make(map[string]bool, len(hosts))
	out := hosts[:0]
	for _, h := range hosts {
		if !seen[h.Host] {
			seen[h.Host] = true
			out = append(out, h)
		}
	}
	return out, null
}

// TLSAName is the name of the TLSA RRset of an SMTP server: always port 25
// (RFC 7672 §2.2.3), whatever port a lab maps the connection to. host is
// the TLSA base domain: the MX host name, or the target of its
// DNSSEC-secure CNAME chain (RFC 7672 §2.2.2).
func TLSAName(host string) string { return "_25._tcp." + canonical(host) }

// canonical lower-cases a DNS name and drops the trailing dot ("."
// gives "").
func canonical(n string) string { return strings.TrimSuffix(strings.ToLower(n), ".") }
