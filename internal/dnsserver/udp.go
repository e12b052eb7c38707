package dnsserver

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

// UDP is served by our own loop rather than dns.Server's: it reads and
// writes datagrams in batches (recvmmsg/sendmmsg through x/net), answers
// in the reading goroutine instead of one goroutine per packet, and serves
// answer-cache hits straight from the wire form of the question
// (fastQuery), without decoding the message. Everything else — misses,
// errors, odd flags — takes the full path: dns.Msg.Unpack and respond,
// exactly as over TCP. TestFastPathMatchesFullPath holds the two to the
// same bytes.

const (
	udpBatch = 64
	// udpReadSize is the largest query read. Real queries are a few
	// hundred octets; a longer datagram is cut and then fails to parse
	// (FORMERR), as with dns.Server's default buffers.
	udpReadSize = 4096
)

// batchConn is what x/net's ipv4.PacketConn provides; on Linux ReadBatch
// and WriteBatch are recvmmsg and sendmmsg, for IPv4 and IPv6 sockets alike.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func (s *Server) serveUDP(pc net.PacketConn) error {
	bc := batchConn(ipv4.NewPacketConn(pc))
	in := make([]ipv4.Message, udpBatch)
	for i := range in {
		in[i].Buffers = [][]byte{make([]byte, udpReadSize)}
	}
	out := make([]ipv4.Message, 0, udpBatch)
	bufs := make([][]byte, udpBatch)
	for i := range bufs {
		bufs[i] = make([]byte, 0, 1232)
	}
	var key []byte
	for {
		n, err := bc.ReadBatch(in, 0)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		now := s.now()
		out = out[:0]
		for i := range n {
			m := &in[i]
			ua, _ := m.Addr.(*net.UDPAddr)
			if ua == nil {
				continue
			}
			client := ua.AddrPort()
			var reply []byte
			reply, key = s.handleUDP(now, m.Buffers[0][:m.N], client, bufs[i][:0], key)
			if reply == nil {
				continue
			}
			bufs[i] = reply[:0] // keep a grown buffer for the next batch
			out = append(out, ipv4.Message{Buffers: [][]byte{reply}, Addr: m.Addr})
		}
		for sent := 0; sent < len(out); {
			k, err := bc.WriteBatch(out[sent:], 0)
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return nil
				}
				s.log.Debug("dns udp write failed", "err", err)
				break // the client retries; never spin on a bad address
			}
			sent += k
		}
	}
}

// handleUDP answers one datagram into buf; it returns nil for no answer.
// key is scratch space for the cache key, returned for reuse.
func (s *Server) handleUDP(now time.Time, pkt []byte, client netip.AddrPort, buf, key []byte) (reply, keyOut []byte) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("dns udp panic", "panic", p, "client", client.String())
			reply = nil
		}
	}()
	if q, ok := parseFastQuery(pkt); ok {
		key = appendKey(key[:0], q.name, q.qtype, q.edns, q.do)
		if e, hit := s.cacheFor(s.auth.Snapshot(now)).get(key, now); hit && len(e.wire) <= q.udpLimit(s.udpSize) {
			s.record(now, client, false, e.name, q.qtype, q.do, q.ecs, e.rcode)
			return s.limit(now, client, len(pkt), e.forQuery(buf, q.id, q.rd, q.cd), e.rcode, e.name, q.qtype), key
		}
	}
	r := new(dns.Msg)
	if err := r.Unpack(pkt); err != nil {
		return formErr(pkt, buf), key
	}
	wire, rcode, name, ok := s.respond(now, r, false, buf)
	if !ok {
		return nil, key
	}
	if len(r.Question) == 1 {
		var do bool
		var ecs string
		if opt := r.IsEdns0(); opt != nil {
			do, ecs = opt.Do(), clientSubnet(opt)
		}
		s.record(now, client, false, name, r.Question[0].Qtype, do, ecs, rcode)
		return s.limit(now, client, len(pkt), wire, rcode, name, r.Question[0].Qtype), key
	}
	return wire, key
}

// limit applies the amplification cap and response rate limiting to one
// UDP answer to a query of qlen octets: the answer, a bare truncated
// reply, or nil (dropped). The query is still recorded (the query log has
// its own bounds): a limited query was asked.
func (s *Server) limit(now time.Time, client netip.AddrPort, qlen int, wire []byte, rcode int, name string, qtype uint16) []byte {
	if s.maxAmplification > 0 && len(wire) > s.maxAmplification*qlen {
		// An answer this much larger than its question is what a spoofer
		// wants (a short name's signed NXDOMAIN is ~11×): over UDP it
		// becomes a truncated reply, and a real resolver asks again over
		// TCP, whose handshake cannot be spoofed (RFC 7766 §5).
		if t := truncatedReply(wire); t != nil {
			s.amplificationCut.Add(1)
			wire = t
		}
	}
	if s.rrl == nil {
		return wire
	}
	switch s.rrl.decide(now, client.Addr(), rcode, name, qtype) {
	case rrlTruncate:
		s.rrlSlipped.Add(1)
		return truncatedReply(wire)
	case rrlDrop:
		s.rrlDropped.Add(1)
		return nil
	}
	return wire
}

