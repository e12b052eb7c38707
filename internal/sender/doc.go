// Package sender is mailsec's outbound SMTP client: it delivers one
// message to the MX hosts of one domain with a TLS policy chosen like
// Postfix's smtp_tls_security_level (none, may, encrypt, verify, dane,
// dane-only), optionally combined with MTA-STS (RFC 8461). The demo's
// reference senders (one per policy) and the service's own result mails
// use it.
//
// # One delivery attempt
//
// Sender.Attempt makes one delivery attempt in the sense of Postfix's
// smtp(8) (see lab-recipes §7):
//
//  1. The MX RRset of the recipient domain is looked up through a
//     validating resolver (internal/resolver; the AD bit counts only from
//     loopback). NXDOMAIN and a null MX (RFC 7505 §3) bounce; no MX
//     records means the implicit MX, the domain itself (RFC 5321 §5.1).
//     Hosts are sorted by preference, equal preferences shuffled
//     (RFC 5321 §5.1). Whether the MX answer was DNSSEC-secure is kept.
//  2. With MTA-STS on, the _mta-sts record is looked up and the policy
//     fetched or taken from the cache (internal/mtasts, RFC 8461 §5.1).
//  3. The hosts are walked in order. For each host the per-host policy is
//     decided (table below), its addresses looked up, and each address
//     tried. A recoverable failure — a 4xx reply, a connection failure,
//     TLS required but not offered, a failed handshake or certificate
//     check — moves on to the next address or host; a 5xx reply to MAIL,
//     RCPT or the end of DATA is permanent for the recipients concerned
//     (bounce). The walk stops after MaxSessions sessions that got past
//     the greeting (Postfix smtp_mx_session_limit, default 2) or
//     MaxAddresses addresses (smtp_mx_address_limit, default 5); whatever
//     is left is deferred until the caller's next attempt.
//  4. The Result says Delivered, Deferred or Bounced (per recipient too),
//     with a transcript of every host: MX name, address, greeting,
//     STARTTLS offered/used, TLS version, SNI sent, the PKIX, DANE and
//     MTA-STS verdicts on the certificate, the reply or local decision
//     that decided, and the duration.
//
// # Policy per MX host
//
// Level is the default policy. DANE (RFC 7672) and MTA-STS (RFC 8461) then
// decide per host, DANE first: RFC 8461 §2 forbids MTA-STS to override a
// failing DANE validation, so a host with usable TLSA records from a
// secure answer is judged by DANE alone, and MTA-STS applies only to
// hosts without them.
//
//	level      host situation                       STARTTLS     authentication      SNI
//	none       -                                    never        -                   -
//	may        STARTTLS offered                     yes          none                if SendSNI
//	may        not offered / handshake fails        plaintext    -                   -
//	encrypt    -                                    mandatory    none                if SendSNI
//	verify     -                                    mandatory    PKIX, MX host name  if SendSNI
//	dane       MX, addresses, TLSA secure, usable   mandatory    DANE (TLSA)         MX host name
//	dane       TLSA secure, none usable             mandatory    none (encrypt)      if SendSNI
//	dane       MX or addresses insecure, no TLSA    as may                           if SendSNI
//	dane       TLSA look-up fails (SERVFAIL)        host skipped (deferred), never plaintext
//	dane-only  usable secure TLSA                   mandatory    DANE                MX host name
//	dane-only  anything else                        host skipped (deferred)
//	+MTA-STS   enforce, host matches the policy     mandatory    PKIX, MX host name  MX host name
//	+MTA-STS   enforce, host does not match         host skipped, never contacted
//	+MTA-STS   testing                              as the level     PKIX and match  MX host name
//	                                                (none: as may)   reported only
//
// "+MTA-STS" rows apply to hosts that DANE did not decide (no usable
// secure TLSA); with dane-only such hosts are deferred before MTA-STS is
// considered, so MTA-STS never relaxes dane-only. A DANE or PKIX failure
// aborts the session after the handshake with QUIT (as Postfix does) and
// the next host is tried; the mail is never sent in plaintext to a host
// whose policy requires TLS.
//
// At level may a failed TLS handshake is followed, like Postfix, by a new
// connection to the same address without STARTTLS, within the same
// attempt; that retry counts against neither limit and appears in the
// transcript as its own entry with PlaintextRetry set.
//
// # SMTP client
//
// The protocol is spoken through internal/smtpclient, the client layer
// the inbound check's probe uses too (why not go-smtp's client:
// docs/libraries.md). Every reply is read with a line and size limit and a
// deadline; a server that sends anything after its 220 to STARTTLS is
// refused (such data could be an attacker's, injected before TLS; RFC 3207
// §4.2 forbids using anything from before TLS); the certificate is judged
// after the handshake, before EHLO is repeated (RFC 3207 §4.2). TLS 1.2 is
// the minimum at every level; a server that offers only older versions
// fails the handshake (at level may: the plaintext retry).
//
// # Hooks for loopback labs
//
// The demo runs every MX host and the policy host on unprivileged loopback
// ports. Options.Dial and Options.DialHTTPS receive the resolved
// "ip:25" and "ip:443" addresses and may connect elsewhere; SMTPPort
// changes the port asked for. These are configuration, not fakes: DNS,
// DNSSEC validation, TLS and SMTP stay real.
package sender
