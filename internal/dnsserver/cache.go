package dnsserver

import (
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnszone"
)

// The answer cache keeps packed answers for one zone snapshot, so that a
// repeated question costs a map look-up and a copy instead of a look-up,
// signing and packing. It is the online-signing counterpart of a pre-signed
// zone: signatures are still made on demand, once.
const (
	// answerCacheLifetime bounds how long an answer is reused. Signatures
	// are refreshed days before they expire (dnssec.refresh_before), so a
	// minute's delay in picking up a new one is harmless.
	answerCacheLifetime = time.Minute
	// answerCacheMax bounds the entries per snapshot: a flood of random
	// names (or of one name in many letter cases) must not grow memory
	// without limit. Beyond it answers are built per query, still correct.
	answerCacheMax = 20000
)

// Cache keys are the question's name exactly as on the wire (labels, case
// preserved, no compression), then the type and a flags octet. Keeping the
// received octets means a cached answer echoes the question exactly (RFC
// 1035 §7.3, 0x20 case randomisation), and the fast UDP path can look an
// answer up without decoding the name or allocating.
const (
	keyFlagEDNS = 1 << 0 // the query had an OPT record: the answer carries ours
	keyFlagDO   = 1 << 1 // DNSSEC OK
)

type cachedAnswer struct {
	wire    []byte
	rcode   int
	name    string // question name, lower-case presentation form, for the query log
	expires time.Time
}

type answerCache struct {
	snap *dnszone.Snapshot
	mu   sync.RWMutex
	m    map[string]*cachedAnswer
}

// cacheFor returns the cache of snapshot snap, starting a new one (and
// dropping the old) when the rotation moved on.
func (s *Server) cacheFor(snap *dnszone.Snapshot) *answerCache {
	if c := s.cache.Load(); c != nil && c.snap == snap {
		return c
	}
	c := &answerCache{snap: snap, m: map[string]*cachedAnswer{}}
	if s.cache.CompareAndSwap(s.cache.Load(), c) {
		return c
	}
	return s.cacheFor(snap)
}

// get looks key up; the string(key) conversion in the index does not allocate.
func (c *answerCache) get(key []byte, now time.Time) (*cachedAnswer, bool) {
	c.mu.RLock()
	e, ok := c.m[string(key)]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return nil, false
	}
	return e, true
}

func (c *answerCache) put(key []byte, e *cachedAnswer) {
	c.mu.Lock()
	if _, ok := c.m[string(key)]; ok || len(c.m) < answerCacheMax {
		c.m[string(key)] = e
	}
	c.mu.Unlock()
}

// appendKey appends the cache key of a question to buf.
func appendKey(buf, wireName []byte, qtype uint16, edns, do bool) []byte {
	buf = append(buf, wireName...)
	var flags byte
	if edns {
		flags |= keyFlagEDNS
	}
	if do {
		flags |= keyFlagDO
	}
	return append(buf, byte(qtype>>8), byte(qtype), flags)
}

// cacheKeyOf returns the cache key of a decoded query; ok is false for
// anything the cache does not serve (odd opcodes or flags, several
// questions, other classes, EDNS versions or OPT placement that need an
// error).
func cacheKeyOf(r *dns.Msg) (key []byte, ok bool) {
	if r.Response || r.Opcode != dns.OpcodeQuery || r.Truncated || len(r.Question) != 1 || len(r.Answer) > 0 || len(r.Ns) > 0 {
		return nil, false
	}
	q := r.Question[0]
	if q.Qclass != dns.ClassINET {
		return nil, false
	}
	var edns, do bool
	for _, rr := range r.Extra {
		opt, isOPT := rr.(*dns.OPT)
		if !isOPT || edns || opt.Version() != 0 || opt.Hdr.Name != "." {
			return nil, false
		}
		edns, do = true, opt.Do()
	}
	var name [256]byte
	n, err := dns.PackDomainName(dns.Fqdn(q.Name), name[:], 0, nil, false)
	if err != nil {
		return nil, false
	}
	return appendKey(make([]byte, 0, n+3), name[:n], q.Qtype, edns, do), true
}

// forQuery writes the cached answer into out (grown as needed) with the
// query's ID and its RD and CD flags (RFC 1035 §4.1.1, RFC 4035 §3.2.2),
// the only parts of the header that depend on the query; the question is
// the same octets, since the key holds them.
func (e *cachedAnswer) forQuery(out []byte, id uint16, rd, cd bool) []byte {
	out = append(out[:0], e.wire...)
	out[0], out[1] = byte(id>>8), byte(id)
	out[2] &^= 0x01 // RD
	if rd {
		out[2] |= 0x01
	}
	out[3] &^= 0x10 // CD
	if cd {
		out[3] |= 0x10
	}
	return out
}

func lowerName(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
