package smtpclient

import (
	"fmt"
	"testing"

	"github.com/miekg/dns"
)

func TestMXHosts(t *testing.T) {
	rr := func(s string) dns.RR {
		t.Helper()
		r, err := dns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name string
		rrs  []string
		want string
		null bool
	}{
		{"sorted, ties in answer order, duplicate at its lowest preference",
			[]string{"ex. MX 20 b.ex.", "ex. MX 10 a1.ex.", "ex. MX 10 A2.ex.", "ex. MX 30 a1.ex.", "ex. MX 5 c.ex."},
			"[{c.ex 5} {a1.ex 10} {a2.ex 10} {b.ex 20}]", false},
		{"duplicate, lower preference later", []string{"ex. MX 30 a.ex.", "ex. MX 10 a.ex."}, "[{a.ex 10}]", false},
		{"null MX alone (RFC 7505)", []string{"ex. MX 0 ."}, "[]", true},
		{"null MX beside a host", []string{"ex. MX 0 .", "ex. MX 10 mx.ex."}, "[{mx.ex 10}]", true},
		{"no MX: implicit, the caller's", nil, "[]", false},
		{"other types ignored", []string{"ex. CNAME other.", "ex. MX 1 mx.ex."}, "[{mx.ex 1}]", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rrs []dns.RR
			for _, s := range tc.rrs {
				rrs = append(rrs, rr(s))
			}
			hosts, null := MXHosts(rrs)
			if got := fmt.Sprint(hosts); got != tc.want || null != tc.null {
				t.Fatalf("got %s null=%v, want %s null=%v", got, null, tc.want, tc.null)
			}
		})
	}
}

func TestTLSAName(t *testing.T) {
	for in, want := range map[string]string{"MX.Example.": "_25._tcp.mx.example", "mx.example": "_25._tcp.mx.example"} {
		if got := TLSAName(in); got != want {
			t.Errorf("TLSAName(%q) = %q, want %q", in, got, want)
		}
	}
}
