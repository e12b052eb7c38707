// Package peertest starts real peers (Unbound, Knot, ...) on loopback for
// integration tests, in the way net/http/httptest starts servers.
//
// A test that needs a peer calls Require: without the program the test is
// skipped on a developer machine, but fails when MAILSEC_REQUIRE_PEERS=1
// (set by scripts/test and CI), so CI can never pass by skipping the proof.
package peertest

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Require returns the path of program, skipping or failing the test when it
// is not installed.
func Require(t testing.TB, program string) string {
	t.Helper()
	for _, dir := range []string{"", "/usr/sbin/", "/sbin/", "/usr/local/sbin/"} {
		name := program
		if dir != "" {
			name = dir + program
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("MAILSEC_REQUIRE_PEERS") == "1" {
		t.Fatalf("%s is not installed (MAILSEC_REQUIRE_PEERS=1); run scripts/install-deps", program)
	}
	t.Skipf("%s is not installed; set MAILSEC_REQUIRE_PEERS=1 to make this a failure", program)
	return ""
}

// FreeAddr returns an address on 127.0.0.1 whose port was free for both UDP
// and TCP a moment ago. A peer that takes its port from a config file cannot
// be handed a listening socket, so a small race remains.
func FreeAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
		l, err := net.Listen("tcp", ap.String())
		pc.Close()
		if err != nil {
			continue
		}
		l.Close()
		return ap
	}
	t.Fatal("no free port on 127.0.0.1")
	return netip.AddrPort{}
}

// Unbound is a validating resolver started for one test.
type Unbound struct {
	Addr netip.AddrPort
	Dir  string
}

// UnboundOptions configures StartUnbound.
type UnboundOptions struct {
	// Stubs maps each zone to the authoritative server Unbound asks.
	Stubs map[string]netip.AddrPort
	// TrustAnchors are DS (or DNSKEY) records in presentation format.
	TrustAnchors []string
	// Extra is appended to the server: clause.
	Extra string
}

// StartUnbound starts Unbound as a validating resolver on a free loopback
// port with the given stub zones and trust anchors (lab-recipes §1), waits
// until it answers, and stops it when the test ends.
func StartUnbound(t testing.TB, opt UnboundOptions) *Unbound {
	t.Helper()
	bin := Require(t, "unbound")
	dir := t.TempDir()
	addr := FreeAddr(t)
	var b strings.Builder
	fmt.Fprintf(&b, "server:\n")
	fmt.Fprintf(&b, "  interface: %s@%d\n  port: %d\n", addr.Addr(), addr.Port(), addr.Port())
	fmt.Fprintf(&b, "  access-control: 127.0.0.0/8 allow\n  do-ip6: no\n  username: \"\"\n  chroot: \"\"\n")
	fmt.Fprintf(&b, "  directory: %q\n  pidfile: %q\n  logfile: %q\n  use-syslog: no\n", dir, filepath.Join(dir, "unbound.pid"), filepath.Join(dir, "unbound.log"))
	// do-not-query-localhost: the default refuses to query 127.0.0.0/8.
	b.WriteString("  verbosity: 1\n  val-log-level: 2\n  log-servfail: yes\n  do-not-query-localhost: no\n")
	b.WriteString("  module-config: \"validator iterator\"\n  harden-dnssec-stripped: yes\n  val-permissive-mode: no\n")
	b.WriteString("  trust-anchor-signaling: no\n  aggressive-nsec: no\n  qname-minimisation: yes\n")
	b.WriteString("  cache-max-ttl: 1\n  cache-max-negative-ttl: 1\n  prefetch: no\n  num-threads: 1\n")
	for _, ta := range opt.TrustAnchors {
		fmt.Fprintf(&b, "  trust-anchor: %q\n", anchorText(ta))
	}
	b.WriteString(opt.Extra)
	for zone, server := range opt.Stubs {
		fmt.Fprintf(&b, "stub-zone:\n  name: %q\n  stub-addr: %s@%d\n  stub-no-cache: yes\n", dns.Fqdn(zone), server.Addr(), server.Port())
	}
	b.WriteString("remote-control:\n  control-enable: no\n")
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(Require(t, "unbound-checkconf"), conf).CombinedOutput(); err != nil {
		t.Fatalf("unbound-checkconf: %v\n%s\n%s", err, out, b.String())
	}
	cmd := exec.Command(bin, "-d", "-c", conf)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting unbound: %v", err)
	}
	u := &Unbound{Addr: addr, Dir: dir}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("unbound log:\n%s", u.Log())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := new(dns.Msg)
		m.SetQuestion("localhost.", dns.TypeA)
		c := &dns.Client{Timeout: 300 * time.Millisecond}
		if _, _, err := c.Exchange(m, addr.String()); err == nil {
			return u
		}
		if time.Now().After(deadline) {
			t.Fatalf("unbound did not answer on %s within 10s\n%s", addr, u.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns Unbound's log file.
func (u *Unbound) Log() string {
	b, _ := os.ReadFile(filepath.Join(u.Dir, "unbound.log"))
	return string(b)
}

// Query asks the resolver with the DO bit set and returns the answer.
func (u *Unbound) Query(t testing.TB, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.SetEdns0(1232, true)
	c := &dns.Client{Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, u.Addr.String())
	if err != nil {
		t.Fatalf("query %s %s: %v", name, dns.TypeToString[qtype], err)
	}
	return r
}

// anchorText turns "name TTL IN DS ..." into "name DS ...", the form of
// Unbound's trust-anchor option.
func anchorText(rr string) string {
	f := strings.Fields(rr)
	for i, w := range f {
		if (w == "DS" || w == "DNSKEY") && i > 0 {
			return f[0] + " " + strings.Join(f[i:], " ")
		}
	}
	return rr
}

// Lines returns the non-empty lines of s.
func Lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}
