package dnsserver

import (
	"sync"
	"sync/atomic"
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
	// names must not grow memory without limit. Beyond it answers are
	// built per query, which is still correct.
	answerCacheMax = 20000
)

type answerKey struct {
	name  string // lower-case query name
	qtype uint16
	edns  bool // the query had an OPT record: the answer carries ours
	do    bool
}

type cachedAnswer struct {
	wire    []byte
	rcode   int
	expires time.Time
}

type answerCache struct {
	snap *dnszone.Snapshot
	m    sync.Map // answerKey → *cachedAnswer
	n    atomic.Int64
}

// cacheFor returns the cache of snapshot snap, starting a new one (and
// dropping the old) when the rotation moved on.
func (s *Server) cacheFor(snap *dnszone.Snapshot) *answerCache {
	if c := s.cache.Load(); c != nil && c.snap == snap {
		return c
	}
	c := &answerCache{snap: snap}
	s.cache.Store(c)
	return c
}

func (c *answerCache) get(k answerKey, now time.Time) (*cachedAnswer, bool) {
	v, ok := c.m.Load(k)
	if !ok {
		return nil, false
	}
	e := v.(*cachedAnswer)
	return e, now.Before(e.expires)
}

func (c *answerCache) put(k answerKey, e *cachedAnswer) {
	if _, loaded := c.m.Swap(k, e); !loaded && c.n.Add(1) > answerCacheMax {
		c.m.Delete(k)
		c.n.Add(-1)
	}
}

// cacheKeyOf returns the cache key of a plain query; ok is false for
// anything the cache does not serve (odd opcodes or flags, several
// questions, EDNS versions or OPT placement that need an error, names with
// upper-case letters whose case must be echoed).
func cacheKeyOf(r *dns.Msg) (answerKey, bool) {
	if r.Response || r.Opcode != dns.OpcodeQuery || len(r.Question) != 1 || len(r.Answer) > 0 || len(r.Ns) > 0 {
		return answerKey{}, false
	}
	q := r.Question[0]
	if q.Qclass != dns.ClassINET || !isLowerASCII(q.Name) {
		return answerKey{}, false
	}
	k := answerKey{name: q.Name, qtype: q.Qtype}
	nopt := 0
	for _, rr := range r.Extra {
		opt, ok := rr.(*dns.OPT)
		if !ok {
			continue
		}
		nopt++
		if opt.Version() != 0 || opt.Hdr.Name != "." {
			return answerKey{}, false
		}
		k.edns, k.do = true, opt.Do()
	}
	return k, nopt <= 1
}

func isLowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' || c == '\\' {
			return false
		}
	}
	return true
}

// forQuery returns a copy of the cached answer with the query's ID and its
// RD and CD flags (RFC 1035 §4.1.1, RFC 4035 §3.2.2), the only parts of the
// header that depend on the query. The question is the same octets: the
// key includes the exact (lower-case) name.
func (e *cachedAnswer) forQuery(r *dns.Msg) []byte {
	out := make([]byte, len(e.wire))
	copy(out, e.wire)
	out[0], out[1] = byte(r.Id>>8), byte(r.Id)
	out[2] &^= 0x01 // RD
	if r.RecursionDesired {
		out[2] |= 0x01
	}
	out[3] &^= 0x10 // CD
	if r.CheckingDisabled {
		out[3] |= 0x10
	}
	return out
}
