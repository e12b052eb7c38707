// Package report turns a test's observations and verdict into what users
// read: the result mail's and the web page's report (DESIGN.md §1.3), with
// the seed's three parts — the connection history, the outbound diagnosis
// and the inbound diagnosis — and the row of the public provider table.
//
// Everything here is a pure function of its input: Build makes the model,
// Text and HTML render it. Mail addresses are redacted (j***@example.org)
// everywhere in the model; only the result mail's envelope recipient, which
// the caller holds, is ever written in full, and never by this package.
package report

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/matrix"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/untrusted"
	"github.com/mailsec/mailsec/internal/verdict"
)

// Rating is how good one diagnosis sentence is for the user.
type Rating string

// Ratings; the text of a sentence ends with the rating in brackets, as in
// the seed ("(very good)"), except for Info.
const (
	VeryGood Rating = "very good"
	Good     Rating = "good"
	Weak     Rating = "weak"
	Bad      Rating = "bad"
	VeryBad  Rating = "very bad"
	Unknown  Rating = "unknown"
	Info     Rating = "info"
)

// Sentence is one statement of a diagnosis.
type Sentence struct {
	Text   string `json:"text"` // without the rating
	Rating Rating `json:"rating"`
	// Confidence is how sure a statement about the sender is (proven:
	// seen; likely: inferred from what did not happen; unknown), Evidence
	// the connections of the history it rests on; absent for the
	// headline.
	Confidence verdict.Confidence `json:"confidence,omitempty"`
	Evidence   []int64            `json:"evidence,omitempty"`
	// Advice is what to change, for a finding that is bad or weak.
	Advice *Advice `json:"advice,omitempty"`
	lang   i18n.Lang
}

// String is the sentence as the seed writes it: "... (good).", with the
// rating in the sentence's language.
func (s Sentence) String() string {
	t := strings.TrimSuffix(s.Text, ".")
	if s.Rating == Info || s.Rating == "" || s.Rating == Unknown && s.Confidence == verdict.Unknown {
		// An open question says "still unknown" itself.
		return t + "."
	}
	return t + " (" + i18n.T(s.lang, ratingKey(s.Rating)) + ")."
}

// EvidenceText is "connections #3, #4" in the sentence's language ("" for
// none): the history lines it rests on.
func (s Sentence) EvidenceText() string { return evidenceText(s.lang, s.Evidence) }

// Phase is where a test stands, for the live page.
type Phase string

// Phases.
const (
	PhaseWaiting   Phase = "waiting"   // no mail yet, or collecting the last connections
	PhaseDowngrade Phase = "downgrade" // STARTTLS withheld (simulated downgrade attack)
	PhaseRotating  Phase = "rotating"  // STARTTLS offered, MX rotation, 451 until enough personas were tried
	PhaseDone      Phase = "done"      // the verdict is final
)

// Inbound is the inbound check of the sender's domain as the store keeps
// it: the check's own report type (schema mailsec.check.v1), decoded from
// the stored JSON whatever version wrote it (keys are only ever added).
// The report shows its colour, reason, sentences and bad findings.
type Inbound = checkreport.Report

// MailStatus is what became of the result mail, for the web page.
type MailStatus struct {
	State    string    `json:"state"`            // see resultmail: pending, sent, failed, withheld, none
	Reason   string    `json:"reason"`           // why withheld or failed, or where it went
	To       string    `json:"to,omitempty"`     // redacted
	SentAt   time.Time `json:"sent_at,omitzero"` // when delivered
	Attempts int       `json:"attempts"`
}

