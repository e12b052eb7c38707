package netguard

import (
	"context"
	"errors"
	"net"
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

func TestGuardCheck(t *testing.T) {
	g := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}}
	for _, tc := range []struct {
		guard   Guard
		address string
		want    string // "" allowed, else the error text
	}{
		{Guard{}, "8.8.8.8:25", ""},
		{Guard{}, "[2a00:1450:4001:80b::200e]:443", ""},
		{Guard{}, "10.0.0.1:25", "destination 10.0.0.1 is not a public address"},
		{Guard{}, "[::ffff:10.0.0.1]:25", "destination 10.0.0.1 is not a public address"},
		{Guard{}, "169.254.169.254:80", "destination 169.254.169.254 is not a public address"},
		{Guard{}, "100.64.0.1:25", "destination 100.64.0.1 is not a public address"},
		{Guard{}, "[fd00::1]:25", "destination fd00::1 is not a public address"},
		{Guard{}, "127.0.0.1:25", "destination 127.0.0.1 is not a public address"},
		{Guard{}, "mx.example.org:25", `destination "mx.example.org" is not an IP address: not a public address`},
		{g, "127.0.0.1:25", ""},
		{g, "[::ffff:127.0.0.2]:25", ""},
		{g, "[::1]:25", ""},
		{g, "10.0.0.1:25", "destination 10.0.0.1 is not a public address"},
		{g, "8.8.8.8", ""},
	} {
		err := tc.guard.CheckAddress(tc.address)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v %s: %v, want allowed", tc.guard.Allow, tc.address, err)
		case tc.want != "" && (err == nil || err.Error() != tc.want || !errors.Is(err, ErrNotPublic)):
			t.Errorf("%v %s: %v, want %q", tc.guard.Allow, tc.address, err, tc.want)
		}
	}
}

// TestDialerControl: the guard judges the address the dialer connects to,
// after resolution, so a name that resolves to loopback is refused (a
// rebinding name would be too), and the Dial wrapper refuses before a
// hook runs.
func TestDialerControl(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, address := range []string{ln.Addr().String(), net.JoinHostPort("localhost", port)} {
		c, err := Guard{}.Dialer(net.Dialer{}).DialContext(context.Background(), "tcp4", address)
		if c != nil {
			c.Close()
		}
		if !errors.Is(err, ErrNotPublic) {
			t.Errorf("guarded dial of %s: %v, want refused", address, err)
		}
		allowed := Guard{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
		c, err = allowed.Dialer(net.Dialer{}).DialContext(context.Background(), "tcp4", address)
		if err != nil {
			t.Errorf("dial of %s with 127.0.0.0/8 allowed: %v", address, err)
		} else {
			c.Close()
		}
	}
	called := false
	hook := func(context.Context, string, string) (net.Conn, error) { called = true; return nil, errors.New("hook") }
	if _, err := (Guard{}).Dial(hook)(context.Background(), "tcp", "10.1.2.3:25"); !errors.Is(err, ErrNotPublic) || called {
		t.Errorf("wrapped hook: %v, called %v", err, called)
	}
	if _, err := (Guard{}).Dial(hook)(context.Background(), "tcp", "8.8.8.8:25"); !called || err == nil || err.Error() != "hook" {
		t.Errorf("wrapped hook for a public address: %v, called %v", err, called)
	}
}
