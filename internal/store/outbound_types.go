package store

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors of the outbound-test tables.
var (
	ErrNotFound = errors.New("store: not found")
	ErrExists   = errors.New("store: already exists")
)

// Test kinds.
const (
	TestToken = "token" // addresses t-<id>@A and t-<id>@B
	TestFixed = "fixed" // a fixed address, keyed by the envelope sender
)

// Test states.
const (
	TestOpen  = "open"  // connections are still being collected
	TestAcked = "acked" // mail for A was answered 250
	TestFinal = "final" // the verdict is final
)

// Test is one outbound test.
type Test struct {
	ID      string // lower-case token
	Created time.Time
	Kind    string // TestToken or TestFixed
	Sender  string // envelope sender; "" until known for token tests
	State   string // TestOpen, TestAcked, TestFinal
	Acked   time.Time
	Updated time.Time
	// AddressedB: when a test mail first named the test's B address in its
	// To or Cc header (zero: never seen). Set by MarkAddressedB only.
	AddressedB time.Time
	// SendingServer is the sending server the user named when creating
	// the test (an IP address or a host name, normalised; "" for none),
	// and SendingAddrs the addresses it resolved to then (unmapped, at
	// most MaxSendingAddrs). Untied connections from those addresses are
	// the test's (docs/smtp.md "Tying connections to a test"). Fixed at
	// creation.
	SendingServer string
	SendingAddrs  []netip.Addr
	// Lang is the language of the test's result mail ("en", "de";
	// internal/i18n), chosen when it was created; "" is stored as "en".
	Lang string
	// CreatorPrefix is the network (clientnet.Prefix) of the browser or
	// API client that created the test; the invalid prefix if unknown.
	// Only the network is kept, never the address. Fixed at creation.
	CreatorPrefix netip.Prefix
	// OwnerKey is, on creation only, the test's owner key (NewOwnerKey):
	// CreateTest stores its hash (KeyCreated) with the test. It is never
	// read back (the store keeps no key): TestByOwnerKey finds the test.
	OwnerKey string `json:"-"`
	// Slot is the test slot the test holds (docs/dns.md "Test slots"):
	// its addresses are t-<id>@sNNN.A and @sNNN.B; 0 for none (the shared
	// names). Fixed at creation (CreateSlotTest).
	Slot int
}

// MaxSendingAddrs bounds a test's SendingAddrs.
const MaxSendingAddrs = 10

// ConnState is how far an SMTP connection got (DESIGN.md §3), in order.
type ConnState string

// Connection states.
const (
	StateNone       ConnState = "None"       // connected, no TLS handshake started
	StateSniSeen    ConnState = "SniSeen"    // a ClientHello arrived; the handshake may have failed
	StateTLSStarted ConnState = "TlsStarted" // the TLS handshake completed
	StateMail       ConnState = "Mail"       // MAIL FROM was given
	StateAcked      ConnState = "Acked"      // the mail was answered 250
)

// Rank orders the states: a connection only ever moves up.
func (s ConnState) Rank() int {
	switch s {
	case StateNone:
		return 0
	case StateSniSeen:
		return 1
	case StateTLSStarted:
		return 2
	case StateMail:
		return 3
	case StateAcked:
		return 4
	}
	return -1
}

// Signature is a message signature seen on a test mail.
type Signature struct {
	Type     string `json:"type"`             // "dkim" or "arc"
	Domain   string `json:"d,omitempty"`      // DKIM d=
	Selector string `json:"s,omitempty"`      // DKIM s=
	Result   string `json:"result,omitempty"` // DKIM: pass, fail, temperror, permerror
	// Reason says why a DKIM signature did not pass ("body hash
	// mismatch", "no key for signature"); "" when it passed.
	Reason   string `json:"reason,omitempty"`
	Instance int    `json:"i,omitempty"` // ARC-Seal i=
}

