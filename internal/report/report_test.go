package report

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/colour"
	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var t0 = time.Date(2022, 8, 27, 22, 47, 49, 0, time.UTC)

// conn builds one recorded connection; opts adjust it.
type conn struct {
	at       time.Duration // after t0
	dur      time.Duration
	persona  int
	tls      bool
	sni      string
	state    store.ConnState
	from     string
	to       []string
	dkim     bool
	ehlo     string
	offered  bool
	reply    string
	arc      bool
	client   string
	certPers int
}

func (c conn) record(id int64) store.SMTPConnection {
	client := c.client
	if client == "" {
		client = "192.0.2.25"
	}
	r := store.SMTPConnection{ID: id, TestID: "abcdefghijklmnop", Started: t0.Add(c.at), Ended: t0.Add(c.at + c.dur),
		Client: netip.AddrPortFrom(netip.MustParseAddr(client), 40000), Persona: c.persona, SNI: c.sni, State: c.state,
		MailFrom: c.from, RcptTo: c.to, EHLO: c.ehlo, STARTTLSOffered: c.offered, Reply: c.reply, CertPersona: c.certPers}
	if r.EHLO == "" {
		r.EHLO = "mail.example.org"
	}
	if c.tls {
		r.TLSVersion, r.TLSCipher = "TLS 1.3", "TLS_AES_128_GCM_SHA256"
		if r.CertPersona == 0 {
			r.CertPersona = c.persona
		}
	}
	if c.dkim {
		r.Signatures = append(r.Signatures, store.Signature{Type: "dkim", Domain: "example.org", Selector: "s1", Result: "pass"})
	}
	if c.arc {
		r.Signatures = append(r.Signatures, store.Signature{Type: "arc", Instance: 1})
	}
	return r
}

func history(cs ...conn) []store.SMTPConnection {
	out := make([]store.SMTPConnection, len(cs))
	for i, c := range cs {
		out[i] = c.record(int64(i + 1))
	}
	return out
}

const (
	from  = "jane.doe@example.org"
	rcptA = "t-abcdefghijklmnop@a.mailtest.example"
	rcptB = "t-abcdefghijklmnop@b.mailtest.example"
)

// daneOnlyHistory is the seed's example result, a dane-only sender.
func daneOnlyHistory() []store.SMTPConnection {
	return history(
		conn{at: 0, persona: 1, state: store.StateNone},
		conn{at: time.Second, persona: 1, state: store.StateNone},
		conn{at: 194 * time.Second, dur: time.Second, persona: 3, sni: "mx3.a.mailtest.example", state: store.StateSniSeen, offered: true},
		conn{at: 195 * time.Second, dur: 4 * time.Second, persona: 6, tls: true, sni: "mx6.a.mailtest.example", state: store.StateMail,
			from: from, to: []string{rcptA}, dkim: true, offered: true, reply: "451 4.7.1 personas 3-6 not all tried yet"},
		conn{at: 199 * time.Second, dur: 3 * time.Second, persona: 4, tls: true, sni: "mx4.a.mailtest.example", state: store.StateMail,
			from: from, to: []string{rcptA}, dkim: true, offered: true},
		conn{at: 255 * time.Second, persona: 5, sni: "mx5.a.mailtest.example", state: store.StateSniSeen, offered: true},
		conn{at: 256 * time.Second, dur: 3 * time.Second, persona: 4, tls: true, sni: "mx4.a.mailtest.example", state: store.StateAcked,
			from: from, to: []string{rcptA}, dkim: true, offered: true, reply: "250 2.0.0 accepted: all of personas 3-6 were tried"},
	)
}

func inboundGreen() *Inbound {
	return &Inbound{Schema: "mailsec.check.v1", Domain: "example.org", Colour: colour.Green, ColourReason: "every MX is DANE-valid",
		Sentences: []string{"Domain does use DNSSEC with MX-Records (good).", "Domain does support RFC 7672 SMTP-DANE (good)."},
		Findings:  []checkreport.Finding{{Code: "dnssec.mx.secure", Severity: checkreport.SevGood, Text: "MX is DNSSEC-signed"}}}
}

