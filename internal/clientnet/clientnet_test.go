package clientnet

import (
	"net/netip"
	"testing"
)

func TestKey(t *testing.T) {
	tests := []struct {
		addr string
		want string
	}{
		{"192.0.2.77", "192.0.2.0/24"},
		{"::ffff:192.0.2.77", "192.0.2.0/24"},
		{"2001:db8:1:2::5", "2001:db8:1::/48"},
		{"", "unknown"},
	}
	for _, tc := range tests {
		var a netip.Addr
		if tc.addr != "" {
			a = netip.MustParseAddr(tc.addr)
		}
		if got := Key(a, 24, 48); got != tc.want {
			t.Errorf("Key(%q) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if _, ok := Prefix(netip.MustParseAddr("192.0.2.1"), 33, 48); ok {
		t.Error("a /33 of an IPv4 address is ok")
	}
}
