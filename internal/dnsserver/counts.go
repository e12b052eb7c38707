package dnsserver

import (
	"sync/atomic"

	"github.com/miekg/dns"
)

// countedTypes are the query types counted under their own name; the rest
// are counted as "other", so that a client sending every type number
// cannot grow the operator's metrics without bound.
var countedTypes = [...]uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeMX, dns.TypeTXT, dns.TypeTLSA, dns.TypeNS, dns.TypeSOA,
	dns.TypeDNSKEY, dns.TypeDS, dns.TypeCNAME, dns.TypePTR, dns.TypeCAA, dns.TypeSVCB,
	dns.TypeHTTPS, dns.TypeNSEC, dns.TypeANY,
}

// countedRcodes: NOERROR … NOTZONE (RFC 1035 §4.1.1, RFC 2136 §2.2) and
// BADVERS (RFC 6891 §9); the rest are "other".
var countedRcodes = [...]int{
	dns.RcodeSuccess, dns.RcodeFormatError, dns.RcodeServerFailure, dns.RcodeNameError,
	dns.RcodeNotImplemented, dns.RcodeRefused, dns.RcodeBadVers,
}

// queryCounts counts answered queries by type and rcode, lock-free: one
// counter per (type, rcode) pair, the last index of each being "other".
type queryCounts struct {
	n [len(countedTypes) + 1][len(countedRcodes) + 1]atomic.Int64
}

func typeIndex(t uint16) int {
	for i, c := range countedTypes {
		if c == t {
			return i
		}
	}
	return len(countedTypes)
}

func rcodeIndex(r int) int {
	for i, c := range countedRcodes {
		if c == r {
			return i
		}
	}
	return len(countedRcodes)
}

func (q *queryCounts) add(qtype uint16, rcode int) {
	q.n[typeIndex(qtype)][rcodeIndex(rcode)].Add(1)
}

// QueryCount is the number of answered queries of one type and rcode.
type QueryCount struct {
	Type, Rcode string // "other" for the ones not counted by name
	Count       int64
}

// Queries returns the answered queries since the start by type and rcode,
// the pairs seen at least once. Queries without exactly one question are
// not counted (they are answered FORMERR without a type).
func (s *Server) Queries() []QueryCount {
	var out []QueryCount
	for ti := range s.queries.n {
		for ri := range s.queries.n[ti] {
			n := s.queries.n[ti][ri].Load()
			if n == 0 {
				continue
			}
			qc := QueryCount{Type: "other", Rcode: "other", Count: n}
			if ti < len(countedTypes) {
				qc.Type = dns.TypeToString[countedTypes[ti]]
			}
			if ri < len(countedRcodes) {
				qc.Rcode = dns.RcodeToString[countedRcodes[ri]]
			}
			out = append(out, qc)
		}
	}
	return out
}
