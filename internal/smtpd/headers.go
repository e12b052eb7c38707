package smtpd

import (
	"bytes"
	"net/mail"

	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
)

// maxHeaderAddresses bounds the addresses looked at in To and Cc.
const maxHeaderAddresses = 100

// headerNamesB tells whether the message's To or Cc header (RFC 5322
// §3.6.3) names test's address in zone B: the user wrote one mail to both
// test addresses, as the test asks. A sender that then never delivers to
// B has refused B. Malformed headers name nothing.
func (s *Server) headerNamesB(message []byte, test store.Test) bool {
	msg, err := mail.ReadMessage(bytes.NewReader(message))
	if err != nil {
		return false
	}
	n := 0
	for _, field := range []string{"To", "Cc"} {
		addrs, err := msg.Header.AddressList(field)
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n++; n > maxHeaderAddresses {
				return false
			}
			cls := s.classify(a.Address)
			if cls.zone != persona.ZoneB {
				continue
			}
			if cls.kind == rcptToken && cls.token == test.ID || cls.kind == rcptFixed && test.Kind == store.TestFixed {
				return true
			}
		}
	}
	return false
}
