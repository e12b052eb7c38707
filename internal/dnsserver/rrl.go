package dnsserver

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Response rate limiting (RRL) for UDP, as BIND and Knot do it: an
// authoritative server is an amplifier for anyone who can spoof a victim's
// address, so the answers going to one client network for one kind of
// answer are limited to a rate. Past the rate, every slip-th answer goes
// out as a bare truncated reply (TC=1, no records: no amplification), and
// the rest are dropped. A real resolver behind that network, unlucky
// enough to share the bucket with the flood, retries over TCP after the
// truncated reply (RFC 7766 §5), which is not limited. TCP needs a
// completed handshake, so it cannot be spoofed.
//
// The table is a fixed array of slots: a flood of random keys cannot grow
// it. Two keys that hash to one slot share it while both are active (the
// cost is an innocent client limited early); an idle slot is taken over.

// RRL configures response rate limiting.
type RRL struct {
	// ResponsesPerSecond is the rate of answers per client network and
	// answer kind; 0 turns RRL off.
	ResponsesPerSecond int
	// Slip: every Slip-th limited answer is sent truncated (TC=1), the
	// others dropped; 0 drops them all, 1 truncates them all.
	Slip int
	// PrefixV4 and PrefixV6 are the client network sizes (BIND: /24, /56).
	PrefixV4, PrefixV6 int
}

const (
	rrlSlots  = 1 << 16
	rrlShards = 64
)

// rrlAction is what to do with one answer.
type rrlAction int

const (
	rrlSend     rrlAction = iota // under the rate: the full answer
	rrlTruncate                  // over the rate, a slip: TC=1 and no records
	rrlDrop                      // over the rate: nothing
)

type rrlSlot struct {
	key     uint64
	tat     int64 // theoretical arrival time of the next answer (GCRA), ns
	limited uint32
}

type rrlShard struct {
	mu    sync.Mutex
	slots [rrlSlots / rrlShards]rrlSlot
}

// rateLimiter is the RRL table of one server.
type rateLimiter struct {
	cfg      RRL
	interval int64 // ns between answers at the rate
	burst    int64 // ns of credit: one second of answers
	seed     maphash.Seed
	shards   [rrlShards]rrlShard
}

func newRateLimiter(cfg RRL) *rateLimiter {
	if cfg.ResponsesPerSecond <= 0 {
		return nil
	}
	if cfg.PrefixV4 <= 0 || cfg.PrefixV4 > 32 {
		cfg.PrefixV4 = 24
	}
	if cfg.PrefixV6 <= 0 || cfg.PrefixV6 > 128 {
		cfg.PrefixV6 = 56
	}
	interval := int64(time.Second) / int64(cfg.ResponsesPerSecond)
	return &rateLimiter{cfg: cfg, interval: interval, burst: int64(time.Second) - interval, seed: maphash.MakeSeed()}
}

// answerKind is the RRL bucket of an answer (BIND's "response type"): one
// per name and type for positive answers, and one for all NXDOMAIN, all
// REFUSED and all errors of a client network, so that random names (the
// usual flood) fall into one bucket.
func answerKind(rcode int, name string, qtype uint16) (string, uint16) {
	switch rcode {
	case dns.RcodeSuccess:
		return name, qtype
	case dns.RcodeNameError:
		return "\x00nxdomain", 0
	case dns.RcodeRefused:
		return "\x00refused", 0
	}
	return "\x00error", 0
}

// decide counts one answer to client and says whether to send it.
func (l *rateLimiter) decide(now time.Time, client netip.Addr, rcode int, name string, qtype uint16) rrlAction {
	client = client.Unmap()
	bits := l.cfg.PrefixV6
	if client.Is4() {
		bits = l.cfg.PrefixV4
	}
	prefix, err := client.Prefix(bits)
	if err != nil {
		return rrlSend
	}
	kind, ktype := answerKind(rcode, name, qtype)
	var h maphash.Hash
	h.SetSeed(l.seed)
	a := prefix.Addr().As16()
	_, _ = h.Write(a[:])
	_, _ = h.WriteString(kind)
	_ = h.WriteByte(byte(ktype >> 8))
	_ = h.WriteByte(byte(ktype))
	key := h.Sum64()

	t := now.UnixNano()
	shard := &l.shards[key%rrlShards]
	slot := &shard.slots[(key/rrlShards)%uint64(len(shard.slots))]
	shard.mu.Lock()
	defer shard.mu.Unlock()
	if slot.key != key && slot.tat <= t {
		// Idle (fully recovered) slot of another key: take it over.
		*slot = rrlSlot{key: key}
	}
	// GCRA: the answer conforms if the bucket's clock is not more than
	// one second of credit ahead of now.
	tat := max(slot.tat, t)
	if tat-t <= l.burst {
		slot.tat = tat + l.interval
		slot.limited = 0
		return rrlSend
	}
	slot.limited++
	if l.cfg.Slip > 0 && slot.limited%uint32(l.cfg.Slip) == 0 {
		return rrlTruncate
	}
	return rrlDrop
}

// truncatedReply turns the packed answer wire (at least a header and the
// question) into a bare truncated reply in place: TC=1, the question kept,
// no records. The client learns to ask over TCP and gets nothing to
// amplify.
func truncatedReply(wire []byte) []byte {
	if len(wire) < 12 {
		return nil
	}
	end := 12
	if wire[4] != 0 || wire[5] != 0 { // a question: keep it
		off, err := skipQuestion(wire, 12)
		if err != nil {
			return nil
		}
		end = off
	}
	out := wire[:end]
	out[2] |= 0x02 // TC
	out[4], out[5] = 0, 1
	if end == 12 {
		out[5] = 0
	}
	for i := 6; i < 12; i++ {
		out[i] = 0 // no answer, authority or additional records
	}
	return out
}

// skipQuestion returns the offset after the question at off.
func skipQuestion(wire []byte, off int) (int, error) {
	for {
		if off >= len(wire) {
			return 0, dns.ErrBuf
		}
		n := int(wire[off])
		switch {
		case n == 0:
			off++
			if off+4 > len(wire) {
				return 0, dns.ErrBuf
			}
			return off + 4, nil
		case n&0xc0 == 0xc0:
			off += 2
			if off+4 > len(wire) {
				return 0, dns.ErrBuf
			}
			return off + 4, nil
		case n&0xc0 != 0:
			return 0, dns.ErrRdata
		}
		off += 1 + n
	}
}