func testOf(sender string, state string) store.Test {
	return store.Test{ID: "abcdefghijklmnop", Created: t0.Add(-time.Minute), Kind: store.TestToken, Sender: sender, State: state}
}

func judge(conns []store.SMTPConnection, done bool) verdict.Verdict {
	return verdict.Judge(verdict.Observations{Connections: conns, Now: t0.Add(time.Hour), Quiet: 10 * time.Minute, SenderDone: done, SentToB: done})
}

type golden struct {
	name string
	in   Input
}

func goldenCases() []golden {
	dane := daneOnlyHistory()
	none := history(
		conn{at: 0, dur: time.Second, persona: 1, state: store.StateMail, from: from, to: []string{rcptA}, reply: "451 4.7.1 downgrade test in progress: try again later"},
		conn{at: 2 * time.Second, dur: time.Second, persona: 7, state: store.StateAcked, from: from, to: []string{rcptB}},
		conn{at: 200 * time.Second, dur: time.Second, persona: 1, state: store.StateAcked, from: from, to: []string{rcptA}, offered: true, reply: "250 2.0.0 accepted"},
	)
	return []golden{
		{"dane-only", Input{Test: testOf(from, store.TestFinal), Connections: dane, Verdict: judge(dane, true), Final: true,
			Now: t0.Add(time.Hour), DowngradeWindow: 3 * time.Minute, Inbound: inboundGreen(),
			Mail: &MailStatus{State: "sent", To: from, Reason: "delivered to mx.example.org", Attempts: 1},
			URL:  "https://mailsec.example/t/abcdefghijklmnop"}},
		{"none", Input{Test: testOf(from, store.TestFinal), Connections: none, Verdict: judge(none, true), Final: true,
			Now: t0.Add(time.Hour), DowngradeWindow: 3 * time.Minute, InboundNote: "Inbound check pending.",
			Mail: &MailStatus{State: "withheld", Reason: "the test mail's sender was not authenticated: SPF none for example.org, no DKIM signature of example.org"}}},
		{"waiting", Input{Test: testOf("", store.TestOpen), Verdict: judge(nil, false), Now: t0, DowngradeWindow: 3 * time.Minute}},
		{"plain-fallback", Input{Test: testOf(from, store.TestFinal), Connections: plainFallbackHistory(), Verdict: judge(plainFallbackHistory(), true),
			Final: true, Now: t0.Add(time.Hour), DowngradeWindow: 3 * time.Minute, InboundNote: "Inbound check pending."}},
		{"dkim-broken", Input{Test: testOf(from, store.TestFinal), Connections: brokenDKIMHistory(), Verdict: judge(brokenDKIMHistory(), true),
			Final: true, Now: t0.Add(time.Hour), DowngradeWindow: 3 * time.Minute, InboundNote: "Inbound check pending."}},
	}
}

// brokenDKIMAuth is the evaluation of a mail whose DKIM signature broke
// in transit while SPF passed.
func brokenDKIMAuth() *store.Authentication {
	return &store.Authentication{
		DKIM:        []store.Signature{{Type: "dkim", Domain: "example.org", Selector: "sel1", Result: "fail", Reason: "body hash mismatch"}},
		SPFMailFrom: store.SPFCheck{Domain: "example.org", Result: "pass"},
		SPFHELO:     store.SPFCheck{Domain: "mail.example.org", Result: "none", Reason: "no SPF record"},
		DMARC: store.DMARCCheck{FromDomain: "example.org", RecordDomain: "example.org", Policy: "reject", Result: "pass",
			SPFAlignment: "relaxed", DKIMAlignment: "relaxed", SPFAligned: true},
		ARC: store.ARCCheck{Result: "none"},
	}
}

// brokenDKIMHistory is the plain-fallback sender whose mail's DKIM
// signature broke in transit.
func brokenDKIMHistory() []store.SMTPConnection {
	h := plainFallbackHistory()
	for i := range h {
		if h[i].State == store.StateAcked {
			h[i].Authentication = brokenDKIMAuth()
			h[i].Signatures = h[i].Authentication.DKIM
		}
	}
	return h
}

