package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Behind a reverse proxy every request comes from the proxy, and the
// per-client limits (start_limit, check_limit, event streams) would see
// one client. Options.TrustedProxies names the proxies: only a request
// whose peer is one of them has its client taken from X-Forwarded-For,
// walking from the right (the hop the nearest proxy added) past further
// trusted proxies to the first address that is not one — the leftmost
// entries are whatever the client wrote and prove nothing.

// forwardedClient rewrites r.RemoteAddr to the client behind trusted
// proxies (port 0), so that clientIP and the logs see the client.
func (s *Server) forwardedClient(r *http.Request) {
	if len(s.o.TrustedProxies) == 0 {
		return
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !s.trustedProxy(peer.Addr()) {
		return
	}
	client := peer.Addr().Unmap()
	hops := r.Header.Values("X-Forwarded-For")
	for i := len(hops) - 1; i >= 0; i-- {
		list := strings.Split(hops[i], ",")
		for j := len(list) - 1; j >= 0; j-- {
			a, ok := parseHop(list[j])
			if !ok {
				// Garbage: nothing left of it can be believed.
				r.RemoteAddr = netip.AddrPortFrom(client, 0).String()
				return
			}
			client = a
			if !s.trustedProxy(a) {
				r.RemoteAddr = netip.AddrPortFrom(client, 0).String()
				return
			}
		}
	}
	r.RemoteAddr = netip.AddrPortFrom(client, 0).String()
}

func (s *Server) trustedProxy(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseHop reads one X-Forwarded-For entry: an address, perhaps with a
// port or in brackets.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if h, _, err := net.SplitHostPort(s); err == nil {
		s = h
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}
