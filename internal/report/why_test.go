package report

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// whyColumns are the places verdict tells apart (its columns), as the
// connection that lands in each: persona, TLS or not, STARTTLS offered.
var whyColumns = []struct {
	persona  int
	tls      bool
	offered  bool
	noRefuse bool // a refusal here says nothing (verdict's classify)
}{
	{persona: 1},                                // STARTTLS withheld
	{persona: 2, tls: true},                     //
	{persona: 3, tls: true},                     //
	{persona: 4, tls: true},                     //
	{persona: 5, tls: true},                     //
	{persona: 6, tls: true},                     //
	{persona: 7},                                // B in plain text
	{persona: 7, tls: true},                     // B over TLS
	{persona: 1, offered: true, noRefuse: true}, // STARTTLS offered, not used
}

var (
	whyT0     = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	whyBroken = netip.MustParseAddr("192.0.2.99")
	whyLocal  = netip.MustParseAddrPort("192.0.2.25:25")
	whyBTLSA  = "_25._tcp.mx7.s001.b.example."
)

// whyHistories calls f with the verdict of every history of the simulated
// senders: every column not reached, delivered to or refused, with and
// without a fetch of the MTA-STS policy, the sender quiet or not, and by
// turns a connection to the broken-DNSSEC host, the plain delivery
// before or after the refusals (a fallback), and B refused on its TLSA
// look-up with a mail for B. With stride n > 1 it walks one history in
// n, picked by a hash so that no column's outcome is left out.
func whyHistories(stride int, f func(verdict.Verdict)) {
	n := 1
	for range whyColumns {
		n *= 3
	}
	for combo := range n {
		var outcome []int
		skip := false
		for i, c := 0, combo; i < len(whyColumns); i, c = i+1, c/3 {
			outcome = append(outcome, c%3)
			if c%3 == 2 && whyColumns[i].noRefuse {
				skip = true
			}
		}
		if skip || int(uint32(combo)*2246822519>>13)%stride != 0 {
			continue
		}
		// The variant, mixed (Knuth's multiplicative hash) so that it does
		// not follow one column's outcome.
		extra := int(uint32(combo)*2654435761>>16) % 6
		var conns []store.SMTPConnection
		add := func(i int) {
			col := whyColumns[i]
			if outcome[i] == 0 {
				return
			}
			at := whyT0.Add(time.Duration(len(conns)) * time.Second)
			c := store.SMTPConnection{ID: int64(len(conns) + 1), Client: netip.MustParseAddrPort("198.51.100.1:40000"), Local: whyLocal,
				Started: at, Ended: at.Add(time.Second), EHLO: "mta.example.org", STARTTLSOffered: col.offered, Persona: col.persona, State: store.StateNone}
			if col.tls {
				c.CertPersona, c.State = col.persona, store.StateSniSeen
			}
			if outcome[i] == 1 {
				c.State, c.MailFrom = store.StateMail, "sender@example.org"
				if col.tls {
					c.TLSVersion = "TLS1.3"
				}
			}
			conns = append(conns, c)
		}
		order := make([]int, len(whyColumns))
		for i := range order {
			order[i] = i
		}
		if extra == 2 {
			order = append([]int{len(whyColumns) - 1}, order[:len(order)-1]...)
		}
		for _, i := range order {
			add(i)
		}
		if extra == 5 {
			// The first delivery is refused once too: both in one column.
			for _, c := range conns {
				if c.State == store.StateMail && c.Persona != 1 {
					c.ID, c.Started, c.Ended, c.State, c.TLSVersion, c.MailFrom = int64(len(conns)+1), c.Ended, c.Ended.Add(time.Second), store.StateSniSeen, "", ""
					conns = append(conns, c)
					break
				}
			}
		}
		obs := verdict.Observations{Connections: conns, Quiet: 10 * time.Minute, BTLSANames: []string{whyBTLSA}}
		if extra == 1 {
			obs.BrokenHostAddrs = []netip.Addr{whyBroken}
			obs.Connections = append(obs.Connections, store.SMTPConnection{ID: 100, Local: netip.AddrPortFrom(whyBroken, 25),
				Started: whyT0.Add(-time.Second), Ended: whyT0.Add(-time.Second), State: store.StateNone})
		}
		if extra == 3 || extra == 4 {
			obs.SentToB = true
		}
		if extra == 3 {
			obs.DNSLookups = []store.DNSQuery{{Time: whyT0.Add(-time.Hour), Name: whyBTLSA, Type: 52, DO: true, Rcode: 3}}
		}
		last := whyT0.Add(time.Duration(len(conns)) * time.Second)
		for _, fetched := range []bool{false, true} {
			obs.PolicyFetches = nil
			if fetched {
				obs.PolicyFetches = []store.PolicyFetch{{Time: whyT0, Path: "/.well-known/mta-sts.txt", Status: 200}}
			}
			for _, quiet := range []bool{false, true} {
				obs.Now = last
				if quiet {
					obs.Now = last.Add(time.Hour)
				}
				f(verdict.Judge(obs))
			}
		}
	}
}

