package resolver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// poolServer is a unit-test DNS server on 127.0.0.1 (UDP and TCP on one
// port) that records the source address of every UDP query.
type poolServer struct {
	addr string
	mu   sync.Mutex
	srcs map[string]int
}

func (s *poolServer) sources() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.srcs)
}

func startPoolServer(t *testing.T) *poolServer {
	t.Helper()
	s := &poolServer{srcs: map[string]int{}}
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		udp := w.RemoteAddr().Network() == "udp"
		if udp {
			s.mu.Lock()
			s.srcs[w.RemoteAddr().String()]++
			s.mu.Unlock()
		}
		m := new(dns.Msg)
		m.SetReply(r)
		name := r.Question[0].Name
		switch {
		case name == "slow.example.":
			time.Sleep(600 * time.Millisecond) // after the client's timeout
		case name == "wrongq.example.":
			m.Question[0].Name = "other.example."
		case name == "big.example." && udp:
			m.Truncated = true
			_ = w.WriteMsg(m)
			return
		}
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{"for " + name}})
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ; i++ { // the same port for UDP and TCP (bounded retries)
		var err error
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
		if i == 20 {
			t.Fatal(err)
		}
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: handler}, {Listener: ln, Handler: handler}} {
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	s.addr = pc.LocalAddr().String()
	return s
}

func newPoolResolver(t *testing.T, addr string) *Resolver {
	t.Helper()
	r, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	if r.pool == nil {
		t.Fatal("a loopback resolver must reuse its sockets")
	}
	r.timeout = 300 * time.Millisecond
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func wantTXT(t *testing.T, r *Resolver, name string) {
	t.Helper()
	txt, err := r.LookupTXT(context.Background(), name)
	if err != nil || len(txt) != 1 || txt[0] != "for "+name+"." {
		t.Fatalf("%s: %q, %v", name, txt, err)
	}
}

func TestPoolReusesOneSocketForSequentialQueries(t *testing.T) {
	s := startPoolServer(t)
	r := newPoolResolver(t, s.addr)
	for i := range 20 {
		wantTXT(t, r, fmt.Sprintf("n%d.example", i))
	}
	if n := s.sources(); n != 1 {
		t.Fatalf("20 sequential queries came from %d source ports, want 1", n)
	}
	if n := r.pool.idleCount(); n != 1 {
		t.Fatalf("%d idle sockets, want 1", n)
	}
	if err := r.Close(); err != nil || r.pool.idleCount() != 0 {
		t.Fatalf("Close: %v, %d idle", err, r.pool.idleCount())
	}
	wantTXT(t, r, "after-close.example") // still works, on its own socket
	if n := r.pool.idleCount(); n != 0 {
		t.Fatalf("a closed pool keeps %d sockets", n)
	}
}

func TestPoolConcurrentQueriesGetTheirOwnAnswers(t *testing.T) {
	s := startPoolServer(t)
	r := newPoolResolver(t, s.addr)
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*25)
	for w := range workers {
		wg.Go(func() {
			for i := range 25 {
				name := fmt.Sprintf("w%d-%d.example", w, i)
				txt, err := r.LookupTXT(context.Background(), name)
				if err != nil || len(txt) != 1 || txt[0] != "for "+name+"." {
					errs <- fmt.Errorf("%s: %q, %v", name, txt, err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// One query in flight per socket: never more sockets than queries at once.
	if n := s.sources(); n > workers {
		t.Fatalf("%d source ports for %d concurrent workers", n, workers)
	}
	if n := r.pool.idleCount(); n > poolMaxIdle {
		t.Fatalf("%d idle sockets, bound %d", n, poolMaxIdle)
	}
}

func TestPoolDropsSocketAfterTimeout(t *testing.T) {
	s := startPoolServer(t)
	r := newPoolResolver(t, s.addr)
	wantTXT(t, r, "first.example")
	if _, err := r.LookupTXT(context.Background(), "slow.example"); err == nil {
		t.Fatal("an answer after the timeout must not count")
	}
	if n := r.pool.idleCount(); n != 0 {
		t.Fatalf("the timed-out socket went back to the pool (%d idle)", n)
	}
	// The next query is on a new socket; the late answer to slow.example,
	// when it comes, goes to a closed one and cannot be taken for this one.
	wantTXT(t, r, "next.example")
	time.Sleep(400 * time.Millisecond) // let the late answer arrive
	wantTXT(t, r, "later.example")
	if n := s.sources(); n != 2 {
		t.Fatalf("%d source ports, want 2 (one dropped after the timeout)", n)
	}
}

func TestPoolRejectsAnswerToAnotherQuestion(t *testing.T) {
	s := startPoolServer(t)
	r := newPoolResolver(t, s.addr)
	_, err := r.LookupTXT(context.Background(), "wrongq.example")
	if !errors.Is(err, errQuestionMismatch) {
		t.Fatalf("answer for another question: %v", err)
	}
	if n := r.pool.idleCount(); n != 0 {
		t.Fatalf("the socket went back to the pool (%d idle)", n)
	}
	wantTXT(t, r, "ok.example")
}

func TestPoolTruncatedAnswerRetriedOverTCP(t *testing.T) {
	s := startPoolServer(t)
	r := newPoolResolver(t, s.addr)
	wantTXT(t, r, "big.example")
	if n := r.pool.idleCount(); n != 1 {
		t.Fatalf("the UDP socket of a truncated answer is fine to reuse; %d idle", n)
	}
}

func TestPoolSweepClosesIdleSockets(t *testing.T) {
	s := startPoolServer(t)
	r := newPoolResolver(t, s.addr)
	wantTXT(t, r, "a.example")
	r.pool.mu.Lock()
	pc := r.pool.idle[0]
	pc.idleSince = time.Now().Add(-2 * poolIdleTimeout)
	r.pool.mu.Unlock()
	r.pool.sweep()
	if n := r.pool.idleCount(); n != 0 {
		t.Fatalf("%d idle sockets after the sweep", n)
	}
	if _, err := pc.Write([]byte{0}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("the swept socket is still open: %v", err)
	}
}

func TestNoPoolOffLoopback(t *testing.T) {
	r, err := New("192.0.2.53:53") // never contacted
	if err != nil {
		t.Fatal(err)
	}
	if r.pool != nil {
		t.Fatal("a remote resolver must use a fresh socket (source port) per query, RFC 5452 §9.2")
	}
}