// Outcome is a DKIM signature's result as the report, the result mail
// and the verdict's facts write it: "pass (d=example.org, s=sel1)" or
// "fail (d=example.org, s=sel1): body hash mismatch"; "not verified" for
// a signature past the verification limit.
func (s Signature) Outcome() string {
	result := s.Result
	if result == "" {
		result = "not verified"
	}
	text := fmt.Sprintf("%s (d=%s, s=%s)", result, s.Domain, s.Selector)
	if s.Reason != "" {
		text += ": " + s.Reason
	}
	return text
}

// Authentication is a test mail's authentication, evaluated once when the
// mail arrived (internal/mailauth): the report, the API, the result mail
// and resultmail.Decide all read this one evaluation.
type Authentication struct {
	// DKIM lists the DKIM-Signature fields in header order (RFC 6376),
	// each verified (Result, Reason); empty: the mail was not signed.
	DKIM []Signature `json:"dkim"`
	// SPFMailFrom is SPF for the MAIL FROM identity, SPFHELO for the
	// HELO identity (RFC 7208 §2.4, §2.3).
	SPFMailFrom SPFCheck   `json:"spf_mail_from"`
	SPFHELO     SPFCheck   `json:"spf_helo"`
	DMARC       DMARCCheck `json:"dmarc"`
	ARC         ARCCheck   `json:"arc"`
}

// SPFCheck is one SPF check_host() evaluation (RFC 7208 §4).
type SPFCheck struct {
	Domain string `json:"domain,omitempty"` // the identity's domain
	// Result is an RFC 7208 §2.6 result: none, neutral, pass, fail,
	// softfail, temperror or permerror.
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"` // why, when not pass
}

// DMARCCheck is the DMARC evaluation of the RFC5322.From domain (RFC 7489
// §3, §6.6).
type DMARCCheck struct {
	FromDomain string `json:"from_domain,omitempty"`
	// RecordDomain is where the record was found: the From domain or its
	// organizational domain (RFC 7489 §6.6.3); "" when none was.
	RecordDomain string `json:"record_domain,omitempty"`
	// Policy is the policy that applies to the From domain (p=, or sp=
	// for a subdomain): none, quarantine or reject; "" without a record.
	Policy string `json:"policy,omitempty"`
	// Result: pass, fail, none (no record), temperror or permerror.
	Result string `json:"result"`
	// SPFAlignment and DKIMAlignment are the modes, "relaxed" or
	// "strict" (aspf=, adkim=; RFC 7489 §3.1).
	SPFAlignment  string `json:"spf_alignment,omitempty"`
	DKIMAlignment string `json:"dkim_alignment,omitempty"`
	// SPFAligned: SPF passed for MAIL FROM and that domain is aligned
	// with the From domain; DKIMAligned: a passing DKIM signature's d= is.
	SPFAligned  bool   `json:"spf_aligned"`
	DKIMAligned bool   `json:"dkim_aligned"`
	Reason      string `json:"reason,omitempty"`
}

// ARCCheck is the validation of the mail's ARC chain (RFC 8617 §5.2).
type ARCCheck struct {
	// Instances is the number of ARC sets.
	Instances int `json:"instances"`
	// Result: none (no ARC), pass, fail, or temperror (a key could not
	// be fetched).
	Result string `json:"result"`
	Reason string `json:"reason,omitempty"` // why, when fail or temperror
}

