// Package checkreport is the inbound check's report, the JSON document
// "mailsec.check.v1" (docs/inbound.md), and everything that is a pure
// function of it: the rules that judge the observations and the prose that
// renders them. It does no I/O: internal/inbound observes (DNS, SMTP, TLS,
// HTTPS) and fills a Report; the report, result mail, web page, API and bulk
// scan read stored reports back through the same type, without pulling in
// the network code.
//
// The files follow the flow observe → judge → render:
//
//   - report.go: the document's types — the observations (MXInfo, Host,
//     Address, MTASTSInfo, …) and the judged fields (Colour, Findings,
//     Sentences). Keys are only ever added; documents written by older
//     versions decode into the same type.
//   - codes.go: the finding codes and their fixed severities (the contract
//     of docs/inbound.md; codes are never renamed).
//   - rules.go: Evaluate, the findings of each observation.
//   - grade.go: the summary of the tested addresses, qualified transport
//     encryption, and the colour with its reason (the rule of
//     docs/inbound.md, in its order).
//   - sentences.go: the summary in the seed's sentences ("Domain does use
//     DNSSEC with MX-Records (good).").
//   - text.go: Report.WriteText, the text of `mailsec check`.
//
// Evaluate must stay a pure function of the recorded observations: it is
// table-tested on synthesized reports (rules_test.go), and the bytes of
// both renderings are pinned by golden files (golden_test.go).
package checkreport
