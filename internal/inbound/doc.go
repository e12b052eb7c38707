// Package inbound is the inbound check: how well a domain is protected
// when others send mail to it (DESIGN.md §1.2, docs/inbound.md). It answers
// `mailsec check DOMAIN`, the web form and API, the bulk scan
// (internal/scan), and the service's check of every outbound test's sender
// domain (Runner).
//
// The check follows one flow, observe → judge → render:
//
//   - Observe (this package): under one deadline and all in parallel, the
//     MX look-up and, per MX host, its addresses, TLSA records and one
//     SMTP session per address (greeting, EHLO, STARTTLS, TLS handshake),
//     then up to four short ones for the TLS versions and weak suites it
//     accepts (tlsversions.go);
//     the MTA-STS record and policy; the TLS-RPT, SPF and DMARC records;
//     the DNSSEC state of every answer. The result is a
//     checkreport.Report holding only what was seen.
//   - Judge (internal/inbound/checkreport, pure): checkreport.Evaluate turns
//     the observations into findings, qualified transport encryption, the
//     colour (internal/colour) and its reason. It reads nothing but the
//     report, so stored reports can be judged again and the rules are
//     table-tested on synthesized observations. The one judgement made
//     while observing is DANE (danecheck.go): it needs the certificate
//     chain, which the report does not keep.
//   - Render (checkreport): the seed's sentences, Report.WriteText for
//     people, and the JSON document "mailsec.check.v1" for programs and the
//     store. Keys are only ever added to that schema, never renamed or given
//     another meaning (docs/inbound.md), so reports stored by any version
//     decode into checkreport.Report.
//
// Safety (safety.go): a domain's MX records may point anywhere, so without
// Options.AllowPrivate the check contacts no private, loopback, link-local,
// CGNAT, documentation or other special-purpose address (netguard.IsPublic)
// outside Options.AllowDestinations; such an address is reported as
// refused, never dialled, and so is the MTA-STS policy host's. The default
// dialers check the address once more as they connect (netguard's Control). Runner bounds the checks anyone can cause by sending a test
// mail: one per test, one per domain and cache period, a few at a time,
// a limit per hour, a bounded queue.
//
// Where to start reading: Check in check.go, which starts every step; then
// dns.go (the resolver, DNSSEC states, CNAME chains, SERVFAIL told apart
// from bogus), probe.go (the SMTP/TLS probe), tlsversions.go, cert.go (PKIX and name),
// danecheck.go, stscheck.go (MTA-STS) and records.go (TLS-RPT, SPF,
// DMARC). name.go normalizes the input, options.go holds the knobs,
// runner.go schedules the sender-domain checks of the service.
package inbound