// formErr answers a query that does not parse with a bare FORMERR header
// (as dns.Server does); garbage without a whole header, and responses, get
// nothing: any answer to those could be used for amplification or loops.
func formErr(pkt, buf []byte) []byte {
	if len(pkt) < 12 || pkt[2]&0x80 != 0 {
		return nil
	}
	out := append(buf[:0], pkt[0], pkt[1],
		0x80|pkt[2]&0x78|pkt[2]&0x01, // QR, the query's opcode, RD
		dns.RcodeFormatError,
		0, 0, 0, 0, 0, 0, 0, 0)
	if opcode := pkt[2] >> 3 & 0x0f; opcode != dns.OpcodeQuery && opcode != dns.OpcodeNotify {
		out[3] = dns.RcodeNotImplemented
	}
	return out
}

// fastQuery is a plain query read straight from the wire.
type fastQuery struct {
	id       uint16
	rd, cd   bool
	name     []byte // the question name as received (within the packet)
	qtype    uint16
	edns, do bool
	udpSize  uint16
	ecs      string
}

func (q *fastQuery) udpLimit(ours uint16) int {
	if !q.edns {
		return dns.MinMsgSize
	}
	return int(min(max(q.udpSize, dns.MinMsgSize), ours))
}

// parseFastQuery accepts only the common, unremarkable query: QR 0, opcode
// QUERY, TC 0, one question of class IN with an uncompressed name, no
// answer or authority records, at most one additional record which is an
// EDNS(0) OPT at the root with no options but client subnet, cookie and
// padding, nothing after it. Anything else is left to the
// full decoder, which knows every rule (FORMERR, BADVERS, NOTIMP ...).
func parseFastQuery(p []byte) (q fastQuery, ok bool) {
	if len(p) < 12+5 {
		return q, false
	}
	if p[2]&0xfa != 0 { // QR, opcode, AA, TC must be 0 (RD may be set)
		return q, false
	}
	if binary.BigEndian.Uint16(p[4:]) != 1 || binary.BigEndian.Uint16(p[6:]) != 0 || binary.BigEndian.Uint16(p[8:]) != 0 {
		return q, false
	}
	arcount := binary.BigEndian.Uint16(p[10:])
	if arcount > 1 {
		return q, false
	}
	q.id = binary.BigEndian.Uint16(p)
	q.rd = p[2]&0x01 != 0
	q.cd = p[3]&0x10 != 0
	off := 12
	for {
		if off >= len(p) {
			return q, false
		}
		l := int(p[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 { // compression pointers and extended label types
			return q, false
		}
		off += 1 + l
		if off-12 > 255 { // RFC 1035 §3.1: names are at most 255 octets
			return q, false
		}
	}
	q.name = p[12:off]
	if off+4 > len(p) {
		return q, false
	}
	q.qtype = binary.BigEndian.Uint16(p[off:])
	if binary.BigEndian.Uint16(p[off+2:]) != dns.ClassINET {
		return q, false
	}
	off += 4
	if arcount == 1 {
		// OPT: root name, type 41, class = UDP size, TTL = extended
		// rcode, version, flags; then RDLENGTH and options.
		if off+11 > len(p) || p[off] != 0 || binary.BigEndian.Uint16(p[off+1:]) != dns.TypeOPT {
			return q, false
		}
		if p[off+6] != 0 { // version 0 only; the full path answers BADVERS
			return q, false
		}
		q.edns = true
		q.udpSize = binary.BigEndian.Uint16(p[off+3:])
		q.do = p[off+7]&0x80 != 0
		rdlen := int(binary.BigEndian.Uint16(p[off+9:]))
		off += 11
		if off+rdlen != len(p) {
			return q, false
		}
		opts := p[off : off+rdlen]
		for len(opts) > 0 {
			if len(opts) < 4 {
				return q, false
			}
			code, l := binary.BigEndian.Uint16(opts), int(binary.BigEndian.Uint16(opts[2:]))
			if 4+l > len(opts) {
				return q, false
			}
			switch code {
			case dns.EDNS0SUBNET:
				ecs, ok := parseECS(opts[4 : 4+l])
				if !ok {
					return q, false
				}
				q.ecs = ecs
			case dns.EDNS0COOKIE, dns.EDNS0PADDING:
				// The full decoder takes these at any length; we
				// ignore them (RFC 7873 §5.2: a server without
				// cookie support ignores the option).
			default:
				// Other options have decoding rules of their own
				// (LLQ, UL, EXPIRE, ...): leave them to the full
				// decoder rather than mirror each one.
				return q, false
			}
			opts = opts[4+l:]
		}
		off += rdlen
	}
	return q, off == len(p)
}

// parseECS reads an EDNS Client Subnet option (RFC 7871 §6) into prefix
// text; the query log records it as evidence of the resolver's client. It
// accepts exactly what the full decoder (miekg/dns) accepts, so both paths
// agree on which queries are malformed.
func parseECS(b []byte) (string, bool) {
	if len(b) < 4 {
		return "", false
	}
	family, bits, scope := binary.BigEndian.Uint16(b), int(b[2]), int(b[3])
	var a netip.Addr
	switch family {
	case 0: // dig's "no address": allowed with netmask 0 only
		if bits != 0 {
			return "", false
		}
		a = netip.IPv4Unspecified()
	case 1, 2: // IPv4, IPv6 (the address family numbers of IANA)
		size := 4
		if family == 2 {
			size = 16
		}
		if bits > 8*size || scope > 8*size {
			return "", false
		}
		// The address is sent cut to the prefix; the rest is zero.
		var v [16]byte
		copy(v[:size], b[4:])
		a, _ = netip.AddrFromSlice(v[:size])
	default:
		return "", false
	}
	pfx, err := a.Prefix(bits)
	if err != nil {
		return "", false
	}
	return pfx.String(), true
}