// TestAuthentication: the report says what the evaluation found, a
// failing signature is never "signed", and the facts carry the results.
func TestAuthentication(t *testing.T) {
	conns := brokenDKIMHistory()
	r := Build(Input{Test: testOf(from, store.TestFinal), Connections: conns, Verdict: judge(conns, true), Final: true})
	wantLines := []string{
		"DKIM: fail (d=example.org, s=sel1): body hash mismatch",
		"SPF (MAIL FROM example.org): pass",
		"SPF (HELO mail.example.org): none: no SPF record",
		"DMARC (example.org, p=reject): pass by SPF aligned (relaxed)",
		"ARC: none",
	}
	if r.Authentication == nil || r.Authentication.Connection != 3 || !slices.Equal(r.Authentication.Lines, wantLines) {
		t.Fatalf("authentication %+v, want lines %q", r.Authentication, wantLines)
	}
	for _, s := range r.Outbound {
		if strings.Contains(s.Text, "DKIM") && (s.Rating != Bad || !strings.Contains(s.Text, "does not verify: DKIM: fail (d=example.org, s=sel1): body hash mismatch")) {
			t.Errorf("DKIM sentence %+v", s)
		}
		if strings.Contains(s.Text, "DKIM-signed") && s.Rating == Good {
			t.Errorf("a failing signature reads as signed: %+v", s)
		}
	}
	for name, want := range map[string]any{"DKIM": "fail", "SPF": "pass", "SPF HELO": "none", "DMARC": "pass", "ARC": "none",
		verdict.FactSignsDKIM: false, verdict.FactEnforcesEncryption: false} {
		if got, ok := r.Facts[name]; !ok || got != want {
			t.Errorf("fact %q = %v, want %v (facts %v)", name, got, want, r.Facts)
		}
	}
	if _, ok := r.Facts[verdict.FactValidatesDANE]; ok {
		t.Errorf("an unsettled fact is in the facts: %v", r.Facts)
	}
	// A mail without evaluation (stored before it existed): no section,
	// and no authentication facts.
	plain := plainFallbackHistory()
	if r := Build(Input{Connections: plain, Verdict: judge(plain, true)}); r.Authentication != nil || r.Facts["DKIM"] != nil {
		t.Errorf("no evaluation: %+v %v", r.Authentication, r.Facts)
	}
	text, err := Text(r)
	if err != nil || !strings.Contains(text, "Authentication of your test mail (as received):\n- DKIM: fail (d=example.org, s=sel1): body hash mismatch\n") {
		t.Errorf("text (%v):\n%s", err, text)
	}
}

// plainFallbackHistory is a sender that verifies certificates and falls
// back to plain text on the same host (Exim's default): may, named.
func plainFallbackHistory() []store.SMTPConnection {
	return history(
		conn{at: 0, dur: time.Second, persona: 1, state: store.StateMail, from: from, to: []string{rcptA}, reply: "451 4.7.1 downgrade test in progress: try again later"},
		conn{at: 200 * time.Second, dur: time.Second, persona: 3, sni: "mx3.a.mailtest.example", state: store.StateSniSeen, offered: true, certPers: 3},
		conn{at: 201 * time.Second, dur: time.Second, persona: 1, state: store.StateAcked, from: from, to: []string{rcptA}, offered: true, reply: "250 2.0.0 accepted"},
	)
}

// overridesDANEHistory is the sender: dane with an MTA-STS
// resolver, delivering to personas 4, 5 and 6 and refusing 3.
func overridesDANEHistory() []store.SMTPConnection {
	tlsTo := func(at time.Duration, n int) conn {
		return conn{at: at, dur: time.Second, persona: n, tls: true, sni: fmt.Sprintf("mx%d.a.mailtest.example", n), state: store.StateMail,
			from: from, to: []string{rcptA}, offered: true}
	}
	return history(
		conn{at: 0, dur: time.Second, persona: 1, state: store.StateNone},
		conn{at: 200 * time.Second, dur: time.Second, persona: 3, sni: "mx3.a.mailtest.example", state: store.StateSniSeen, offered: true},
		tlsTo(230*time.Second, 4), tlsTo(260*time.Second, 5), tlsTo(290*time.Second, 6),
		conn{at: 291 * time.Second, dur: time.Second, persona: 7, state: store.StateMail, from: from, to: []string{rcptB}},
	)
}

