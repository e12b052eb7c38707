package dnssec

import (
	"strings"

	"github.com/miekg/dns"
)

// CompareCanonical orders two domain names canonically (RFC 4034 §6.1):
// label by label from the right, each label compared as lower-cased octets,
// a name sorting before its own descendants.
func CompareCanonical(a, b string) int {
	la, lb := wireLabels(a), wireLabels(b)
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := strings.Compare(la[i], lb[j]); c != 0 {
			return c
		}
	}
	return len(la) - len(lb)
}

// wireLabels returns the labels of a presentation-format name as lower-cased
// octet strings, escapes (\. \DDD) resolved, so that ordering follows the
// wire form.
func wireLabels(name string) []string {
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return []string{strings.ToLower(name)}
	}
	var labels []string
	for i := 0; i < off; {
		l := int(buf[i])
		if l == 0 {
			break
		}
		labels = append(labels, asciiLower(buf[i+1:i+1+l]))
		i += 1 + l
	}
	return labels
}

func asciiLower(b []byte) string {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return string(out)
}