// Input is everything a report is made of.
type Input struct {
	Test        store.Test
	Connections []store.SMTPConnection
	Verdict     verdict.Verdict
	Final       bool      // the verdict is final (the test is done)
	Now         time.Time // for the phase
	// DowngradeWindow is timing.downgrade_window: the phase is
	// "downgrade" for this long after the test's first connection.
	DowngradeWindow time.Duration
	ZoneA, ZoneB    string
	// Inbound is the inbound check of the sender's domain; nil while it
	// is pending or when there is none (InboundNote says which).
	Inbound     *Inbound
	InboundNote string
	Mail        *MailStatus // nil: not known (the mail itself)
	URL         string      // the private web report
	Location    *time.Location
	// Lang is the language of the report's words (default English).
	Lang i18n.Lang
	// Untied are the connections no test claimed (yet) from the networks
	// of the test's sending server and of its creator, newest first: the
	// live page shows them so that a user sees their server connect (and
	// refuse a certificate) before anything ties it to the test. The web
	// fills them for an unfinished test; nil elsewhere.
	Untied []store.SMTPConnection
	// SharedSendingAddrs are the test's sending addresses that another
	// open test names too (evidence.Gatherer.SharedSendingAddrs): their
	// connections that no RCPT TO claims are tied to neither test.
	SharedSendingAddrs []netip.Addr
	// DNSLookups are the look-ups of the test slot's names
	// (verdict.Observations.DNSLookups; nil for a test without a slot).
	DNSLookups []store.DNSQuery
	// PolicyFetches are the fetches of an MTA-STS policy counted for the
	// test (verdict.Observations.PolicyFetches).
	PolicyFetches []store.PolicyFetch
	// BrokenHostAddrs are the broken-DNSSEC host's addresses
	// (verdict.Observations.BrokenHostAddrs): the picture's column of it.
	BrokenHostAddrs []netip.Addr
	// IPv6HostAddrs are the IPv6-only host's addresses
	// (verdict.Observations.IPv6HostAddrs): the picture's column of it.
	IPv6HostAddrs []netip.Addr
	// PictureLabels are the words of the picture of the verdict
	// (internal/matrix); nil: those of Lang (matrix.English or
	// matrix.German).
	PictureLabels matrix.Labels
	// TLSRPT are the TLS-RPT reports tied to the test
	// (verdict.Observations.TLSRPT).
	TLSRPT []verdict.TLSRPTReport
}

// Report is the model both renderings are made from. The JSON form is the
// API's (docs/api/report.schema.json).
type Report struct {
	Test      string    `json:"test"`
	Created   time.Time `json:"created"`
	Sender    string    `json:"sender"` // redacted envelope sender of the test mail
	Domain    string    `json:"domain"` // its domain
	Final     bool      `json:"final"`
	Phase     Phase     `json:"phase"`
	PhaseText string    `json:"phase_text"`
	Policy    string    `json:"policy"`
	// Lang is the language of the report's words: "en" or "de".
	Lang i18n.Lang `json:"lang"`
	// Summary is the verdict in one line a non-specialist understands.
	Summary    string        `json:"summary"`
	Complete   bool          `json:"complete"`
	Colour     colour.Colour `json:"colour"`
	Headline   Sentence      `json:"headline"`
	Why        string        `json:"why"`
	Candidates []string      `json:"candidates"`
	History    []HistoryLine `json:"history"`
	Outbound   []Sentence    `json:"outbound"`
	StillOpen  []Sentence    `json:"unknown"`
	// Authentication is the evaluation of the latest test mail (DKIM,
	// SPF, DMARC, ARC); absent while no mail was evaluated.
	Authentication *AuthSection `json:"authentication,omitempty"`
	// Facts maps fact names to values: the verdict's settled facts
	// (true/false) and the authentication's results (AuthFacts).
	Facts       map[string]any `json:"facts"`
	Inbound     InboundSection `json:"inbound"`
	Mail        *MailStatus    `json:"mail,omitempty"`
	URL         string         `json:"url,omitempty"`
	Attempts    int            `json:"attempts"`
	Connections int            `json:"connections"`
	TimeZone    string         `json:"time_zone"`
	// Untied lists Input.Untied (live page only), TieNote says why some
	// connections from the sending server cannot be tied.
	Untied  []UntiedLine `json:"untied,omitempty"`
	TieNote string       `json:"tie_note,omitempty"`
	// SendingServer is the sending server the user named when creating
	// the test ("" for none): connections from its addresses count for
	// the test (docs/smtp.md "Tying connections to a test").
	SendingServer string `json:"sending_server,omitempty"`
	// DNSLookups are the sender's resolver's look-ups of the names of the
	// test's slot (docs/dns.md "Test slots"), oldest first: never another
	// test's. Empty for a test without a slot.
	DNSLookups []LookupLine `json:"dns_lookups"`
	// PolicyFetches are the fetches of an MTA-STS policy that count for
	// the test (docs/policy-host.md), newest first.
	PolicyFetches []FetchLine `json:"policy_fetches"`
	// TLSRPTReports are the TLS-RPT reports (RFC 8460) tied to the test
	// (docs/tlsrpt.md), oldest first, with their policies for its domains.
	TLSRPTReports []TLSRPTLine `json:"tlsrpt_reports"`

	// Picture is the verdict as a picture (internal/matrix: the persona
	// matrix and the timeline), drawn by MatrixSVG, TimelineSVG and, for
	// the result mail, PicturePNG. Not in the JSON: the API has the
	// history and the verdict it is drawn from.
	Picture       matrix.Picture `json:"-"`
	pictureLabels matrix.Labels
	location      *time.Location
	// MailImage is the Content-ID (RFC 2392) of the picture's PNG in the
	// result mail: the mail's HTML shows that image instead of inline
	// SVG, which many mail clients strip. Set by the mail's composer.
	MailImage      string `json:"-"`
	MailImageWidth int    `json:"-"` // its width in CSS pixels
}

