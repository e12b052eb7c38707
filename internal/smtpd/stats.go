package smtpd

import "github.com/mailsec/mailsec/internal/persona"

// Stats is what the server holds now and what it refused so far: what an
// operator's metrics show, and what lab/hardening checks its caps against.
type Stats struct {
	// Open connections, and the most any one client holds.
	Open, MaxOpenPerClient int
	// Refused: connections answered 421 at the caps since the start.
	Refused int64
	// DataBytesHeld: memory the DATA phases hold now (the budget's use).
	DataBytesHeld int64
	// Panics recovered in sessions (this package's and go-smtp's).
	Panics int64
	// Accepted and Deferred count the test mails verdict.Acknowledge
	// answered 250 and 451 since the start, by zone: [0] A, [1] B.
	Accepted, Deferred [2]int64
}

// Stats returns the server's current figures.
func (s *Server) Stats() Stats {
	st := Stats{Refused: s.refused.Load(), DataBytesHeld: s.dataBudget.used.Load(), Panics: s.panics.Load() + s.libPanics.Load()}
	for i := range st.Accepted {
		st.Accepted[i], st.Deferred[i] = s.accepted[i].Load(), s.deferred[i].Load()
	}
	s.clients.mu.Lock()
	defer s.clients.mu.Unlock()
	for _, n := range s.clients.n {
		st.Open += n
		st.MaxOpenPerClient = max(st.MaxOpenPerClient, n)
	}
	return st
}

// countAck counts one acknowledgement of a test mail for zone.
func (s *Server) countAck(zone persona.Zone, accept bool) {
	i := 0
	if zone == persona.ZoneB {
		i = 1
	}
	if accept {
		s.accepted[i].Add(1)
	} else {
		s.deferred[i].Add(1)
	}
}
