package smtpd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"strings"

	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
)

// maxSNILength bounds the recorded SNI (a DNS name has at most 253
// octets in text form, RFC 1035 §2.3.4).
const maxSNILength = 255

// configForClient is the tls.Config.GetConfigForClient of the STARTTLS
// server (RFC 3207): it picks the persona from the ClientHello and records
// it, state SniSeen, before the handshake goes on. A sender that rejects
// the certificate aborts after this point, so the attempt stays on record.
func (s *Server) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	tc, ok := hello.Conn.(*trackedConn)
	if !ok {
		return nil, errors.New("smtpd: handshake on an untracked connection")
	}
	r := tc.rec
	sni := strings.ToLower(hello.ServerName)
	if len(sni) > maxSNILength {
		sni = sni[:maxSNILength]
	}
	p, bySNI := s.sni[sni]
	byDefault := false
	if !bySNI {
		// No SNI, or one we do not serve (recorded as sent): the local
		// address names the persona where hosts have their own, else
		// persona 2 (DESIGN.md §2).
		if r.local != 0 {
			p = r.local
		} else {
			p, byDefault = s.defaultTLS, true
		}
	}
	cert, certErr := s.opts.Certificates.Persona(p)
	if certErr == nil && cert == nil {
		certErr = errors.New("none available")
	}

	r.mu.Lock()
	r.c.SNI = sni
	r.c.Persona = p
	if certErr == nil {
		r.c.CertPersona = p
	}
	r.base, r.byDefault = p, byDefault
	r.raise(store.StateSniSeen)
	if certErr != nil {
		r.certErr = fmt.Sprintf("no certificate for persona %d: %v", p, certErr)
	}
	r.dirty = true
	log := r.log
	r.mu.Unlock()

	if err := s.save(r); err != nil {
		log.Error("smtp: recording a ClientHello", "err", err)
		return nil, fmt.Errorf("smtpd: recording the ClientHello: %w", err)
	}
	if certErr != nil {
		log.Error("smtp: no certificate", "persona", p, "err", certErr)
		return nil, fmt.Errorf("smtpd: persona %d: %w", p, certErr)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{*cert},
		MinVersion:   tls.VersionTLS10,
		// Every connection is a full handshake: a resumed session
		// shows no certificate, and whether the sender accepts the
		// certificate is what the test observes.
		SessionTicketsDisabled: true,
	}, nil
}

// personaRoles finds the personas the server assigns by rule rather than
// by name: plain text in A (1), STARTTLS without SNI in A (2), and the
// persona of zone B (7).
func personaRoles(table []persona.Persona) (plainA, defaultTLS, zoneB int, err error) {
	for _, p := range table {
		switch {
		case p.Zone == persona.ZoneA && !p.STARTTLS && plainA == 0:
			plainA = p.Number
		case p.Zone == persona.ZoneA && p.STARTTLS && !p.SNI && p.HasKey() && defaultTLS == 0:
			defaultTLS = p.Number
		case p.Zone == persona.ZoneB && zoneB == 0:
			zoneB = p.Number
		}
	}
	if plainA == 0 || defaultTLS == 0 || zoneB == 0 {
		return 0, 0, 0, errors.New("smtpd: persona table lacks a plain-text, a default TLS or a zone B persona")
	}
	return plainA, defaultTLS, zoneB, nil
}

// plainPersona is the persona of a session without TLS: the zone B persona
// on B's own address, else persona 1. The caller holds r.mu.
func (s *Server) plainPersona(r *record) int {
	if r.local == s.zoneBPersona {
		return s.zoneBPersona
	}
	return s.plainA
}
