package sendingserver

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/peertest"
	"github.com/mailsec/mailsec/internal/resolver"
)

// startResolver returns mailsec's resolver asking a scripted DNS server
// on loopback that knows the names of the table below.
func startResolver(t *testing.T) *resolver.Resolver {
	t.Helper()
	d := peertest.StartDNS(t)
	d.Set(t,
		"mx.sender.example. 60 IN A 192.0.2.25",
		"mx.sender.example. 60 IN AAAA 2001:db8::25",
		"v4only.sender.example. 60 IN A 192.0.2.26",
		"alias.sender.example. 60 IN CNAME v4only.sender.example.",
		"alias.sender.example. 60 IN A 192.0.2.26",
		"noaddr.sender.example. 60 IN TXT \"v=spf1 -all\"",
		"xn--bcher-kva.example. 60 IN A 192.0.2.27",
	)
	for i := range MaxAddrs + 5 {
		d.Set(t, fmt.Sprintf("many.sender.example. 60 IN A 192.0.2.%d", 100+i))
	}
	d.Fail("broken.sender.example", "A", dns.RcodeServerFailure)
	r, err := resolver.New(d.Addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestResolve(t *testing.T) {
	r := startResolver(t)
	many := make([]string, MaxAddrs)
	for i := range many {
		many[i] = fmt.Sprintf("192.0.2.%d", 100+i)
	}
	for _, tc := range []struct {
		in      string
		name    string
		addrs   []string
		wantErr error
	}{
		{in: "", name: ""},
		{in: "  ", name: ""},
		{in: "192.0.2.1", name: "192.0.2.1", addrs: []string{"192.0.2.1"}},
		{in: " ::ffff:192.0.2.1 ", name: "192.0.2.1", addrs: []string{"192.0.2.1"}},
		{in: "[2001:DB8::1]", name: "2001:db8::1", addrs: []string{"2001:db8::1"}},
		{in: "MX.Sender.Example.", name: "mx.sender.example", addrs: []string{"192.0.2.25", "2001:db8::25"}},
		{in: "alias.sender.example", name: "alias.sender.example", addrs: []string{"192.0.2.26"}},
		{in: "bücher.example", name: "xn--bcher-kva.example", addrs: []string{"192.0.2.27"}},
		{in: "many.sender.example", name: "many.sender.example", addrs: many},
		{in: "0.0.0.0", wantErr: ErrInvalid},
		{in: "ff02::1", wantErr: ErrInvalid},
		{in: "fe80::1%eth0", wantErr: ErrInvalid},
		{in: "jane@sender.example", wantErr: ErrInvalid},
		{in: "not a host", wantErr: ErrInvalid},
		{in: "192.0.2.0/24", wantErr: ErrInvalid},
		{in: "missing.sender.example", wantErr: ErrInvalid},
		{in: "noaddr.sender.example", wantErr: ErrInvalid},
		{in: "broken.sender.example", wantErr: ErrLookup},
	} {
		got, err := Resolve(t.Context(), r, tc.in)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Resolve(%q) = %+v, %v; want error %v", tc.in, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Resolve(%q): %v", tc.in, err)
			continue
		}
		var addrs []string
		for _, a := range got.Addrs {
			addrs = append(addrs, a.String())
		}
		if got.Name != tc.name || !slices.Equal(addrs, tc.addrs) {
			t.Errorf("Resolve(%q) = %q %v, want %q %v", tc.in, got.Name, addrs, tc.name, tc.addrs)
		}
	}
}

func TestResolveWithoutResolver(t *testing.T) {
	if _, err := Resolve(t.Context(), nil, "mx.sender.example"); !errors.Is(err, ErrLookup) {
		t.Errorf("no resolver: err = %v, want ErrLookup", err)
	}
	// An address needs no resolver.
	if s, err := Resolve(t.Context(), nil, "192.0.2.1"); err != nil || s.Addrs[0] != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("address without resolver = %+v, %v", s, err)
	}
}