// TLSRPTLine is one TLS-RPT report tied to the test.
type TLSRPTLine struct {
	Received     string                 `json:"received"` // as HistoryLine.Start
	Source       string                 `json:"source"`   // "mail" or "https"
	Organization string                 `json:"organization"`
	ReportID     string                 `json:"report_id"`
	Start        time.Time              `json:"start"`
	End          time.Time              `json:"end"`
	Policies     []verdict.TLSRPTPolicy `json:"policies"`
	Text         string                 `json:"text"`
}

// FetchLine is one fetch of an MTA-STS policy counted for the test.
type FetchLine struct {
	Time   string `json:"time"`   // as HistoryLine.Start
	Client string `json:"client"` // the fetching client's address
	Host   string `json:"host"`   // the policy host it named (SNI)
	Text   string `json:"text"`
}

// LookupLine is one DNS look-up of a test slot's name.
type LookupLine struct {
	Time     string `json:"time"`     // as HistoryLine.Start
	Resolver string `json:"resolver"` // the querying resolver's address
	Name     string `json:"name"`     // the name asked for, without the root dot
	Type     string `json:"type"`     // "TLSA", "MX", …
	DNSSEC   bool   `json:"dnssec"`   // the DO bit: it asked for signatures (RFC 4035 §3.2.1)
	Answer   string `json:"answer"`   // the answer's rcode: NOERROR, NXDOMAIN, …
	Count    int    `json:"count"`    // identical queries it stands for
	Text     string `json:"text"`
}

// HistoryLine is one connection in the seed's form.
type HistoryLine struct {
	ID         int64         `json:"id"`
	Start      string        `json:"start"` // "27.08.2022 22:51:04"
	End        string        `json:"end"`   // "22:51:08", "" while open
	Server     int           `json:"server"`
	Encrypted  bool          `json:"encrypted"`
	State      string        `json:"state"`
	From       string        `json:"from,omitempty"` // redacted
	To         []string      `json:"to,omitempty"`   // redacted
	Signatures []string      `json:"signatures,omitempty"`
	EHLO       string        `json:"ehlo,omitempty"`
	SNI        string        `json:"sni,omitempty"`
	Reply      string        `json:"reply,omitempty"`
	Colour     colour.Colour `json:"colour"`
	// TiedBy says why a connection that did not name the test counts for
	// it (store.SMTPConnection.TiedBy): "client" (a later connection of
	// the same address named the test), "sending_server" (it came from
	// the sending server the user named), "slot_address" (it went to the
	// test's own address of the IPv6-only MX host); absent when it named
	// the test.
	TiedBy string `json:"tied_by,omitempty"`
	Text   string `json:"text"` // the whole line
}

