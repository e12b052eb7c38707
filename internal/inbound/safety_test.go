package inbound

import (
	"net/netip"
	"testing"
)

func TestIsPublic(t *testing.T) {
	public := []string{"8.8.8.8", "1.1.1.1", "2a00:1450:4001:80b::200e", "64:ff9b::808:808", "100.63.255.255", "100.128.0.0", "193.0.2.1"}
	private := []string{
		"127.0.0.1", "127.1.2.3", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.1.1",
		"fe80::1", "fc00::1", "fd12:3456::1", "100.64.0.1", "100.127.255.254", "0.0.0.0", "0.1.2.3", "224.0.0.1",
		"239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.51.100.1", "203.0.113.1", "198.18.0.1",
		"192.0.0.8", "::", "ff02::1", "2001:db8::1", "2002:a00:1::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1",
		"64:ff9b::10.0.0.1", "64:ff9b::127.0.0.1", "fec0::1", "100::1", "3fff::1", "fe80::1%eth0",
	}
	for _, s := range public {
		if !IsPublic(netip.MustParseAddr(s)) {
			t.Errorf("%s: refused, but it is public", s)
		}
	}
	for _, s := range private {
		if IsPublic(netip.MustParseAddr(s)) {
			t.Errorf("%s: allowed, but it is private or reserved", s)
		}
	}
	if IsPublic(netip.Addr{}) {
		t.Error("the zero address is allowed")
	}
}
