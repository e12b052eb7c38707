// Package verdict turns a test's recorded observations into answers:
// Judge, the sender's policy with facts, evidence and confidence
// (verdict.go), the behaviours the policy table cannot name
// (behaviour.go) and the rule that the facts agree with the verdict
// (consistency.go); Acknowledge, the 451/250 decision while a mail is in
// flight (ack.go); Final, whether the verdict may be frozen (final.go).
//
// Everything here is a pure function of its inputs — recorded connections,
// policy fetches and the current time — so it can be table-tested
// exhaustively and replayed on stored histories. What goes into the
// Observations is gathered in one place, internal/evidence.
package verdict