// TestGermanWhy: every reason the verdict gives over the simulated
// histories reads in German, piece by piece; the English stays as it is.
func TestGermanWhy(t *testing.T) {
	whys := map[string]bool{}
	policies := map[verdict.Policy]bool{}
	behaviours := map[string]bool{}
	stride := 1
	if raceEnabled {
		stride = 4
	}
	whyHistories(stride, func(v verdict.Verdict) {
		for _, b := range v.Behaviours {
			if v.Policy != verdict.PolicyUnknown {
				behaviours[b.Text] = true // in the reason: "it " + Text
			}
		}
		whys[v.Why] = true
		whys[Provider("example.org", whyT0, v, true, nil).Comments] = true
		policies[v.Policy] = true
	})
	for _, p := range append(verdict.Candidates, verdict.PolicyUnknown, verdict.PolicyInconsistent) {
		if !policies[p] {
			t.Errorf("no simulated history gives %s", p)
		}
	}
	used := map[string]bool{}
	for why := range whys {
		// LocalizeWhy returns English as it is; the catalogue's reading
		// of each piece must give it back unchanged too (the formats
		// re-render what they parsed).
		for _, s := range strings.Split(why, "; ") {
			if got, ok := whyPiece(i18n.English, s, whyDepth, nil); ok && got != s {
				t.Errorf("English piece changed:\n got %q\nwant %q", got, s)
			}
		}
		for _, s := range strings.Split(why, "; ") {
			if _, ok := whyPiece(i18n.German, s, whyDepth, used); !ok {
				t.Errorf("no German for %q\n in %q", s, why)
			}
		}
	}
	// The histories reach every piece of the catalogue: a piece no
	// history gives is one the walk misses, or one verdict no longer
	// writes.
	//
	// "a refusal of plain text" is what encrypt would lack as the only
	// candidate, but may, the candidate left beside it, differs from it
	// only in refusing plain text: encrypt is alone only once that is seen.
	for _, p := range i18n.WhyPieces() {
		if !used[p] && p != "a refusal of plain text" {
			t.Errorf("no simulated reason uses %q", p)
		}
	}
	for b := range behaviours {
		if !used[b] {
			t.Errorf("behaviour %q not read in German", b)
		}
	}
	if len(behaviours) < 4 {
		t.Errorf("the histories give %d of the 4 behaviours", len(behaviours))
	}
	t.Logf("%d reasons", len(whys))
}

// TestLocalizeWhy: known reasons read in German, with the policies and
// the seen columns as they should; an unknown piece stays whole English.
func TestLocalizeWhy(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"only dane-only explains persona 1 (STARTTLS withheld): refused, persona 1 (STARTTLS offered, not used): delivered, MTA-STS policy fetched",
			"nur dane-only erklärt Server 1 (STARTTLS zurückgehalten): abgelehnt, Server 1 (STARTTLS angeboten, nicht genutzt): zugestellt, MTA-STS-Richtlinie abgerufen"},
		{"no policy of the table explains the connections: not none: it refused persona 1 (STARTTLS withheld); not may: it fetched the MTA-STS policy",
			"keine Richtlinie der Tabelle erklärt die Verbindungen: nicht none: er hat Server 1 (STARTTLS zurückgehalten) abgelehnt; nicht may: er hat die MTA-STS-Richtlinie abgerufen"},
		{"still possible: dane, dane+mta-sts", "noch möglich: dane, dane+mta-sts"},
		{"not settled: still possible: verify, mta-sts", "nicht entschieden: noch möglich: verify, mta-sts"},
		// Unknown pieces: whole, never "er" before English.
		{"it does something new; still possible: dane", "it does something new; noch möglich: dane"},
		{"only dane explains persona 9: delivered", "only dane explains persona 9: delivered"},
		{"still possible: dane, frobnicate", "still possible: dane, frobnicate"},
		{"", ""},
	} {
		if got := LocalizeWhy(i18n.German, tc.in); got != tc.want {
			t.Errorf("LocalizeWhy(de, %q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func ExampleLocalizeWhy() {
	fmt.Println(LocalizeWhy(i18n.German, "only dane explains persona 4: delivered, persona 5: refused"))
	// Output: nur dane erklärt Server 4: zugestellt, Server 5: abgelehnt
}

// TestLocalizeFactWhy: every fact the verdict reconciled (implied by its
// policy, not settled by the connections) reads in German without the
// English of verdict's note or of the verdict's reason, and in English as
// verdict wrote it; the histories must give such facts (else verdict's
// words changed and localizeFactWhy no longer finds them).
func TestLocalizeFactWhy(t *testing.T) {
	seen := 0
	whyHistories(16, func(v verdict.Verdict) {
		for _, f := range v.Facts {
			if !strings.Contains(f.Why, verdict.ReconciledNote) {
				continue
			}
			seen++
			if got := localizeFactWhy(i18n.English, f.Why); got != i18n.Text(i18n.English, f.Why) && got != f.Why {
				t.Fatalf("English changed:\n got %q\nwant %q", got, f.Why)
			}
			de := localizeFactWhy(i18n.German, f.Why)
			for _, english := range []string{"not seen directly", "it rests on", "still possible", " explains "} {
				if strings.Contains(de, english) {
					t.Fatalf("German fact reason keeps %q:\n %q\nfrom %q", english, de, f.Why)
				}
			}
		}
	})
	if seen == 0 {
		t.Fatal("no reconciled fact in the histories: has verdict's note changed?")
	}
	t.Logf("%d reconciled facts", seen)
}
