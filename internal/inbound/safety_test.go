package inbound

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/mailsec/mailsec/internal/netguard"
)

// TestDefaultDialersGuarded: without AllowPrivate the default dialers
// refuse a non-public address at connect time (the check's own pre-checks
// aside), and allow it when it is in AllowDestinations.
func TestDefaultDialersGuarded(t *testing.T) {
	// A port nothing listens on: a dial the guard lets through fails
	// with "connection refused", one it stops with ErrNotPublic.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		name    string
		opts    Options
		refused bool
	}{
		{"public only", Options{}, true},
		{"allowed range", Options{AllowDestinations: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, false},
		{"other allowed range", Options{AllowDestinations: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}, true},
		{"allow private", Options{AllowPrivate: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			o.defaults()
			for name, dial := range map[string]DialFunc{"smtp": o.Dial, "https": o.DialHTTPS} {
				c, err := dial(context.Background(), "tcp", addr)
				if c != nil {
					c.Close()
				}
				if got := errors.Is(err, netguard.ErrNotPublic); got != tc.refused {
					t.Errorf("%s: dial %s: %v (refused %v, want %v)", name, addr, err, got, tc.refused)
				}
			}
		})
	}
}
