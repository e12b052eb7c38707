package dane

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// maxFuzzInput bounds a fuzzed message or record text: a TLSA answer
// fits a DNS message of 64 KiB, and the properties do not depend on size.
const maxFuzzInput = 8 << 10

// tlsaSeeds are records in their presentation form: the usual 3 1 1 and
// 2 0 1, a full certificate, unusable and unassigned values, odd data.
var tlsaSeeds = []string{
	"3 1 1 0C72AC70B745AC19998811B131D662C9AC69DBDBE7CB23E5B514B56664C5D3D6",
	"2 0 1 E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
	"3 0 2 " + strings.Repeat("ab", 64),
	"3 1 0 3059301306072a8648ce3d020106082a8648ce3d03010703420004",
	"0 0 1 " + strings.Repeat("00", 32),
	"255 255 255 00",
	"3 1 1 0c72ac70 b745ac19",
	"1 1 1 0",
	"3 1 1 -",
}

// FuzzTLSA converts TLSA records as they come from the network — the
// answer section of a DNS message (RFC 6698 §2.1) — and as text. From the
// wire every TLSA record converts (FromRRs's promise); each record, and
// each parsed text, survives String and ParseTLSA unchanged; Usable keeps
// exactly the records Unusable does not object to, and those have the
// digest length of their matching type.
func FuzzTLSA(f *testing.F) {
	for _, s := range tlsaSeeds {
		m := new(dns.Msg)
		m.SetQuestion("_25._tcp.mx.example.", dns.TypeTLSA)
		if rr, err := dns.NewRR("_25._tcp.mx.example. 300 IN TLSA " + s); err == nil {
			sig, _ := dns.NewRR("_25._tcp.mx.example. 300 IN RRSIG TLSA 13 4 300 20260601000000 20260501000000 1234 example. AAAA")
			m.Answer = append(m.Answer, rr, sig)
		}
		wire, err := m.Pack()
		if err != nil { // text that is no record on the wire (odd hex)
			m.Answer = nil
			if wire, err = m.Pack(); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(wire, s)
	}
	f.Fuzz(func(t *testing.T, wire []byte, text string) {
		if len(wire) > maxFuzzInput || len(text) > maxFuzzInput {
			t.Skip()
		}
		m := new(dns.Msg)
		if err := m.Unpack(wire); err == nil {
			checkFromRRs(t, m.Answer)
		}
		r, err := ParseTLSA(text)
		if err != nil {
			if !errors.Is(err, ErrBadRecord) {
				t.Fatalf("ParseTLSA(%q): error %v does not wrap ErrBadRecord", text, err)
			}
			return
		}
		checkRoundTrip(t, r)
	})
}

// checkFromRRs checks the conversion of a message's answer section.
func checkFromRRs(t *testing.T, rrs []dns.RR) {
	t.Helper()
	var want []*dns.TLSA
	for _, rr := range rrs {
		if v, ok := rr.(*dns.TLSA); ok {
			want = append(want, v)
		}
	}
	records, malformed := FromRRs(rrs)
	if malformed != 0 || len(records) != len(want) {
		t.Fatalf("%d TLSA records from the wire gave %d records and %d malformed", len(want), len(records), malformed)
	}
	for i, r := range records {
		w := want[i]
		if uint8(r.Usage) != w.Usage || uint8(r.Selector) != w.Selector || uint8(r.MatchingType) != w.MatchingType ||
			!strings.EqualFold(hex.EncodeToString(r.Data), w.Certificate) {
			t.Fatalf("%v converted to %v", w, r)
		}
		checkRoundTrip(t, r)
	}
	usable := Usable(records)
	n := 0
	for _, r := range records {
		if r.Unusable() == "" {
			if n >= len(usable) || !equalTLSA(usable[n], r) {
				t.Fatalf("Usable(%v) = %v: misses %v", records, usable, r)
			}
			n++
		}
	}
	if n != len(usable) {
		t.Fatalf("Usable(%v) = %v: %d usable", records, usable, n)
	}
	for _, r := range usable {
		if r.Usage != UsageDANETA && r.Usage != UsageDANEEE || r.Selector > SelectorSPKI ||
			r.MatchingType == MatchSHA256 && len(r.Data) != 32 || r.MatchingType == MatchSHA512 && len(r.Data) != 64 ||
			r.MatchingType == MatchFull && len(r.Data) == 0 || r.MatchingType > MatchSHA512 {
			t.Fatalf("%v is called usable", r)
		}
	}
}

// checkRoundTrip checks that r's presentation form parses back to r.
func checkRoundTrip(t *testing.T, r TLSA) {
	t.Helper()
	if len(r.Data) == 0 {
		// A record from the wire may end after its matching type; the
		// presentation form has no way to write empty data (RFC 6698
		// §2.2: a string of hex digits), so its String is refused, never
		// read as another record.
		if _, err := ParseTLSA(r.String()); !errors.Is(err, ErrBadRecord) {
			t.Fatalf("%q (empty data) parsed: %v", r.String(), err)
		}
		return
	}
	again, err := ParseTLSA(r.String())
	if err != nil || !equalTLSA(again, r) {
		t.Fatalf("%v → %q → %v, %v", r, r.String(), again, err)
	}
	if short := r.Short(); !strings.HasPrefix(r.String(), strings.TrimSuffix(short, "…")) || len(short) > len("255 255 255 ")+16+len("…") {
		t.Fatalf("Short() = %q for %q", short, r.String())
	}
}

func equalTLSA(a, b TLSA) bool {
	return a.Usage == b.Usage && a.Selector == b.Selector && a.MatchingType == b.MatchingType && bytes.Equal(a.Data, b.Data)
}