// TestNamedBehaviours: a behaviour the table cannot name is the headline
// and the first sentence, lowers the colour where it defeats the policy,
// and the facts it qualifies say "but".
func TestNamedBehaviours(t *testing.T) {
	fb := Build(Input{Connections: plainFallbackHistory(), Verdict: judge(plainFallbackHistory(), true), Final: true})
	if fb.Policy != "may" || fb.Colour != colour.Red || !strings.Contains(fb.Headline.Text, "falls back to plain text") {
		t.Fatalf("fallback: %s %s %q", fb.Policy, fb.Colour, fb.Headline.Text)
	}
	if len(fb.Outbound) == 0 || !strings.Contains(fb.Outbound[0].Text, "then falls back to plain text") || fb.Outbound[0].Rating != Bad {
		t.Fatalf("fallback: first sentence %+v", fb.Outbound)
	}

	od := judge(overridesDANEHistory(), true)
	r := Build(Input{Connections: overridesDANEHistory(), Verdict: od, Final: true})
	if r.Policy != "dane+mta-sts" || r.Colour != colour.White || !strings.Contains(r.Headline.Text, "RFC 8461 §2") {
		t.Fatalf("override: %s %s %q (%s)", r.Policy, r.Colour, r.Headline.Text, r.Why)
	}
	var daneSentence *Sentence
	for i, s := range r.Outbound {
		if strings.HasPrefix(s.Text, "It validates RFC 7672 DANE") {
			daneSentence = &r.Outbound[i]
		}
	}
	if daneSentence == nil || !strings.Contains(daneSentence.Text, ", but ") || daneSentence.Rating == VeryGood {
		t.Fatalf("override: DANE sentence %+v in %+v", daneSentence, r.Outbound)
	}
	for _, s := range r.StillOpen {
		if strings.Contains(s.Text, "applies MTA-STS") && !strings.Contains(s.Text, "does not change the verdict") {
			t.Fatalf("open question beside the final verdict without a reason: %q", s.Text)
		}
	}
	row := Provider("override.example", t0, od, true, nil)
	if row.Colour != colour.White || row.RFC7672.Colour == colour.Green || row.RFC7672.Value != "yes" {
		t.Fatalf("override row: %+v", row)
	}
}

func TestGolden(t *testing.T) {
	for _, g := range goldenCases() {
		t.Run(g.name, func(t *testing.T) {
			txt, html := renderBoth(t, Build(g.in))
			checkGolden(t, g.name+".txt", txt)
			checkGolden(t, g.name+".html", html)
			for _, out := range []string{txt, html} {
				if strings.Contains(out, "jane.doe") || strings.Contains(out, "abcdefghijklmnop@") {
					t.Errorf("unredacted address in the output:\n%s", out)
				}
			}
		})
	}
}

// renderBoth is r as text and as HTML.
func renderBoth(t *testing.T, r Report) (text, html string) {
	t.Helper()
	text, err := Text(r)
	if err != nil {
		t.Fatal(err)
	}
	if html, err = HTML(r); err != nil {
		t.Fatal(err)
	}
	return text, html
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update once)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs from the golden file; got:\n%s", name, got)
	}
}

func TestSeedForms(t *testing.T) {
	r := Build(goldenCases()[0].in)
	wantLine := "27.08.2022 22:51:08 – 22:51:11 (Server 4, encrypted, Mail): From: <j***@example.org> To: <t***@a.mailtest.example> Signatures: Dkim"
	found := false
	for _, h := range r.History {
		found = found || h.Text == wantLine
	}
	if !found {
		t.Errorf("no history line %q in %+v", wantLine, r.History)
	}
	if r.Policy != "dane-only" || r.Colour != colour.Green {
		t.Errorf("policy %s colour %s, want dane-only green", r.Policy, r.Colour)
	}
	if got, want := r.Headline.String(), "Looks like your mail server uses RFC 7672 (Postfix: dane-only) (very good)."; !strings.HasSuffix(got, want) {
		t.Errorf("headline %q, want it to end in %q", got, want)
	}
	if r.Phase != PhaseDone {
		t.Errorf("phase %s, want done", r.Phase)
	}
	// Plain-text attempts are red, encrypted mail green, refusals grey.
	if r.History[0].Colour != colour.Grey || r.History[3].Colour != colour.Green {
		t.Errorf("colours %s %s", r.History[0].Colour, r.History[3].Colour)
	}
}

