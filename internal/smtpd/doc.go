// Package smtpd is the receiving side of the outbound test: the SMTP
// "personas" behind the MX records of the test zones A and B (DESIGN.md §2).
//
// # Personas
//
// All personas may share one listening address. A connection is told apart
// by what the sender does:
//
//   - no STARTTLS (RFC 3207): persona 1 for mail to A; persona 7 when the
//     recipients are in B (decided at RCPT TO);
//   - STARTTLS with SNI mx3..mx6.A: personas 3..6; SNI mx7.B: persona 7;
//   - STARTTLS without SNI: the persona of the local address when the
//     deployment gives hosts their own addresses (Options.LocalPersonas),
//     else persona 2 (self-signed); persona 7 again when the recipients turn
//     out to be in B (persona 2's certificate was served by then);
//   - an SNI we do not serve: persona 2's certificate, the SNI recorded.
//
// The certificate is picked in tls.Config.GetConfigForClient from the
// ClientHello. The connection is recorded as SniSeen before the handshake
// goes on, so a sender that rejects the certificate and aborts the
// handshake — the evidence of a verifying sender — is on record.
//
// # Downgrade window
//
// For the first minutes of each test episode of a client
// (timing.downgrade_window from the episode's first connection) STARTTLS is
// not offered at all, simulating an attacker who strips it (RFC 3207 §6). A
// "client" is an address prefix (a /24 or /48 by default): a provider's MTAs
// share a network, and the window must not start afresh for each of them.
// A client past its window starts a new episode when it has no open test
// and its connections since the window all belong to final tests, or it has
// been quiet for timing.episode_quiet (newEpisode; docs/smtp.md), so a
// sender's retest is tested with a window again. go-smtp offers STARTTLS per server, so one
// accept loop hands each connection to one of two smtp.Servers, with and
// without a TLS configuration, through in-memory listeners.
//
// # Flow of a test mail
//
//	accept        record inserted (state None); window looked up
//	greeting      220 (RFC 5321 §4.2)
//	EHLO          STARTTLS offered after the window
//	STARTTLS      ClientHello → persona, SNI, state SniSeen (recorded first)
//	              handshake done → TlsStarted, version, cipher
//	MAIL FROM     state Mail
//	RCPT TO       t-<token>@A|B names a test; a fixed local part finds or
//	              creates the sender's test; tlsrpt@A takes TLS-RPT reports
//	              (RFC 8460); anything else is 550 — never a relay. Earlier
//	              connections of the same client address without a test are
//	              tied to this one's test.
//	DATA          DKIM signatures verified (RFC 6376), ARC-Seal instances
//	              read (RFC 8617), then verdict.Acknowledge decides 250
//	              (state Acked) or 451 4.7.1 "try again later"
//	close         Ended, and Error when it ended abnormally
//
// Every change of the record is committed to the store before the SMTP
// reply that depends on it is sent, so the history never claims less than
// the sender saw. The 451/250 decision itself lives in the verdict package.
package smtpd
