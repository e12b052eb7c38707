package smtpd

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
)

// rcptKind is what a recipient address means to the service.
type rcptKind int

const (
	rcptForeign rcptKind = iota // not in A or B: relaying is refused
	rcptUnknown                 // in A or B, but no test address
	rcptToken                   // t-<token>@A or @B
	rcptFixed                   // a fixed local part in A or B
	rcptTLSRPT                  // the TLS-RPT report address
)

// rcptClass is a classified recipient.
type rcptClass struct {
	kind  rcptKind
	zone  persona.Zone // 0 for rcptForeign
	slot  int          // the test slot whose domain it is in; 0 for A or B itself
	token string       // rcptToken: the test id, lower-case
}

// maxTokenLength bounds a test token in an address.
const maxTokenLength = 64

// classify sorts a RCPT TO path (RFC 5321 §4.1.2, as go-smtp parsed it).
// Domains compare case-insensitively; local parts too, as every test
// address is lower-case by construction (RFC 5321 §2.4 lets the receiving
// host decide).
func (s *Server) classify(addr string) rcptClass {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return rcptClass{kind: rcptForeign}
	}
	local, domain := strings.ToLower(addr[:at]), dnsname.Canonical(addr[at+1:])
	var zone persona.Zone
	var slot int
	switch domain {
	case s.zoneA:
		zone = persona.ZoneA
	case s.zoneB:
		zone = persona.ZoneB
	default:
		if n, z, ok := s.slots.Parse(domain); ok {
			slot, zone = n, z
		}
	}
	if local+"@"+domain == s.tlsrpt {
		if zone == 0 {
			zone = persona.ZoneA
		}
		return rcptClass{kind: rcptTLSRPT, zone: zone}
	}
	if zone == 0 {
		return rcptClass{kind: rcptForeign}
	}
	if tok, ok := strings.CutPrefix(local, "t-"); ok {
		if validToken(tok) {
			return rcptClass{kind: rcptToken, zone: zone, slot: slot, token: tok}
		}
		return rcptClass{kind: rcptUnknown, zone: zone, slot: slot}
	}
	if s.fixed[local] && slot == 0 {
		// The fixed addresses are the shared names' only: a slot's
		// domain belongs to the test that holds it.
		return rcptClass{kind: rcptFixed, zone: zone}
	}
	return rcptClass{kind: rcptUnknown, zone: zone, slot: slot}
}

// validToken accepts the characters test ids are made of.
func validToken(tok string) bool {
	if tok == "" || len(tok) > maxTokenLength {
		return false
	}
	for _, c := range []byte(tok) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// fixedTest returns the open test of a sender writing to a fixed address
// from the client network client (clientKey), creating it if there is
// none. The key is sender and client: MAIL FROM is anyone's to write, so a
// forged sender from another network gets a test of its own instead of
// joining (and judging) the real sender's (issue 16). New tests are capped
// per client network and overall (Options.FixedTests): past a cap the
// error wraps store.ErrFixedTestsPerClient or store.ErrFixedTestsFull. It
// is serialized so that two concurrent first mails of one sender make one
// test.
func (s *Server) fixedTest(ctx context.Context, sender, client string, now time.Time) (store.Test, error) {
	s.fixedMu.Lock()
	defer s.fixedMu.Unlock()
	t, err := s.opts.Store.OpenFixedTest(ctx, sender, client)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return t, err
	}
	for range 3 {
		id, err := store.NewTestID()
		if err != nil {
			return store.Test{}, err
		}
		t = store.Test{ID: id, Created: now, Kind: store.TestFixed, Sender: sender, State: store.TestOpen, Updated: now}
		err = s.opts.Store.CreateFixedTest(ctx, t, client, s.opts.FixedTests)
		if err == nil {
			return t, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return store.Test{}, err
		}
	}
	return store.Test{}, errors.New("smtpd: could not find a free test id")
}