// SMTPConnection is one connection to an SMTP persona: the connection
// history of DESIGN.md §3, from which the verdict is computed.
type SMTPConnection struct {
	ID              int64
	TestID          string // "" until tied to a test
	Started         time.Time
	Ended           time.Time // zero while open
	Client          netip.AddrPort
	Local           netip.AddrPort // the address the client connected to
	ClientKey       string         // downgrade-window client (prefix text)
	EHLO            string
	STARTTLSOffered bool
	Persona         int // 1..7; 0 while unknown
	// CertPersona is the persona whose certificate the TLS handshake
	// served (0: none). It differs from Persona when the persona is known
	// only later: zone B over STARTTLS without SNI is persona 7 but was
	// shown persona 2's self-signed certificate.
	CertPersona  int
	SNI          string
	TLSVersion   string // "TLS 1.3"; "" for plain text
	TLSCipher    string
	State        ConnState
	MailFrom     string
	RcptTo       []string
	Reply        string // the reply that decided the mail, e.g. "451 4.7.1 ..."
	MessageBytes int64
	Signatures   []Signature
	// Authentication is the evaluation of the connection's last test
	// mail; nil when it carried none.
	Authentication *Authentication
	Error          string // why it ended abnormally; "" if it did not
	// TiedBy tells how the connection came to its test when it did not
	// name the test itself: TiedByClient or TiedBySendingServer; "" when
	// it named the test at RCPT TO, or is not tied. Set only by the tie
	// rules (TieConnections, TieSendingServer).
	TiedBy string
	// Node is the node.name of the mailsec process that holds (held) the
	// connection (docs/cluster.md); "" in records from before migration
	// 0020.
	Node string
}

// How a connection was tied to its test (SMTPConnection.TiedBy).
const (
	// TiedByClient: by its exact client address, to the test a later
	// connection of that address named at RCPT TO.
	TiedByClient = "client"
	// TiedBySendingServer: by the sending server the user named when
	// creating the test.
	TiedBySendingServer = "sending_server"
	// TiedBySlotAddress: by the local address it went to, one of a test
	// slot's own (the IPv6-only host's, docs/dns.md "IPv6-only host"), to
	// the test that held the slot then.
	TiedBySlotAddress = "slot_address"
)

// ConnectionFilter selects SMTP connections. Zero fields do not restrict.
type ConnectionFilter struct {
	TestID     string
	ClientAddr netip.Addr
	Since      time.Time // started at or after
	Until      time.Time // started before
	Limit      int       // 0 = 10000
}

// PolicyFetch is one request to the MTA-STS policy host.
type PolicyFetch struct {
	Time      time.Time
	Client    netip.AddrPort
	SNI       string
	UserAgent string
	Path      string
	Status    int
}

// TLSRPTReport is one TLS-RPT report (RFC 8460) received by mail to
// tlsrpt@A or by HTTPS POST, kept as received (Raw) and as parsed
// (Report, its JSON uncompressed).
type TLSRPTReport struct {
	ID       int64
	Received time.Time
	Client   netip.Addr
	MailFrom string // "" for a POST
	// Source is how it came: TLSRPTByMail or TLSRPTByHTTPS.
	Source string
	// Raw is the mail or the POST body as received; not read by
	// TLSRPTReportsOf.
	Raw []byte
	// Report is the report's JSON, uncompressed; empty for a mail
	// stored before reports were parsed (migration 0022).
	Report []byte
	// Key is organization-name and report-id (TLSRPTKey): one report
	// sent to both rua URIs is stored once.
	Key string
	// Tests are the tests the report is tied to (docs/tlsrpt.md);
	// AddTLSRPTReport stores them with it, TLSRPTReports does not read
	// them.
	Tests []string
}

// Sources of a TLS-RPT report (RFC 8460 §5.3, §5.4).
const (
	TLSRPTByMail  = "mail"
	TLSRPTByHTTPS = "https"
)

// TLSRPTKey is the duplicate key of a report: its organization-name and
// report-id (RFC 8460 §4.4: the report-id is unique per reporter).
func TLSRPTKey(organization, reportID string) string {
	// Quoted, so that no pair of texts makes another's key (and no NUL,
	// which PostgreSQL's text refuses).
	return strconv.Quote(organization) + " " + strconv.Quote(reportID)
}

// NewTestID returns a fresh random test ID: 16 lower-case base32
// characters (80 bits; RFC 4648 without padding). IDs go into mail
// addresses (t-<id>@A), compared case-insensitively, and into private
// report links, so they must not be guessable.
func NewTestID() (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("store: test id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}
