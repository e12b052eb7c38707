package testslot

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/mailsec/mailsec/internal/persona"
)

func TestNames(t *testing.T) {
	p := Pool{ZoneA: "A.Mailtest.Example.", ZoneB: "b.mailtest.example", Count: 12}
	if got := p.Domain(7, persona.ZoneA); got != "s007.a.mailtest.example" {
		t.Errorf("Domain(7, A) = %q", got)
	}
	if got := p.Domain(0, persona.ZoneB); got != "b.mailtest.example" {
		t.Errorf("Domain(0, B) = %q", got)
	}
	if got := p.Host("mx7", 12, persona.ZoneB); got != "mx7.s012.b.mailtest.example" {
		t.Errorf("Host = %q", got)
	}
	if hs := p.Hosts("mta-sts", persona.ZoneA); len(hs) != 12 || hs[0] != "mta-sts.s001.a.mailtest.example" || hs[11] != "mta-sts.s012.a.mailtest.example" {
		t.Errorf("Hosts = %q", hs)
	}
}

func TestSlotNames(t *testing.T) {
	p := Pool{ZoneA: "a.example", ZoneB: "b.example", Count: 3}
	names := p.Names(2)
	for _, want := range []string{"s002.a.example.", "_25._tcp.mx4.s002.a.example.", "_tcp.mx6.s002.a.example.", "_mta-sts.s002.a.example.",
		"mta-sts.s002.a.example.", "s002.b.example.", "mx7.s002.b.example.", "_25._tcp.mx7.s002.b.example.", "_mta-sts.s002.b.example."} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("Names(2) lacks %s", want)
		}
	}
	for _, n := range names {
		if _, _, ok := p.Parse(n); !ok {
			if _, _, _, ok := p.ParseHost(n); !ok && !containsSlot(n) {
				t.Errorf("%s is not below slot 2", n)
			}
		}
	}
}

// containsSlot: a name with the label s002 somewhere above its first label.
func containsSlot(name string) bool {
	for i := 0; i+6 <= len(name); i++ {
		if name[i:i+6] == ".s002." {
			return true
		}
	}
	return false
}

func TestParse(t *testing.T) {
	p := Pool{ZoneA: "a.mailtest.example", ZoneB: "b.mailtest.example", Count: 12}
	for _, tc := range []struct {
		name string
		n    int
		zone persona.Zone
		ok   bool
	}{
		{"s001.a.mailtest.example", 1, persona.ZoneA, true},
		{"S012.B.MAILTEST.EXAMPLE.", 12, persona.ZoneB, true},
		{"s013.a.mailtest.example", 0, 0, false}, // beyond the pool
		{"s000.a.mailtest.example", 0, 0, false},
		{"s01.a.mailtest.example", 0, 0, false},
		{"s0001.a.mailtest.example", 0, 0, false},
		{"sx01.a.mailtest.example", 0, 0, false},
		{"s001.c.mailtest.example", 0, 0, false},
		{"a.mailtest.example", 0, 0, false},
		{"mx4.s001.a.mailtest.example", 0, 0, false}, // a host, not a domain
		{"", 0, 0, false},
	} {
		n, z, ok := p.Parse(tc.name)
		if n != tc.n || z != tc.zone || ok != tc.ok {
			t.Errorf("Parse(%q) = %d, %v, %v; want %d, %v, %v", tc.name, n, z, ok, tc.n, tc.zone, tc.ok)
		}
	}
	label, n, z, ok := p.ParseHost("MX4.s003.a.mailtest.example.")
	if label != "mx4" || n != 3 || z != persona.ZoneA || !ok {
		t.Errorf("ParseHost = %q, %d, %v, %v", label, n, z, ok)
	}
	if _, _, _, ok := p.ParseHost("mx4.a.mailtest.example"); ok {
		t.Error("ParseHost accepted a shared name")
	}
}

// TestHostAddr: slot n of a host with one address per slot is its base
// address plus n; past the end of the family there is none.
func TestHostAddr(t *testing.T) {
	for _, tc := range []struct {
		base string
		n    int
		want string
	}{
		{"fd00::6:0", 0, "fd00::6:0"},
		{"fd00::6:0", 7, "fd00::6:7"},
		{"fd00::6:ff", 1, "fd00::6:100"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 2, ""},
	} {
		got, ok := HostAddr(netip.MustParseAddr(tc.base), tc.n)
		if tc.want == "" {
			if ok {
				t.Errorf("%s + %d = %s, want none", tc.base, tc.n, got)
			}
			continue
		}
		if !ok || got.String() != tc.want {
			t.Errorf("%s + %d = %s (%v), want %s", tc.base, tc.n, got, ok, tc.want)
		}
	}
	p := Pool{ZoneA: "a.example", ZoneB: "b.example", Count: 3}
	if got := fmt.Sprint(p.HostAddrs(netip.MustParseAddr("fd00::10"))); got != "[fd00::10 fd00::11 fd00::12 fd00::13]" {
		t.Errorf("slot addresses %s", got)
	}
}
