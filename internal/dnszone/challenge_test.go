package dnszone

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/dnssec"
	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/persona"
)

const (
	chOriginA = "a.example."
	chOriginB = "b.example."
)

// testAuthority builds zone A (signed) and zone B (unsigned) as the service
// does, rotating every minute.
func testAuthority(t *testing.T, now time.Time) (*Authority, *dnssec.Key) {
	t.Helper()
	dir := t.TempDir()
	keys, err := persona.LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	keyA, err := dnssec.LoadOrCreateKey(dir, chOriginA, 3600)
	if err != nil {
		t.Fatal(err)
	}
	base := TestZoneSpec{
		NSAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.53")},
		MXAddrs: []netip.Addr{netip.MustParseAddr("192.0.2.25")},
		TTL:     300, MXTTL: 60, NegativeTTL: 30,
		Keys:     keys,
		Rotation: time.Minute,
	}
	specA := base
	specA.Zone, specA.Origin, specA.DNSKEY = persona.ZoneA, chOriginA, keyA.DNSKEY
	specA.Policy = mtasts.Policy{Mode: mtasts.ModeEnforce, MX: []string{"mx4.a.example"}, MaxAge: time.Hour}
	specB := base
	specB.Zone, specB.Origin = persona.ZoneB, chOriginB
	signer := dnssec.NewSigner(keyA, 14*24*time.Hour, 5*24*time.Hour, time.Hour)
	a, err := NewAuthority([]TestZoneSpec{specA, specB}, []*dnssec.Signer{signer, nil}, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	return a, keyA
}

// checkChain verifies the NSEC chain of z: canonical order, closed, one
// link per owner, and every NSEC (and every other RRset) validly signed.
func checkChain(t *testing.T, z *SignedZone, key *dnssec.Key, now time.Time) {
	t.Helper()
	var owners []string
	next := map[string]string{}
	for _, set := range z.RRsets() {
		signed, err := z.Sign(now, set)
		if err != nil {
			t.Fatal(err)
		}
		sig := signed[len(signed)-1].(*dns.RRSIG)
		if err := sig.Verify(key.DNSKEY, set); err != nil {
			t.Errorf("%s: RRSIG does not verify: %v", rrDesc(set), err)
		}
		if n, ok := set[0].(*dns.NSEC); ok {
			owners = append(owners, n.Hdr.Name)
			next[n.Hdr.Name] = n.NextDomain
		}
	}
	if !slices.IsSortedFunc(owners, CompareCanonical) {
		t.Fatalf("NSEC owners not in canonical order: %v", owners)
	}
	origin := z.Origin()
	cur, links := origin, 0
	for {
		cur = next[cur]
		links++
		if cur == origin || links > len(owners) {
			break
		}
	}
	if links != len(owners) {
		t.Fatalf("NSEC chain of %d links for %d owners", links, len(owners))
	}
}

func TestChallengePublishAndClear(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, keyA := testAuthority(t, now)
	const name = "_acme-challenge.mx6.a.example."

	lookup := func(snap *Snapshot, qname string) Result {
		t.Helper()
		z := snap.Find(qname)
		if z == nil {
			t.Fatalf("%s: in no zone", qname)
		}
		return z.Lookup(qname, dns.TypeTXT, true)
	}
	txts := func(r Result) []string {
		var out []string
		for _, set := range r.Answer {
			for _, rr := range set {
				txt := rr.(*dns.TXT)
				if txt.Hdr.Ttl != ChallengeTTL {
					t.Errorf("%s: TTL %d, want %d", txt.Hdr.Name, txt.Hdr.Ttl, ChallengeTTL)
				}
				out = append(out, strings.Join(txt.Txt, ""))
			}
		}
		return out
	}

	before := a.Snapshot(now)
	if r := lookup(before, name); r.Rcode != dns.RcodeNameError {
		t.Fatalf("before: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	if err := a.SetChallenge("_ACME-Challenge.MX6.A.example", []string{"tok-2", "tok-1", "tok-2"}); err != nil {
		t.Fatal(err)
	}
	set := a.Snapshot(now)
	if set == before {
		t.Fatal("SetChallenge kept the old snapshot: the answer cache would serve the old answers")
	}
	if r := lookup(set, name); r.Rcode != dns.RcodeSuccess || !slices.Equal(txts(r), []string{"tok-1", "tok-2"}) {
		t.Fatalf("after set: rcode %s, TXT %q", dns.RcodeToString[r.Rcode], txts(r))
	}
	checkChain(t, set.Find(name), keyA, now)
	// The owner above the challenge still answers as before.
	if r := set.Find("mx6.a.example.").Lookup("mx6.a.example.", dns.TypeA, true); r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Fatalf("mx6 A after set: %+v", r)
	}

	// Every later rebuild carries the records: the next rotation step.
	later := a.Snapshot(now.Add(time.Minute))
	if later.Step == set.Step {
		t.Fatal("no new rotation step")
	}
	if got := txts(lookup(later, name)); !slices.Equal(got, []string{"tok-1", "tok-2"}) {
		t.Fatalf("next step: TXT %q", got)
	}

	// Zone B (unsigned) takes challenges too; replacing a value set.
	const nameB = "_acme-challenge.mx7.b.example."
	if err := a.SetChallenge(nameB, []string{"b-1"}); err != nil {
		t.Fatal(err)
	}
	if err := a.SetChallenge(name, []string{"tok-3"}); err != nil {
		t.Fatal(err)
	}
	snap := a.Snapshot(now.Add(time.Minute))
	if got := txts(lookup(snap, nameB)); !slices.Equal(got, []string{"b-1"}) {
		t.Fatalf("zone B: TXT %q", got)
	}
	if got := txts(lookup(snap, name)); !slices.Equal(got, []string{"tok-3"}) {
		t.Fatalf("replaced: TXT %q", got)
	}
	if got := a.Challenges(); len(got) != 2 {
		t.Fatalf("Challenges() = %v", got)
	}

	if err := a.ClearChallenge(name); err != nil {
		t.Fatal(err)
	}
	if err := a.SetChallenge(nameB, nil); err != nil {
		t.Fatal(err)
	}
	cleared := a.Snapshot(now.Add(time.Minute))
	for _, n := range []string{name, nameB} {
		if r := lookup(cleared, n); r.Rcode != dns.RcodeNameError {
			t.Fatalf("%s after clear: rcode %s", n, dns.RcodeToString[r.Rcode])
		}
	}
	checkChain(t, cleared.Find(name), keyA, now)
	if err := a.ClearChallenge(name); err != nil {
		t.Fatalf("clearing twice: %v", err)
	}
	if got := a.Challenges(); len(got) != 0 {
		t.Fatalf("Challenges() after clear = %v", got)
	}
}

func TestChallengeRejects(t *testing.T) {
	a, _ := testAuthority(t, time.Unix(1_800_000_000, 0))
	tests := []struct {
		name   string
		values []string
	}{
		{"mx6.a.example.", []string{"x"}},                     // not a challenge name
		{"_acme-challenge.mx6.other.example.", []string{"x"}}, // outside A and B
		{"_acme-challenge.a.example.evil.", []string{"x"}},    // suffix trick
		{"x._acme-challenge.mx6.a.example.", []string{"x"}},   // label not first
		{"", []string{"x"}},                                   // empty
		{"_acme-challenge.mx6.a.example.", []string{""}},      // empty value
		{"_acme-challenge.mx6.a.example.", []string{"a b"}},   // space
		{"_acme-challenge.mx6.a.example.", []string{`a"b`}},   // quote
		{"_acme-challenge.mx6.a.example.", []string{"é"}},     // not ASCII
		{"_acme-challenge.mx6.a.example.", []string{strings.Repeat("x", 256)}},
	}
	for _, tc := range tests {
		if err := a.SetChallenge(tc.name, tc.values); !errors.Is(err, ErrChallenge) {
			t.Errorf("SetChallenge(%q, %q) = %v, want ErrChallenge", tc.name, tc.values, err)
		}
	}
	if err := a.ClearChallenge("_acme-challenge.elsewhere.example."); !errors.Is(err, ErrChallenge) {
		t.Errorf("ClearChallenge outside the zones = %v, want ErrChallenge", err)
	}
	if got := a.Challenges(); len(got) != 0 {
		t.Fatalf("a refused call published %v", got)
	}
	// Too many names.
	for i := range maxChallengeNames {
		if err := a.SetChallenge(fmt.Sprintf("_acme-challenge.h%d.a.example.", i), []string{"v"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SetChallenge("_acme-challenge.one-more.a.example.", []string{"v"}); !errors.Is(err, ErrChallenge) {
		t.Fatalf("name %d: %v, want ErrChallenge", maxChallengeNames+1, err)
	}
}

// TestChallengeConcurrent runs queries' snapshot look-ups against changes
// of the challenge set (for -race): every snapshot is whole.
func TestChallengeConcurrent(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, _ := testAuthority(t, now)
	const name = "_acme-challenge.mta-sts.a.example."
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				snap := a.Snapshot(now.Add(time.Duration(i%3) * time.Minute))
				r := snap.Find(name).Lookup(name, dns.TypeTXT, true)
				if r.Rcode != dns.RcodeSuccess && r.Rcode != dns.RcodeNameError {
					t.Errorf("rcode %d", r.Rcode)
					return
				}
			}
		})
	}
	for i := range 50 {
		var err error
		if i%2 == 0 {
			err = a.SetChallenge(name, []string{"v" + strings.Repeat("x", i)})
		} else {
			err = a.ClearChallenge(name)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
}

// TestReplaceChallenges: the set given is published exactly (names not
// given any more are gone), an unchanged set does not rebuild the
// snapshot, and a bad entry is refused by name while the rest is
// published.
func TestReplaceChallenges(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, _ := testAuthority(t, now)
	const n1, n2 = "_acme-challenge.mx5.a.example.", "_acme-challenge.mx7.b.example."
	if err := a.SetChallenge(n1, []string{"local"}); err != nil {
		t.Fatal(err)
	}
	changed, err := a.ReplaceChallenges(map[string][]string{"_ACME-challenge.MX7.b.example": {"v2", "v1"}})
	if err != nil || !changed {
		t.Fatalf("replace: %v %v", changed, err)
	}
	if got := a.Challenges(); len(got) != 1 || !slices.Equal(got[n2], []string{"v1", "v2"}) {
		t.Fatalf("published %v, want only %s", got, n2)
	}
	snap := a.Snapshot(now)
	if changed, err := a.ReplaceChallenges(map[string][]string{n2: {"v1", "v2"}}); err != nil || changed || a.Snapshot(now) != snap {
		t.Fatalf("the same set again: changed %v, %v, snapshot rebuilt %v", changed, err, a.Snapshot(now) != snap)
	}
	changed, err = a.ReplaceChallenges(map[string][]string{n1: {"ok"}, "_acme-challenge.elsewhere.example.": {"x"}, n2: {"bad value"}})
	if !errors.Is(err, ErrChallenge) || !strings.Contains(err.Error(), "elsewhere") || !strings.Contains(err.Error(), "mx7") || !changed {
		t.Fatalf("bad entries: changed %v, err %v", changed, err)
	}
	if got := a.Challenges(); len(got) != 1 || !slices.Equal(got[n1], []string{"ok"}) {
		t.Fatalf("published %v, want only the good entry", got)
	}
	if changed, err := a.ReplaceChallenges(nil); err != nil || !changed || len(a.Challenges()) != 0 {
		t.Fatalf("empty set: %v %v %v", changed, err, a.Challenges())
	}
}
