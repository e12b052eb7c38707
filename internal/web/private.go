package web

import (
	"net"
	"net/http"
	"strings"
)

// Private pages are those that show or change one test: the live page,
// the report, the event stream, deletion, and the API's test answers
// (including the answer that creates one: it carries the private link).
// Their URL carries the owner key (owner.go), so:
//
//   - they are never stored by a browser or an intermediary cache
//     (Cache-Control: no-store, RFC 9111 §5.2.2.5): a shared computer's
//     history or a proxy must not keep a tester's report;
//   - they answer only under the service's own host names (Options.
//     Hostnames): a page served under any name that happens to resolve
//     to the service (DNS rebinding: an attacker's name pointed at it)
//     would be same-origin with the attacker's scripts. Other hosts get
//     421 Misdirected Request (RFC 9110 §15.5.20).
//
// Public pages (home, check, providers, static files) are unaffected.
func isPrivate(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, "/t/") || p == "/start" ||
		p == "/api/v1/tests" || strings.HasPrefix(p, "/api/v1/tests/")
}

// guardPrivate applies the rules above; false after it has answered.
func (s *Server) guardPrivate(w http.ResponseWriter, r *http.Request) bool {
	if !isPrivate(r) {
		return true
	}
	w.Header().Set("Cache-Control", "no-store")
	if len(s.hostnames) > 0 && !s.hostnames[hostOnly(r.Host)] {
		// Not the path: under /t/ it is an owner key.
		s.log.Info("web: private page under another host name refused", "host", r.Host, "method", r.Method)
		http.Error(w, "misdirected request: this host name does not serve test pages", http.StatusMisdirectedRequest)
		return false
	}
	return true
}

// hostOnly is the host of a Host header or URL host, without port and
// brackets, lower case.
func hostOnly(hostport string) string {
	h := hostport
	if host, _, err := net.SplitHostPort(hostport); err == nil {
		h = host
	}
	return strings.ToLower(strings.TrimSuffix(strings.Trim(h, "[]"), "."))
}

// hostSet is the set of hostOnly forms of names.
func hostSet(names []string) map[string]bool {
	if len(names) == 0 {
		return nil
	}
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[hostOnly(n)] = true
	}
	return m
}
