package smtpd

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
}

// Stats returns the server's current figures.
func (s *Server) Stats() Stats {
	st := Stats{Refused: s.refused.Load(), DataBytesHeld: s.dataBudget.used.Load(), Panics: s.panics.Load() + s.libPanics.Load()}
	s.clients.mu.Lock()
	defer s.clients.mu.Unlock()
	for _, n := range s.clients.n {
		st.Open += n
		st.MaxOpenPerClient = max(st.MaxOpenPerClient, n)
	}
	return st
}
