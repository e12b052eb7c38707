package verdict

import (
	"net/netip"
	"testing"
)

// TestTableAgreesWithJudge: the exported table (Expected, Contradicts) is
// the one Judge eliminates by — for every policy, column and outcome — and
// Contacts sorts the connections of every simulated history into the
// columns and attempts of the verdict's Seen and Attempts.
func TestTableAgreesWithJudge(t *testing.T) {
	cols := TableColumns(false, false)
	if len(cols) != int(numColumns)+1 || cols[numColumns].Key != ColumnPolicyFetch {
		t.Fatalf("%d columns, want %d", len(cols), numColumns)
	}
	for _, p := range Candidates {
		fetchRule := contradiction(p, [numColumns]observed{}, true) != ""
		if got := Expected(p, ColumnPolicyFetch).Contradicts(true, false); got != fetchRule {
			t.Errorf("%s fetched: Contradicts %v, Judge's rule %v", p, got, fetchRule)
		}
		for i, c := range cols[:numColumns] {
			for _, o := range [][2]bool{{true, false}, {false, true}, {true, true}} {
				var seen [numColumns]observed
				if o[0] {
					seen[i].delivered = []int64{1}
				}
				if o[1] {
					seen[i].refused = []int64{2}
				}
				want := rowContradiction(matrix[p], seen) != ""
				if got := Expected(p, c.Key).Contradicts(o[0], o[1]); got != want {
					t.Errorf("%s at %s delivered=%v refused=%v: Contradicts %v, Judge's rule %v", p, c.Key, o[0], o[1], got, want)
				}
			}
		}
		if Expected(p, ColumnIPv6Host) != ExpectAny {
			t.Errorf("%s: the IPv6-only host tells a policy", p)
		}
		if Expected(p, ColumnBrokenHost) == "" {
			t.Errorf("%s: no expectation at the broken host", p)
		}
	}
	if Expected(PolicyUnknown, ColumnPersona3) != "" || Expected(PolicyDANE, "9") != "" {
		t.Error("an expectation outside the table")
	}
	for _, s := range []sim{
		{policy: PolicyDANE, toA: true, toB: true, client: "192.0.2.1", dkim: true},
		{policy: PolicyMay, toA: true, toB: true, client: "192.0.2.1", resolver: nonValidating},
		{variant: "fallback", policy: PolicyMay, toA: true, toB: true, client: "192.0.2.1", perHost: true},
		{policy: PolicyVerify, noSNI: true, toA: true, client: "192.0.2.1"},
	} {
		v := judge(s, true)
		conns, _ := s.history()
		var broken = 0
		var addrs []netip.Addr
		if s.resolver != noBrokenHost {
			addrs = append(addrs, brokenAddr)
		}
		seen := map[string]string{}
		maxAttempt := 0
		for _, c := range Contacts(conns, addrs, nil) {
			switch c.Column {
			case "":
				continue
			case ColumnBrokenHost:
				broken++
				continue
			}
			name := columnNames[indexOfKey(c.Column)]
			if c.Delivered && !containsRune(seen[name], 'D') {
				seen[name] = "D" + seen[name]
			}
			if !c.Delivered && !containsRune(seen[name], 'R') {
				seen[name] += "R"
			}
			maxAttempt = max(maxAttempt, c.Attempt)
		}
		if len(seen) != len(v.Seen) {
			t.Errorf("%+v: Contacts columns %v, verdict %v", s, seen, v.Seen)
		}
		for k, want := range v.Seen {
			if seen[k] != want {
				t.Errorf("%+v: %s: Contacts %q, verdict %q", s, k, seen[k], want)
			}
		}
		if maxAttempt != v.Attempts {
			t.Errorf("%+v: Contacts' last attempt %d, verdict %d attempts", s, maxAttempt, v.Attempts)
		}
		if (s.resolver == nonValidating) != (broken > 0) {
			t.Errorf("%+v: %d connections at the broken host", s, broken)
		}
	}
}

func indexOfKey(k string) int {
	for i, c := range columnKeys {
		if c == k {
			return i
		}
	}
	return -1
}

func containsRune(s string, r rune) bool {
	for _, c := range s {
		if c == r {
			return true
		}
	}
	return false
}
