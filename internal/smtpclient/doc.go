// Package smtpclient is mailsec's one SMTP client layer: the inbound
// check's probe of a domain's MX hosts (internal/inbound) and the
// policy-aware sender (internal/sender) both speak SMTP through it.
//
// It gives the steps of a session one at a time, so that each caller
// decides between them: Dial (a bounded connect; the context closes the
// connection when it ends), ReadReply (the greeting or any reply: one
// bounded parser of RFC 5321 §4.2 multiline replies), Ehlo (RFC 5321
// §4.1.1.1, with the extensions parsed), StartTLS and Handshake (RFC 3207
// §4; the handshake runs with the caller's tls.Config, so SNI and
// certificate verification — PKIX, DANE or none — stay the caller's, and
// returns the tls.ConnectionState), Mail, Rcpt, Data and WriteMessage
// (RFC 5321 §3.3, §4.5.2 dot-stuffing), Quit. Every read and write has a
// deadline; Options.Trace receives the dialogue as "C:"/"S:" lines.
//
// MXHosts and TLSAName hold the RFC rules of where to connect that both
// callers share: the MX RRset's order, duplicates and null MX (RFC 5321
// §5.1, RFC 7505) and the TLSA name of an MX host (RFC 7672 §2.2.3). The
// DNS queries themselves stay with the callers: the sender needs a
// decision (secure or not), the inbound check a diagnosis (bogus,
// indeterminate, CNAME chains, why a look-up failed).
//
// go-smtp's client is not used (docs/libraries.md): it hides the greeting,
// offers STARTTLS only before the first command, does the handshake
// lazily inside the next command and cannot tell a probe's steps apart.
package smtpclient