// UntiedLine is a connection no test claimed (yet) from the user's
// networks: what the live page shows of it. No envelope or EHLO: the
// network may be shared with others.
type UntiedLine struct {
	ID      int64  `json:"id"`
	Start   string `json:"start"`  // as HistoryLine.Start
	Client  string `json:"client"` // the client's IP address
	Server  int    `json:"server"` // the persona, 0 while unknown
	SNI     bool   `json:"sni"`    // the client sent a server name (RFC 6066 §3)
	State   string `json:"state"`  // how far it got
	Failure string `json:"failure,omitempty"`
	Text    string `json:"text"` // the whole line
}

// InboundSection is the inbound diagnosis.
type InboundSection struct {
	Available bool          `json:"available"`
	Note      string        `json:"note,omitempty"` // "inbound check pending" and the like
	Domain    string        `json:"domain,omitempty"`
	Colour    colour.Colour `json:"colour,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	Sentences []string      `json:"sentences,omitempty"`
	Bad       []string      `json:"bad,omitempty"` // texts of bad/error findings
}

// timeLayout is the seed's date form (day first, as in the issue).
const timeLayout = "02.01.2006 15:04:05"

// Build makes the report model.
func Build(in Input) Report {
	loc := in.Location
	if loc == nil {
		loc = time.UTC
	}
	in.Lang = in.Lang.Or(i18n.English)
	l := in.Lang
	v := in.Verdict
	r := Report{
		Test: in.Test.ID, Created: in.Test.Created.In(loc),
		Sender: Redact(in.Test.Sender), Domain: domainOf(in.Test.Sender),
		Final: in.Final, Policy: string(v.Policy), Complete: v.Complete,
		Why: LocalizeWhy(in.Lang, redactText(v.Why)), Attempts: v.Attempts, Connections: len(in.Connections),
		URL: in.URL, Mail: in.Mail, TimeZone: loc.String(), SendingServer: in.Test.SendingServer, Lang: l,
		pictureLabels: in.PictureLabels, location: loc,
	}
	if r.pictureLabels == nil && l == i18n.German {
		r.pictureLabels = matrix.German
	}
	r.Picture = matrix.Build(matrix.Input{Verdict: v, Connections: in.Connections, BrokenHostAddrs: in.BrokenHostAddrs,
		IPv6HostAddrs: in.IPv6HostAddrs, PolicyFetched: len(in.PolicyFetches) > 0, DowngradeWindow: in.DowngradeWindow})
	for _, c := range v.Candidates {
		r.Candidates = append(r.Candidates, string(c))
	}
	r.Phase, r.PhaseText = phase(in)
	r.Colour = VerdictColour(v)
	r.Headline = headline(l, v, in.Final)
	r.Summary = summary(l, v, in.Final)
	for _, c := range in.Connections {
		r.History = append(r.History, historyLine(l, c, loc))
	}
	for _, c := range in.Untied {
		r.Untied = append(r.Untied, untiedLine(l, c, loc))
	}
	r.DNSLookups = []LookupLine{}
	for _, q := range in.DNSLookups {
		r.DNSLookups = append(r.DNSLookups, lookupLine(l, q, loc))
	}
	r.PolicyFetches = []FetchLine{}
	for _, f := range in.PolicyFetches {
		fl := FetchLine{Time: f.Time.In(loc).Format(timeLayout), Client: f.Client.Addr().Unmap().String(), Host: untrusted.Printable(f.SNI, 255)}
		fl.Text = i18n.T(l, "report.fetch", fl.Time, fl.Client, fl.Host)
		r.PolicyFetches = append(r.PolicyFetches, fl)
	}
	r.TLSRPTReports = []TLSRPTLine{}
	for _, t := range in.TLSRPT {
		r.TLSRPTReports = append(r.TLSRPTReports, tlsrptLine(l, t, loc))
	}
	if len(in.SharedSendingAddrs) > 0 {
		addrs := make([]string, len(in.SharedSendingAddrs))
		for i, a := range in.SharedSendingAddrs {
			addrs[i] = a.String()
		}
		// The other tests are other users': not named, only counted.
		r.TieNote = i18n.T(l, "report.tie-note", strings.Join(addrs, ", "))
	}
	r.Outbound, r.StillOpen = diagnosis(l, v, in.Final)
	r.Authentication = authSection(l, in.Connections)
	r.Facts = factsOf(v, r.Authentication)
	r.Inbound = inboundSection(in)
	if r.Mail != nil {
		m := *r.Mail
		m.To = Redact(m.To)
		m.Reason = i18n.Formatted(l, redactText(m.Reason))
		r.Mail = &m
	}
	return r
}

// PolicyColour is the colour of a sender policy.
func PolicyColour(p verdict.Policy) colour.Colour {
	switch p {
	case verdict.PolicyNone:
		return colour.Red
	case verdict.PolicyMay:
		// It encrypts where STARTTLS is offered, but an attacker who
		// strips STARTTLS reads everything: no encryption to rely on.
		return colour.Red
	case verdict.PolicyEncrypt:
		return colour.Yellow
	case verdict.PolicyVerify, verdict.PolicyMTASTS:
		return colour.White
	case verdict.PolicyDANE, verdict.PolicyDANEOnly, verdict.PolicyDANEMTASTS:
		return colour.Green
	}
	return colour.Grey
}

// VerdictColour is the colour of a verdict: its policy's, lowered where a
// named behaviour defeats what the policy stands for. A dane+mta-sts sender
// that lets MTA-STS override a failed DANE validation (RFC 8461 §2) is as
// safe as its MTA-STS: a CA certificate for the host gets the mail, DANE
// or not (white, not green). The plain-text behaviours are judged may,
// red already.
func VerdictColour(v verdict.Verdict) colour.Colour {
	c := PolicyColour(v.Policy)
	for _, b := range v.Behaviours {
		switch {
		case b.Name == verdict.BehaviourMTASTSOverridesDANE && c == colour.Green:
			c = colour.White
		case b.Name == verdict.BehaviourDANEWithoutDNSSEC && c == colour.Green:
			// TLSA records nobody validated protect nothing: what is
			// left is MTA-STS's checks (white) or encryption that an
			// attacker who forges the TLSA record cannot stop (yellow).
			c = colour.Yellow
			if v.Policy == verdict.PolicyDANEMTASTS {
				c = colour.White
			}
		case b.Name == verdict.BehaviourPlainFallback, b.Name == verdict.BehaviourVerifyWhenOffered:
			if c != colour.Grey {
				c = colour.Red
			}
		}
	}
	return c
}

// historyLine renders one connection as the seed does:
// "27.08.2022 22:51:04 – 22:51:08 (Server 4, encrypted, Mail): From: <j***@example.org> To: <t***@a.example> Signatures: Dkim".
func historyLine(l i18n.Lang, c store.SMTPConnection, loc *time.Location) HistoryLine {
	enc := c.TLSVersion != ""
	h := HistoryLine{ID: c.ID, Start: c.Started.In(loc).Format(timeLayout), Server: c.Persona, Encrypted: enc,
		State: string(c.State), EHLO: c.EHLO, SNI: c.SNI, Reply: redactText(c.Reply), TiedBy: c.TiedBy}
	if !c.Ended.IsZero() {
		h.End = c.Ended.In(loc).Format("15:04:05")
	}
	mail := c.State.Rank() >= store.StateMail.Rank()
	if mail {
		h.From = Redact(c.MailFrom)
		for _, to := range c.RcptTo {
			h.To = append(h.To, Redact(to))
		}
	}
	var sigs []string
	for _, s := range c.Signatures {
		name := "Dkim"
		if s.Type == "arc" {
			name = "Arc"
		}
		if !slices.Contains(sigs, name) {
			sigs = append(sigs, name)
		}
	}
	h.Signatures = sigs
	switch {
	case mail && !enc:
		h.Colour = colour.Red
	case mail:
		h.Colour = colour.Green
	default:
		h.Colour = colour.Grey
	}
	server := "?"
	if c.Persona > 0 {
		server = fmt.Sprint(c.Persona)
	}
	tls := i18n.T(l, "report.history.plain")
	switch {
	case enc:
		tls = i18n.T(l, "report.history.encrypted")
	case c.State == store.StateSniSeen || c.CertPersona != 0:
		// RFC 8446: a ClientHello came, the handshake did not complete
		// (the sender refused the certificate).
		tls = i18n.T(l, "report.history.aborted")
	}
	end := h.End
	if end == "" {
		end = "…"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s – %s (%s):", h.Start, end, i18n.T(l, "report.history.server", server, tls, stateName(l, string(c.State))))
	if mail {
		b.WriteString(" " + i18n.T(l, "report.history.envelope", h.From, strings.Join(h.To, ">, <")))
		if len(sigs) > 0 {
			b.WriteString(" " + i18n.T(l, "report.history.signatures", strings.Join(sigs, ", ")))
		}
	}
	switch c.TiedBy {
	case store.TiedBySendingServer:
		// The connection never named the test: say why it counts.
		b.WriteString(" " + i18n.T(l, "report.history.tied-server"))
	case store.TiedByClient:
		b.WriteString(" " + i18n.T(l, "report.history.tied-client"))
	case store.TiedBySlotAddress:
		b.WriteString(" " + i18n.T(l, "report.history.tied-slot-address"))
	}
	h.Text = b.String()
	return h
}

// tlsrptLine describes a TLS-RPT report: "01.12.2026 12:00:01 by mail:
// Google Inc. reports for 01.12.2026 00:00:00 to 01.12.2026 23:59:59: sts
// policy for s001.A, 3 sessions succeeded, 1 failed (1
// certificate-host-mismatch at mx3.s001.A from 192.0.2.1)". The
// reporter's texts were made printable by evidence.
func tlsrptLine(lang i18n.Lang, t verdict.TLSRPTReport, loc *time.Location) TLSRPTLine {
	l := TLSRPTLine{Received: t.Received.In(loc).Format(timeLayout), Source: t.Source, Organization: t.Organization,
		ReportID: t.ReportID, Start: t.Start, End: t.End, Policies: t.Policies}
	if l.Policies == nil {
		l.Policies = []verdict.TLSRPTPolicy{}
	}
	var policies []string
	for _, p := range t.Policies {
		text := i18n.T(lang, "report.tlsrpt.policy", p.Type, p.Domain, fmt.Sprint(p.Successful), fmt.Sprint(p.Failed))
		var failures []string
		for _, f := range p.Failures {
			ft := i18n.T(lang, "report.tlsrpt.failure", fmt.Sprint(f.Sessions), f.ResultType)
			if f.ReceivingMX != "" {
				ft = i18n.T(lang, "report.tlsrpt.at", ft, f.ReceivingMX)
			}
			if f.SendingMTA.IsValid() {
				ft = i18n.T(lang, "report.tlsrpt.from", ft, f.SendingMTA.String())
			}
			failures = append(failures, ft)
		}
		if len(failures) > 0 {
			text += " (" + strings.Join(failures, ", ") + ")"
		}
		policies = append(policies, text)
	}
	if len(policies) == 0 {
		policies = []string{i18n.T(lang, "report.tlsrpt.none")}
	}
	l.Text = i18n.T(lang, "report.tlsrpt.line", l.Received, l.Source, l.Organization,
		t.Start.In(loc).Format(timeLayout), t.End.In(loc).Format(timeLayout)) + ": " + strings.Join(policies, "; ")
	return l
}

// lookupLine describes a DNS look-up: "your resolver 192.0.2.53 looked up
// TLSA for mx4.s001.A at 12:00:01, asking for DNSSEC".
func lookupLine(lang i18n.Lang, q store.DNSQuery, loc *time.Location) LookupLine {
	l := LookupLine{Time: q.Time.In(loc).Format(timeLayout), Resolver: q.Client.Addr().Unmap().String(),
		Name: untrusted.Printable(strings.TrimSuffix(q.Name, "."), 255), Type: dns.TypeToString[q.Type],
		DNSSEC: q.DO, Answer: dns.RcodeToString[q.Rcode], Count: max(q.Count, 1)}
	if l.Type == "" {
		l.Type = fmt.Sprintf("TYPE%d", q.Type)
	}
	if l.Answer == "" {
		l.Answer = fmt.Sprintf("RCODE%d", q.Rcode)
	}
	// A TLSA name stands for the host whose port it covers (RFC 7672
	// §2.2.3): say the host.
	what := l.Name
	if host, ok := strings.CutPrefix(l.Name, "_25._tcp."); ok && q.Type == dns.TypeTLSA {
		what = i18n.T(lang, "report.lookup.port25", host)
	}
	key := "report.lookup.plain"
	if l.DNSSEC {
		key = "report.lookup.dnssec"
	}
	answer := l.Answer
	if l.Count > 1 {
		answer = i18n.T(lang, "report.lookup.times", l.Answer, fmt.Sprint(l.Count))
	}
	l.Text = i18n.T(lang, key, l.Time, l.Resolver, l.Type, what, answer)
	return l
}

// untiedLine describes a connection not tied to any test.
func untiedLine(l i18n.Lang, c store.SMTPConnection, loc *time.Location) UntiedLine {
	server := c.Persona
	if server == 0 {
		server = c.CertPersona // the certificate shown says which persona
	}
	u := UntiedLine{ID: c.ID, Start: c.Started.In(loc).Format(timeLayout), Client: c.Client.Addr().Unmap().String(),
		Server: server, SNI: c.SNI != "", State: string(c.State), Failure: untrusted.Printable(redactText(c.Error), 200)}
	sni := i18n.T(l, "report.untied.no-sni")
	if u.SNI {
		sni = "SNI " + untrusted.Printable(c.SNI, 80)
	}
	var b strings.Builder
	b.WriteString(i18n.T(l, "report.untied", u.Start, u.Client, fmt.Sprint(u.Server), sni, stateName(l, u.State)))
	if u.Failure != "" {
		b.WriteString(": " + u.Failure)
	}
	u.Text = b.String()
	return u
}

// LocalizeInbound is the inbound check ib with its colour reason, its
// sentences and its findings' texts in language l: each from its Message
// (the English format and arguments) through the catalogues
// (i18n.Sentence). A report stored before it had Messages keeps its
// English texts. ib itself is not changed (the API answers its English).
func LocalizeInbound(l i18n.Lang, ib Inbound) Inbound {
	if l.Or(i18n.English) == i18n.English {
		return ib
	}
	say := func(m checkreport.Message, english string) string {
		if m.Format == "" {
			return english
		}
		return i18n.Sentence(l, m.Format, m.Args)
	}
	ib.ColourReason = say(ib.ColourReasonMessage, ib.ColourReason)
	if len(ib.SentenceMessages) == len(ib.Sentences) {
		sentences := make([]string, len(ib.Sentences))
		for i, m := range ib.SentenceMessages {
			sentences[i] = say(m, ib.Sentences[i])
		}
		ib.Sentences = sentences
	}
	findings := make([]checkreport.Finding, len(ib.Findings))
	for i, f := range ib.Findings {
		f.Text = say(f.Message, f.Text)
		findings[i] = f
	}
	ib.Findings = findings
	return ib
}

// stateName is a connection's state (store.ConnState: how far it got) in
// language l; the English names are the store's.
func stateName(l i18n.Lang, state string) string {
	if key := "report.state." + state; i18n.Has(key) {
		return i18n.T(l, key)
	}
	return state
}

func inboundSection(in Input) InboundSection {
	if in.Inbound == nil {
		note := in.InboundNote
		if note == "" {
			note = i18n.T(in.Lang, "report.inbound.none")
		}
		return InboundSection{Note: i18n.Text(in.Lang, note)}
	}
	ib := LocalizeInbound(in.Lang, *in.Inbound)
	s := InboundSection{Available: true, Domain: ib.Domain, Colour: ib.Colour, Reason: redactText(ib.ColourReason)}
	for _, t := range ib.Sentences {
		s.Sentences = append(s.Sentences, redactText(t))
	}
	for _, f := range ib.Findings {
		if f.Severity == checkreport.SevBad || f.Severity == checkreport.SevError {
			t := f.Text
			if f.Host != "" {
				t = f.Host + ": " + t
			}
			s.Bad = append(s.Bad, redactText(t))
		}
	}
	if !s.Colour.Known() {
		s.Colour = colour.Grey
	}
	return s
}

func domainOf(addr string) string {
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		return strings.ToLower(addr[at+1:])
	}
	return ""
}