func TestInjectionEscaped(t *testing.T) {
	evil := "<script>alert(1)</script>"
	conns := history(conn{at: 0, dur: time.Second, persona: 1, state: store.StateMail, ehlo: evil,
		from: "\"" + evil + "\"@evil.example", to: []string{rcptA}, reply: "451 " + evil})
	in := Input{Test: testOf("x<script>@evil.example", store.TestOpen), Connections: conns, Verdict: judge(conns, false), Now: t0,
		Inbound: &Inbound{Domain: "evil.example", Colour: "<b>", Sentences: []string{evil}}}
	html, err := HTML(Build(in))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(html, "<script>") || strings.Contains(html, "<b>") {
		t.Fatalf("unescaped markup in:\n%s", html)
	}
	if !strings.Contains(html, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the escaped EHLO is missing:\n%s", html)
	}
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"jane@example.org", "j***@example.org"},
		{"<jane@Example.ORG>", "j***@example.org"},
		{"j@example.org", "j***@example.org"},
		{"@example.org", "***@example.org"},
		{"\"a b\"@example.org", "a***@example.org"},
		{"", ""},
		{"postmaster", "***"},
		{"ü@bücher.example", "ü***@bücher.example"},
	} {
		if got := Redact(c.in); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"550 5.1.1 <jane@example.org>: no such user", "550 5.1.1 <j***@example.org>: no such user"},
		{"from bob@x.example and carol@y.example.", "from b***@x.example and c***@y.example."},
		{"no address here", "no address here"},
	} {
		if got := redactText(c.in); got != c.want {
			t.Errorf("redactText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPhase(t *testing.T) {
	one := history(conn{at: 0, persona: 1, state: store.StateNone})
	acked := testOf(from, store.TestAcked)
	acked.Acked = t0.Add(time.Minute)
	for _, c := range []struct {
		name string
		in   Input
		want Phase
	}{
		{"no mail", Input{Now: t0}, PhaseWaiting},
		{"in window", Input{Connections: one, Now: t0.Add(time.Minute), DowngradeWindow: 3 * time.Minute}, PhaseDowngrade},
		{"after window", Input{Connections: one, Now: t0.Add(4 * time.Minute), DowngradeWindow: 3 * time.Minute}, PhaseRotating},
		{"acked", Input{Test: acked, Connections: one, Now: t0.Add(4 * time.Minute), DowngradeWindow: 3 * time.Minute}, PhaseWaiting},
		{"final", Input{Connections: one, Final: true}, PhaseDone},
	} {
		if got, _ := phase(c.in); got != c.want {
			t.Errorf("%s: phase %s, want %s", c.name, got, c.want)
		}
	}
}

func TestPolicyColours(t *testing.T) {
	want := map[verdict.Policy]colour.Colour{
		verdict.PolicyNone: colour.Red, verdict.PolicyMay: colour.Red, verdict.PolicyEncrypt: colour.Yellow, verdict.PolicyVerify: colour.White,
		verdict.PolicyMTASTS: colour.White, verdict.PolicyDANE: colour.Green, verdict.PolicyDANEOnly: colour.Green, verdict.PolicyDANEMTASTS: colour.Green,
		verdict.PolicyUnknown: colour.Grey, verdict.PolicyInconsistent: colour.Grey,
	}
	for p, c := range want {
		if got := PolicyColour(p); got != c {
			t.Errorf("%s: %s, want %s", p, got, c)
		}
	}
}

func TestProviderRow(t *testing.T) {
	v := judge(daneOnlyHistory(), true)
	row := Provider("example.org", t0, v, true, inboundGreen())
	if row.RFC7672.Value != "yes" || row.RFC7672.Colour != colour.Green || row.EncryptionMandatory.Value != "yes" ||
		row.DKIM.Value != "yes" || row.ARC.Value != "no" || row.Encryption.Value != "yes" || row.AdequateCertificate.Value != "yes" {
		t.Errorf("dane-only row: %+v", row)
	}
	if row.InboundColour != colour.Green {
		t.Errorf("inbound colour %s", row.InboundColour)
	}
	none := Provider("plain.example", t0, judge(goldenCases()[1].in.Connections, true), true, nil)
	if none.Encryption.Value != "no" || none.Encryption.Colour != colour.Red || none.EncryptionMandatory.Value != "no" || none.Colour != colour.Red {
		t.Errorf("none row: %+v", none)
	}
	empty := Provider("new.example", time.Time{}, verdict.Verdict{}, false, nil)
	if empty.Comments != "not tested yet" || empty.DKIM.Value != "?" || empty.InboundColour != "" {
		t.Errorf("untested row: %+v", empty)
	}
	// Untested outbound, checked inbound: the inbound colour and its
	// date are shown all the same.
	ib := inboundGreen()
	if r := Provider("new.example", time.Time{}, verdict.Verdict{}, false, ib); r.InboundColour != colour.Green || !r.InboundChecked.Equal(ib.CheckedAt) || r.Colour != colour.Grey {
		t.Errorf("untested row with an inbound check: %+v", r)
	}
}

func FuzzRedactText(f *testing.F) {
	f.Add("550 <jane@example.org> no")
	f.Add("@@@")
	f.Fuzz(func(t *testing.T, s string) {
		out := redactText(s)
		// Whatever went in, no local part longer than one character
		// survives in front of an "@" that redactText recognised.
		for _, m := range addrRe.FindAllString(out, -1) {
			if local := m[:strings.LastIndexByte(m, '@')]; len([]rune(local)) > 4 || !strings.HasSuffix(local, "***") {
				t.Fatalf("redactText(%q) = %q keeps %q", s, out, m)
			}
		}
	})
}

// TestStoredInbound decodes inbound checks as the store keeps them
// (mailsec.check.v1, compact JSON): one written by the current check and
// one by an older version without the keys added since. Both must keep
// rendering the same.
func TestStoredInbound(t *testing.T) {
	for _, name := range []string{"inbound-v1", "inbound-v1-old"} {
		t.Run(name, func(t *testing.T) {
			js, err := os.ReadFile(filepath.Join("testdata", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var ib Inbound
			if err := json.Unmarshal(js, &ib); err != nil {
				t.Fatalf("decoding the stored check: %v", err)
			}
			r := Build(Input{Test: testOf(from, store.TestFinal), Verdict: judge(nil, true), Final: true, Now: t0, Inbound: &ib})
			if !r.Inbound.Available || r.Inbound.Domain != ib.Domain || r.Inbound.Colour != ib.Colour || len(r.Inbound.Bad) == 0 {
				t.Errorf("inbound section %+v", r.Inbound)
			}
			txt, err := Text(r)
			if err != nil {
				t.Fatal(err)
			}
			html, err := HTML(r)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, name+".txt", txt)
			checkGolden(t, name+".html", html)
			if strings.Contains(txt+html, "postmaster@") {
				t.Errorf("unredacted address in the output")
			}
			if row := Provider("old.example", t0, verdict.Verdict{}, true, &ib); row.InboundColour != ib.Colour {
				t.Errorf("provider row inbound colour %q, want %q", row.InboundColour, ib.Colour)
			}
		})
	}
}

func TestHeadline(t *testing.T) {
	tests := []struct {
		name string
		v    verdict.Verdict
		want Sentence
	}{
		{"dane-only", verdict.Verdict{Policy: verdict.PolicyDANEOnly}, Sentence{Text: "Mail servers with valid certificates according to RFC 7672 got a message. Looks like your mail server uses RFC 7672 (Postfix: dane-only)", Rating: VeryGood}},
		{"mta-sts", verdict.Verdict{Policy: verdict.PolicyMTASTS}, Sentence{Text: "Looks like your mail server uses RFC 8461 MTA-STS, not RFC 7672 DANE", Rating: Good}},
		{"encrypt", verdict.Verdict{Policy: verdict.PolicyEncrypt}, Sentence{Text: "Looks like your mail server enforces encryption but accepts any certificate (Postfix: encrypt): an attacker with a certificate of his own can read along", Rating: Weak}},
		{"may", verdict.Verdict{Policy: verdict.PolicyMay}, Sentence{Text: "Looks like your mail server encrypts only when the receiver offers STARTTLS (Postfix: may): an attacker who strips STARTTLS reads your mail", Rating: Bad}},
		{"none", verdict.Verdict{Policy: verdict.PolicyNone}, Sentence{Text: "Looks like your mail server never encrypts (Postfix: none)", Rating: VeryBad}},
		{"inconsistent", verdict.Verdict{Policy: verdict.PolicyInconsistent}, Sentence{Text: "Your mail server's behaviour fits no policy of the table; see the connection history", Rating: Unknown}},
		{"undecided, final", verdict.Verdict{Policy: verdict.PolicyUnknown, Candidates: []verdict.Policy{verdict.PolicyVerify, verdict.PolicyMTASTS}},
			Sentence{Text: "The test could not tell apart: verify, mta-sts", Rating: Unknown}},
		{"undecided, running", verdict.Verdict{Policy: verdict.PolicyUnknown, Candidates: []verdict.Policy{verdict.PolicyNone, verdict.PolicyMay}, Attempts: 1},
			Sentence{Text: "The test is still running; still possible: none, may", Rating: Unknown}},
		{"nothing seen", verdict.Verdict{Policy: verdict.PolicyUnknown}, Sentence{Text: "No connection from your mail server yet", Rating: Unknown}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			final := tc.name == "undecided, final"
			if got := headline(i18n.English, tc.v, final); got.Text != tc.want.Text || got.Rating != tc.want.Rating {
				t.Errorf("headline = %+v, want %+v", got, tc.want)
			}
		})
	}
	// Every policy the verdict can settle on has its own headline.
	for _, p := range append(verdict.Candidates, verdict.PolicyInconsistent) {
		if h := headline(i18n.English, verdict.Verdict{Policy: p}, true); h.Rating == Unknown && p != verdict.PolicyInconsistent {
			t.Errorf("%s: no headline of its own: %+v", p, h)
		}
	}
}

func TestFactSentence(t *testing.T) {
	tests := []struct {
		name string
		f    verdict.Fact
		dane bool
		want Sentence
	}{
		{"downgrade refused", verdict.Fact{Name: verdict.FactEnforcesEncryption, Value: true}, false,
			Sentence{Text: "Your mail server refused to send in plain text while STARTTLS was withheld (a simulated downgrade attack)", Rating: Good}},
		{"downgrade accepted", verdict.Fact{Name: verdict.FactEnforcesEncryption, Why: "sent in plain text when STARTTLS was withheld"}, false,
			Sentence{Text: "Your mail server sent in plain text while STARTTLS was withheld: a downgrade attack would succeed", Rating: Bad}},
		{"plain text after a failed handshake", verdict.Fact{Name: verdict.FactEnforcesEncryption, Why: "delivered in plain text on the host whose certificate it had just refused"}, false,
			Sentence{Text: "Your mail server does not enforce encryption: it delivered in plain text on the host whose certificate it had just refused", Rating: Bad}},
		{"PKIX, yes", verdict.Fact{Name: verdict.FactValidatesPKIX, Value: true}, true,
			Sentence{Text: "It validates certificates (trusted CA and host name)", Rating: Good}},
		{"PKIX, no", verdict.Fact{Name: verdict.FactValidatesPKIX, Why: "delivered to persona 2"}, false,
			Sentence{Text: "It does not validate certificates: delivered to persona 2", Rating: Bad}},
		{"PKIX, no, under DANE", verdict.Fact{Name: verdict.FactValidatesPKIX, Why: "delivered to persona 4"}, true,
			Sentence{Text: "Certificates are checked by DANE, not by a CA: delivered to persona 4", Rating: Info}},
		{"DANE, yes", verdict.Fact{Name: verdict.FactValidatesDANE, Value: true}, false,
			Sentence{Text: "It validates RFC 7672 DANE TLSA records", Rating: VeryGood}},
		{"MTA-STS, no", verdict.Fact{Name: verdict.FactAppliesMTASTS, Why: "no fetch"}, false,
			Sentence{Text: "It does not apply RFC 8461 MTA-STS: no fetch", Rating: Info}},
		{"RFC 8461 §2, no", verdict.Fact{Name: verdict.FactRespectsRFC8461S2, Why: "persona 5"}, false,
			Sentence{Text: "MTA-STS overrides a failed DANE validation, against RFC 8461 §2: persona 5", Rating: Bad}},
		{"retries, no", verdict.Fact{Name: verdict.FactRetries, Why: "gave up"}, false,
			Sentence{Text: "It did not retry after the refused STARTTLS: gave up", Rating: Weak}},
		{"IPv6, yes", verdict.Fact{Name: verdict.FactUsesIPv6, Value: true}, false,
			Sentence{Text: "It delivers over IPv6", Rating: Info}},
		{"DKIM, no", verdict.Fact{Name: verdict.FactSignsDKIM, Why: "no signature"}, false,
			Sentence{Text: "Your mails are not DKIM-signed: no signature", Rating: Bad}},
		{"ARC, yes", verdict.Fact{Name: verdict.FactSignsARC, Value: true}, false,
			Sentence{Text: "Your mails carry an ARC seal", Rating: Info}},
		{"SNI, yes", verdict.Fact{Name: verdict.FactSendsSNI, Value: true}, false,
			Sentence{Text: "It sends SNI (the server name) in the TLS handshake", Rating: Info}},
		{"SNI, no, although it verifies", verdict.Fact{Name: verdict.FactSendsSNI, Why: "verifies certificates without SNI"}, false,
			Sentence{Text: "It verifies certificates without SNI", Rating: Bad}},
		{"SNI, no", verdict.Fact{Name: verdict.FactSendsSNI, Why: "no SNI"}, false,
			Sentence{Text: "It sends no SNI in the TLS handshake", Rating: Info}},
		{"a fact without wording", verdict.Fact{Name: "new_fact", Value: true, Why: "seen"}, false,
			Sentence{Text: "new_fact: yes (seen)", Rating: Info}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := factSentence(i18n.English, tc.f, tc.dane); got.Text != tc.want.Text || got.Rating != tc.want.Rating {
				t.Errorf("factSentence = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestDANEWithoutDNSSECLosesTheCredit: a DANE verdict behind a resolver
// that does not validate DNSSEC is not green (docs/verdict.md "Validates
// DNSSEC"), and its headline says why.
func TestDANEWithoutDNSSECLosesTheCredit(t *testing.T) {
	void := []verdict.Behaviour{{Name: verdict.BehaviourDANEWithoutDNSSEC, Text: "x", Evidence: []int64{1}}}
	for _, tc := range []struct {
		policy verdict.Policy
		want   colour.Colour
	}{
		{verdict.PolicyDANE, colour.Yellow},
		{verdict.PolicyDANEOnly, colour.Yellow},
		{verdict.PolicyDANEMTASTS, colour.White},
	} {
		v := verdict.Verdict{Policy: tc.policy, Behaviours: void}
		if got := VerdictColour(v); got != tc.want {
			t.Errorf("%s without DNSSEC validation: %s, want %s", tc.policy, got, tc.want)
		}
		if h := headline(i18n.English, v, true); !strings.Contains(h.Text, "does not validate DNSSEC") {
			t.Errorf("%s: headline %q", tc.policy, h.Text)
		}
		if got := VerdictColour(verdict.Verdict{Policy: tc.policy, Behaviours: []verdict.Behaviour{}}); got != colour.Green {
			t.Errorf("%s validating: %s, want green", tc.policy, got)
		}
	}
}
