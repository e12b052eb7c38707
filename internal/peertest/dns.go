package peertest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// ScriptedDNS is an authoritative DNS server on loopback (UDP) that answers
// from records a test sets: the user's domain in tests of what mailsec
// does with a sender's domain (SPF, MX). Names it has no record of are
// NXDOMAIN; Fail makes a name and type answer with an error code.
type ScriptedDNS struct {
	// Addr is the server's address, host:port.
	Addr string

	mu  sync.Mutex
	rrs map[string][]dns.RR // "name./TYPE", lower-case
	bad map[string]int      // rcode overrides
}

// StartDNS starts a ScriptedDNS for the test's lifetime.
func StartDNS(t testing.TB) *ScriptedDNS {
	t.Helper()
	f := &ScriptedDNS{rrs: map[string][]dns.RR{}, bad: map[string]int{}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(f.serve)}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	f.Addr = pc.LocalAddr().String()
	return f
}

func (f *ScriptedDNS) serve(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	if len(r.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	key := strings.ToLower(q.Name) + "/" + dns.TypeToString[q.Qtype]
	f.mu.Lock()
	m.Answer = f.rrs[key]
	if rc, ok := f.bad[key]; ok {
		m.Rcode = rc
	} else if m.Answer == nil && !f.nameExists(strings.ToLower(q.Name)) {
		m.Rcode = dns.RcodeNameError
	}
	f.mu.Unlock()
	_ = w.WriteMsg(m)
}

func (f *ScriptedDNS) nameExists(name string) bool {
	for k := range f.rrs {
		if strings.HasPrefix(k, name+"/") {
			return true
		}
	}
	return false
}

// Set adds records, in zone file syntax ("user.example. 60 IN MX 10 mx.user.example.").
func (f *ScriptedDNS) Set(t testing.TB, records ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		k := strings.ToLower(rr.Header().Name) + "/" + dns.TypeToString[rr.Header().Rrtype]
		f.rrs[k] = append(f.rrs[k], rr)
	}
}

// Fail makes questions for name and qtype ("TXT") answer rcode
// (dns.RcodeServerFailure, say).
func (f *ScriptedDNS) Fail(name, qtype string, rcode int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bad[strings.ToLower(dns.Fqdn(name))+"/"+qtype] = rcode
}
