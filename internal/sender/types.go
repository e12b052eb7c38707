package sender

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// Level is the default TLS security level, named as Postfix's
// smtp_tls_security_level.
type Level string

// Levels.
const (
	LevelNone     Level = "none"      // never STARTTLS
	LevelMay      Level = "may"       // opportunistic TLS, plaintext fallback
	LevelEncrypt  Level = "encrypt"   // mandatory TLS, no authentication
	LevelVerify   Level = "verify"    // mandatory TLS, PKIX and host name
	LevelDANE     Level = "dane"      // DANE where TLSA is usable, else may (RFC 7672)
	LevelDANEOnly Level = "dane-only" // DANE or nothing
)

// Levels lists the levels in order of strictness.
func Levels() []Level {
	return []Level{LevelNone, LevelMay, LevelEncrypt, LevelVerify, LevelDANE, LevelDANEOnly}
}

// ParseLevel parses a level name.
func ParseLevel(s string) (Level, error) {
	for _, l := range Levels() {
		if string(l) == s {
			return l, nil
		}
	}
	return "", fmt.Errorf("sender: unknown security level %q", s)
}

// Status is the outcome of an attempt, for the message or one recipient.
type Status int

// Statuses.
const (
	Deferred  Status = iota // not delivered yet; try again later
	Delivered               // accepted by an MX host (250 after DATA)
	Bounced                 // permanently refused (5xx, null MX, no such domain)
)

func (s Status) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case Bounced:
		return "bounced"
	}
	return "deferred"
}

// Errors. Host transcripts and results wrap them; errors.Is tells them
// apart.
var (
	// ErrNoSuchDomain: the recipient domain does not exist (NXDOMAIN); a
	// bounce.
	ErrNoSuchDomain = errors.New("sender: recipient domain does not exist")
	// ErrNullMX: the domain accepts no mail (RFC 7505 §3); a bounce.
	ErrNullMX = errors.New("sender: domain publishes a null MX (RFC 7505)")
	// ErrDNS: a DNS look-up failed (SERVFAIL, timeout); temporary.
	ErrDNS = errors.New("sender: DNS look-up failed")
	// ErrNoAddress: an MX host has no address records.
	ErrNoAddress = errors.New("sender: MX host has no address")
	// ErrNoMX: no MX host was left to try (all skipped or OnlyMX matched
	// none).
	ErrNoMX = errors.New("sender: no MX host to try")
	// ErrLimit: the session or address limit of the attempt was reached.
	ErrLimit = errors.New("sender: MX session or address limit reached")
	// ErrConnect: the TCP connection failed, broke, or timed out.
	ErrConnect = errors.New("sender: connection failed")
	// ErrProtocol: the server broke the SMTP protocol (malformed reply,
	// over-long line, data injected after the STARTTLS reply).
	ErrProtocol = errors.New("sender: SMTP protocol error")
	// ErrTLSRequired: the policy requires TLS but the host did not offer
	// STARTTLS or refused it (Postfix: "TLS is required, but was not
	// offered by host").
	ErrTLSRequired = errors.New("sender: TLS is required, but was not offered")
	// ErrTLSHandshake: the TLS handshake failed.
	ErrTLSHandshake = errors.New("sender: TLS handshake failed")
	// ErrCertificate: the certificate is not PKIX-valid for the MX host
	// name (levels verify and MTA-STS enforce).
	ErrCertificate = errors.New("sender: server certificate not verified")
	// ErrDANE: no usable TLSA record matched (RFC 7672 §3).
	ErrDANE = errors.New("sender: no matching DANE TLSA record")
	// ErrTLSALookup: the TLSA look-up failed; the host is deferred, never
	// tried without DANE (RFC 7672 §2.1.1).
	ErrTLSALookup = errors.New("sender: TLSA look-up failed")
	// ErrNoDANE: dane-only and the host has no usable, secure TLSA
	// records (or its MX or address records are insecure).
	ErrNoDANE = errors.New("sender: no usable DNSSEC-secure TLSA records (dane-only)")
	// ErrSTSMismatch: MTA-STS enforce and the host is not in the policy's
	// mx list (RFC 8461 §4.1); it is not contacted.
	ErrSTSMismatch = errors.New("sender: MX host not listed in the MTA-STS policy")
	// ErrTemporary and ErrPermanent are wrapped by *ReplyError for 4xx
	// and 5xx replies.
	ErrTemporary = errors.New("sender: temporary failure reply")
	ErrPermanent = errors.New("sender: permanent failure reply")
	// ErrMessage: the message cannot be sent as given (no recipients,
	// recipients in several domains, bad addresses).
	ErrMessage = errors.New("sender: bad message")
)

// ReplyError is an SMTP reply that ended a step (RFC 5321 §4.2).
type ReplyError struct {
	Command string // "MAIL", "RCPT", "DATA", "EHLO", "STARTTLS", "greeting", "end of data"
	Code    int
	Text    string // the reply text, lines joined by " / "
}

func (e *ReplyError) Error() string {
	return fmt.Sprintf("%s: %d %s", e.Command, e.Code, e.Text)
}

// Unwrap gives ErrTemporary or ErrPermanent.
func (e *ReplyError) Unwrap() error {
	if e.Code >= 500 {
		return ErrPermanent
	}
	return ErrTemporary
}

