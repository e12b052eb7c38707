// Package resultmail is the result mail itself (DESIGN.md §1.3, §4):
// whether a final test's result may be mailed to its envelope sender
// (Decide, with Authenticate: no backscatter), the message (Compose: the
// report as text and HTML, DKIM-signed for zone A) and its signing key.
//
// When a test is final is internal/finalise's job, getting the mail to
// the recipient's MX internal/delivery's; this package does no I/O but the
// SPF look-ups.
package resultmail
