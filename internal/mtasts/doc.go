// Package mtasts implements SMTP MTA Strict Transport Security (RFC 8461):
// the policy zone A publishes (Policy, its ID and TXT record), and the
// sending side's discovery — record parsing, the HTTPS policy fetch, the
// policy cache and MX host matching — used by the policy-aware sender
// (internal/sender) and the inbound check.
//
// # Protocol
//
// A domain announces MTA-STS with a TXT record at _mta-sts.<domain>
// (RFC 8461 §3.1):
//
//	_mta-sts.example.org. TXT "v=STSv1; id=20260501T120000"
//
// The id changes whenever the policy does. The policy itself is a small
// text file served over HTTPS at a fixed place (§3.3):
//
//	https://mta-sts.example.org/.well-known/mta-sts.txt
//
//	version: STSv1
//	mode: enforce
//	mx: mail.example.org
//	mx: *.backup.example.net
//	max_age: 604800
//
// A sender fetches it without following redirects, over a connection whose
// certificate is PKIX-valid for mta-sts.<domain>, accepts only status 200
// with media type text/plain, and caches it for max_age seconds (§3.3,
// §5). In mode "enforce" it delivers only to MX hosts that match an mx
// pattern (§4.1: exact name, or "*." standing for exactly one left-most
// label) and that present a PKIX-valid certificate for the MX host name
// (§4.2); a host that fails is treated like a failed delivery attempt and
// the next MX is tried. In mode "testing" it delivers anyway and only
// reports the failure (RFC 8460). Mode "none" withdraws the policy (§8.3).
//
// # Cache and refresh (RFC 8461 §5.1)
//
// Cache.Discover implements the refresh rules: the TXT record is looked up
// on every delivery; the policy is fetched again only when the record's id
// differs from the cached one or the cached policy has expired. When the
// record has disappeared, or the lookup or the fetch fails, an unexpired
// cached policy stays in force, so an attacker who blocks DNS or HTTPS
// cannot remove it; with nothing cached the domain is treated as having no
// policy.
//
// # What is not here
//
// DNSSEC plays no role in MTA-STS: the record need not be signed. The
// interaction with DANE (RFC 8461 §2: MTA-STS must not override a failed
// DANE validation) is the sender's business; see internal/sender.
package mtasts