// Message is what Attempt delivers.
type Message struct {
	// From is the envelope sender; "" is the null reverse-path "<>".
	From string
	// To are the recipients, all in one domain.
	To []string
	// Data is the message, header and body, with LF or CRLF line ends;
	// dot-stuffing and CRLF are applied on the wire.
	Data []byte
	// OnlyMX restricts the attempt to these MX host names, in this order
	// (tests and diagnostics). Names not in the domain's MX set are
	// ignored, so the DNSSEC state of the MX answer still applies.
	OnlyMX []string
}

// MXHost is one host of the MX list.
type MXHost struct {
	Name       string // lower case, no trailing dot
	Preference uint16
}

// MXSet is the resolved MX list of the domain.
type MXSet struct {
	Hosts []MXHost // in the order they are tried
	// Secure: the MX answer (or its denial, for the implicit MX) was
	// DNSSEC-validated.
	Secure bool
	// Implicit: no MX records; the domain itself is the host (RFC 5321
	// §5.1).
	Implicit bool
}

// Verdict is the outcome of one certificate check.
type Verdict struct {
	Checked bool
	OK      bool
	Detail  string // what matched or why not
}

func (v Verdict) String() string {
	switch {
	case !v.Checked:
		return "not checked"
	case v.OK:
		return "ok: " + v.Detail
	}
	return "fail: " + v.Detail
}

// Outcome is what became of one host.
type Outcome string

// Host outcomes.
const (
	OutcomeDelivered Outcome = "delivered" // at least one recipient accepted after DATA
	OutcomeDeferred  Outcome = "deferred"  // recoverable failure: the next host is tried
	OutcomeBounced   Outcome = "bounced"   // a 5xx ended the recipients concerned
	OutcomeSkipped   Outcome = "skipped"   // not contacted (policy or DNS)
)

// Host is the transcript of one host: one session, or a skipped host.
type Host struct {
	MX         string
	Preference uint16
	// Addr is the address connected to (zero for skipped hosts); the port
	// is SMTPPort, whatever Dial did with it.
	Addr netip.AddrPort
	// Policy names the host's effective policy ("dane", "mta-sts",
	// "may", "encrypt (dane: TLSA unusable)", ...) and PolicyReason why.
	Policy       string
	PolicyReason string
	// PlaintextRetry marks may's second session to an address after a
	// failed handshake.
	PlaintextRetry bool

	Started  time.Time
	Duration time.Duration

	Greeting        int    // 220; 0 if none came
	GreetingText    string // first line
	STARTTLSOffered bool
	TLS             bool   // the handshake completed
	TLSVersion      string // "TLS 1.3"
	TLSCipher       string
	SNI             string // the server name sent; "" if none
	// PKIX is the certificate's PKIX verdict for the MX host name against
	// Roots (computed for every TLS session; enforced by verify and
	// MTA-STS enforce).
	PKIX Verdict
	// DANE is the TLSA verdict (hosts decided by DANE).
	DANE Verdict
	// STS is the MTA-STS verdict: host listed and certificate valid
	// (enforced in mode enforce, reported in mode testing).
	STS Verdict

	Outcome Outcome
	// Reply is the reply, or the local decision, that decided the host.
	Reply string
	// Err wraps one of the package's errors (nil when delivered).
	Err error
	// Log is the dialogue: "C: ..." and "S: ..." lines (message content
	// left out).
	Log []string
}

// PastGreeting tells whether the session got a 220 greeting (it then
// counts against MaxSessions).
func (h Host) PastGreeting() bool { return h.Greeting == 220 }

// Recipient is the outcome for one recipient.
type Recipient struct {
	Address string
	Status  Status
	Reply   string // the reply that decided, or why it is deferred
	Host    string // the MX host that accepted or refused it
}

// STSInfo describes the MTA-STS policy applied to the attempt.
type STSInfo struct {
	// Source is "fetched", "cache" or "none" (no policy in force).
	Source string
	Mode   string
	ID     string
	MX     []string
	// Error is the record look-up or fetch error, if any ("" if none).
	Error string
}

// Result is the outcome of one Attempt.
type Result struct {
	Domain string
	Status Status
	// Reason is one line: where it was delivered, or why not.
	Reason string
	// Err wraps one of the package's errors when not delivered.
	Err        error
	Level      Level
	MTASTS     bool
	MX         MXSet
	STS        *STSInfo // nil when MTA-STS is off
	Recipients []Recipient
	Hosts      []Host
	// Sessions (past the greeting) and Addresses (connections tried)
	// counted against the limits; may's plaintext retries are not.
	Sessions, Addresses int
	Started             time.Time
	Duration            time.Duration
}

// DeliveredTo returns the MX host that accepted the message, or "".
func (r Result) DeliveredTo() string {
	for _, h := range r.Hosts {
		if h.Outcome == OutcomeDelivered {
			return h.MX
		}
	}
	return ""
}

// Summary is a one-line description of every host, for logs.
func (r Result) Summary() string {
	parts := make([]string, 0, len(r.Hosts))
	for _, h := range r.Hosts {
		s := h.MX + " " + string(h.Outcome)
		if h.Reply != "" {
			s += " (" + h.Reply + ")"
		}
		parts = append(parts, s)
	}
	return r.Status.String() + ": " + strings.Join(parts, "; ")
}
