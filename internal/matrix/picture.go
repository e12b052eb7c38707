package matrix

import (
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// Input is what the picture is made of: the verdict and the observations
// it was judged from.
type Input struct {
	Verdict     verdict.Verdict
	Connections []store.SMTPConnection
	// BrokenHostAddrs are the broken-DNSSEC host's addresses
	// (verdict.Observations.BrokenHostAddrs): its column is drawn when
	// there are some.
	BrokenHostAddrs []netip.Addr
	// IPv6HostAddrs are the IPv6-only host's addresses
	// (verdict.Observations.IPv6HostAddrs): its column when there are some.
	IPv6HostAddrs []netip.Addr
	// PolicyFetched: a fetch of zone A's MTA-STS policy counts for the
	// test (verdict.Observations.PolicyFetches).
	PolicyFetched bool
	// DowngradeWindow is timing.downgrade_window, from the test's first
	// connection (the report's phase uses the same rule).
	DowngradeWindow time.Duration
}

// MaxRows is how many policy rows the matrix shows: the verdict's and the
// nearest others.
const MaxRows = 4

// Picture is the model both drawings and the text are made from.
type Picture struct {
	Columns []verdict.Column
	// Observed is what the sender did, per column (same order).
	Observed []Cell
	Rows     []Row
	// Marks are the timeline's connections, oldest first.
	Marks []Mark
	// Start is the first connection's start, Window the downgrade window
	// after it, End the latest start or end seen (never before
	// Start+Window while the window is shown).
	Start, End time.Time
	Window     time.Duration
	Policy     verdict.Policy // the verdict's
}

// Outcome is what a sender did in one column.
type Outcome string

// Outcomes.
const (
	OutcomeNone      Outcome = ""          // never contacted
	OutcomeDelivered Outcome = "delivered" // reached MAIL FROM
	OutcomeRefused   Outcome = "refused"   // connected and gave up
	OutcomeBoth      Outcome = "both"      // delivered in one connection, refused in another
	OutcomeContacted Outcome = "contacted" // the broken or the IPv6-only host (answered 421), or the policy fetched
)

// Cell is the observation in one column.
type Cell struct {
	Outcome  Outcome
	Attempts []int // the delivery attempts seen there, ascending, unique
}

// Row is one policy's expectations beside the observations.
type Row struct {
	Policy verdict.Policy
	Kind   RowKind
	Expect []verdict.Expectation
	// Contradicted marks the columns where what was seen contradicts
	// Expect (verdict.Expectation.Contradicts); Misfits counts them.
	Contradicted []bool
	Misfits      int
}

// RowKind says why a row is shown.
type RowKind int

// Row kinds.
const (
	RowVerdict   RowKind = iota // the verdict's own policy
	RowCandidate                // still a candidate of the verdict
	RowAbsent                   // fits the connections, but the complete verdict is another policy: set apart by what did not happen (no policy fetch, no delivery to B)
	RowOther                    // eliminated, among the nearest
)

// Mark is one connection on the timeline.
type Mark struct {
	ID      int64
	Column  string // verdict column key; "" when it says nothing
	Outcome Outcome
	Attempt int
	At      time.Time
	Ended   time.Time
}

// Build makes the picture of a test.
func Build(in Input) Picture {
	contacts := verdict.Contacts(in.Connections, in.BrokenHostAddrs, in.IPv6HostAddrs)
	p := Picture{Columns: verdict.TableColumns(len(in.BrokenHostAddrs) > 0, len(in.IPv6HostAddrs) > 0), Policy: in.Verdict.Policy, Window: in.DowngradeWindow}
	index := map[string]int{}
	for i, c := range p.Columns {
		index[c.Key] = i
	}
	p.Observed = make([]Cell, len(p.Columns))
	delivered := make([]bool, len(p.Columns))
	refused := make([]bool, len(p.Columns))
	for _, c := range contacts {
		m := Mark{ID: c.ID, Column: c.Column, Attempt: c.Attempt, At: c.Started, Ended: c.Ended}
		if i, ok := index[c.Column]; ok {
			switch {
			case c.Column == verdict.ColumnBrokenHost, c.Column == verdict.ColumnIPv6Host:
				m.Outcome = OutcomeContacted
				refused[i] = true // any contact
			case c.Delivered:
				m.Outcome = OutcomeDelivered
				delivered[i] = true
			default:
				m.Outcome = OutcomeRefused
				refused[i] = true
			}
			if c.Attempt > 0 && !slices.Contains(p.Observed[i].Attempts, c.Attempt) {
				p.Observed[i].Attempts = append(p.Observed[i].Attempts, c.Attempt)
			}
		}
		p.Marks = append(p.Marks, m)
		if p.Start.IsZero() || c.Started.Before(p.Start) {
			p.Start = c.Started
		}
		for _, t := range []time.Time{c.Started, c.Ended} {
			if t.After(p.End) {
				p.End = t
			}
		}
	}
	if in.PolicyFetched {
		delivered[index[verdict.ColumnPolicyFetch]] = true
	}
	for i, c := range p.Columns {
		sort.Ints(p.Observed[i].Attempts)
		switch {
		case (c.Key == verdict.ColumnBrokenHost || c.Key == verdict.ColumnIPv6Host) && refused[i], c.Key == verdict.ColumnPolicyFetch && delivered[i]:
			p.Observed[i].Outcome = OutcomeContacted
		case delivered[i] && refused[i]:
			p.Observed[i].Outcome = OutcomeBoth
		case delivered[i]:
			p.Observed[i].Outcome = OutcomeDelivered
		case refused[i]:
			p.Observed[i].Outcome = OutcomeRefused
		}
	}
	if !p.Start.IsZero() && p.End.Before(p.Start.Add(p.Window)) {
		p.End = p.Start.Add(p.Window)
	}
	p.Rows = rows(in.Verdict, p.Columns, delivered, refused)
	return p
}

// rows picks the policy rows: the verdict's policy (when it is one of the
// table), the other candidates, then the eliminated policies with the
// fewest contradictions (table order among equals), MaxRows in all.
func rows(v verdict.Verdict, cols []verdict.Column, delivered, refused []bool) []Row {
	all := make([]Row, 0, len(verdict.Candidates))
	for _, pol := range verdict.Candidates {
		r := Row{Policy: pol, Kind: RowOther, Expect: make([]verdict.Expectation, len(cols)), Contradicted: make([]bool, len(cols))}
		switch {
		case pol == v.Policy:
			r.Kind = RowVerdict
		case slices.Contains(v.Candidates, pol) && v.Complete && v.Policy != verdict.PolicyUnknown:
			r.Kind = RowAbsent
		case slices.Contains(v.Candidates, pol):
			r.Kind = RowCandidate
		}
		for i, c := range cols {
			r.Expect[i] = verdict.Expected(pol, c.Key)
			if r.Expect[i].Contradicts(delivered[i], refused[i]) {
				r.Contradicted[i] = true
				r.Misfits++
			}
		}
		all = append(all, r)
	}
	sort.SliceStable(all, func(i, j int) bool {
		if all[i].Kind != all[j].Kind {
			return all[i].Kind < all[j].Kind
		}
		return all[i].Misfits < all[j].Misfits
	})
	return all[:min(MaxRows, len(all))]
}
