package verdict

import (
	"net/netip"
	"slices"
	"sort"
	"time"

	"github.com/mailsec/mailsec/internal/store"
)

// The policy table as data, for those that show it (internal/matrix draws
// it beside what the sender did). Judge reads the same table (matrix) and
// classifies connections the same way (classify, attemptIndex), so the
// picture cannot tell a different story from the verdict.

// Expectation is what a correct sender of a policy does in one column.
type Expectation string

// Expectations, one per cell of DESIGN.md §2's table.
const (
	ExpectDeliver Expectation = "deliver" // completes the mail transaction
	ExpectRefuse  Expectation = "refuse"  // connects, then refuses (no MAIL FROM)
	ExpectNever   Expectation = "never"   // never gets there
	ExpectNoMail  Expectation = "no-mail" // never delivers: refuses, or never gets there
	ExpectAny     Expectation = "any"     // either; the column does not tell
)

// Column keys: stable names of the table's columns. A new host (the
// IPv6-only host, say) is one more key here and one more cell per row.
const (
	ColumnPlainWindow = "1w"     // persona 1, STARTTLS withheld (downgrade window)
	ColumnPlainOffer  = "1o"     // persona 1 although STARTTLS was offered
	ColumnPersona2    = "2"      // persona 2 (TLS without SNI)
	ColumnPersona3    = "3"      // persona 3
	ColumnPersona4    = "4"      // persona 4
	ColumnPersona5    = "5"      // persona 5
	ColumnPersona6    = "6"      // persona 6
	ColumnB7Plain     = "7p"     // persona 7 (zone B) in plain text
	ColumnB7TLS       = "7t"     // persona 7 (zone B) over TLS
	ColumnBrokenHost  = "broken" // zone A's broken-DNSSEC MX host (docs/dns.md "Broken host")
	ColumnIPv6Host    = "v6"     // zone A's IPv6-only MX host (docs/smtp.md "IPv6-only host")
	// ColumnPolicyFetch is no host: a fetch of zone A's MTA-STS policy by
	// the sender, which leaves only the MTA-STS candidates (Judge).
	ColumnPolicyFetch = "sts"
)

// Column is one column of the table: a host, or persona 1 and 7 split by
// whether they were met in plain text.
type Column struct {
	Key     string `json:"key"`
	Persona int    `json:"persona"` // 1–7; 0 for a host that is no persona
	Name    string `json:"name"`    // as the verdict's reasons name it (English)
}

var columnKeys = [numColumns]string{ColumnPlainWindow, ColumnPlainOffer, ColumnPersona2, ColumnPersona3,
	ColumnPersona4, ColumnPersona5, ColumnPersona6, ColumnB7Plain, ColumnB7TLS}

var columnPersonas = [numColumns]int{1, 1, 2, 3, 4, 5, 6, 7, 7}

// TableColumns lists the table's columns in order: the personas, the
// broken host's when withBroken and the IPv6-only host's when withIPv6
// (each is in the MX set only when configured), and the MTA-STS policy
// fetch last.
func TableColumns(withBroken, withIPv6 bool) []Column {
	out := make([]Column, 0, numColumns+3)
	for col := range numColumns {
		out = append(out, Column{Key: columnKeys[col], Persona: columnPersonas[col], Name: columnNames[col]})
	}
	if withBroken {
		out = append(out, Column{Key: ColumnBrokenHost, Name: "broken-DNSSEC host"})
	}
	if withIPv6 {
		out = append(out, Column{Key: ColumnIPv6Host, Name: "IPv6-only host"})
	}
	return append(out, Column{Key: ColumnPolicyFetch, Name: "MTA-STS policy fetch"})
}

// Expected is what a correct sender of policy p does in the column key
// ("" for a policy or column not in the table). The broken host is not a
// column of Judge's elimination (its connections are answered 421 and
// say nothing of the TLS policy): a DANE sender never goes there, for its
// resolver validates (RFC 7672 §2.1; otherwise the verdict names
// BehaviourDANEWithoutDNSSEC), the others may.
func Expected(p Policy, key string) Expectation {
	row, ok := matrix[p]
	if !ok {
		return ""
	}
	if key == ColumnPolicyFetch {
		// A sender of the others never fetches (contradiction); an
		// MTA-STS sender may have the policy cached (RFC 8461 §5).
		if usesMTASTS(p) {
			return ExpectAny
		}
		return ExpectNever
	}
	if key == ColumnIPv6Host {
		// Whether a sender reaches it says whether it delivers over IPv6
		// (FactUsesIPv6), not which policy it has.
		return ExpectAny
	}
	if key == ColumnBrokenHost {
		if p == PolicyDANE || p == PolicyDANEOnly || p == PolicyDANEMTASTS {
			return ExpectNever
		}
		return ExpectAny
	}
	i := slices.Index(columnKeys[:], key)
	if i < 0 {
		return ""
	}
	return row[i]
}

// Contradicts tells whether what was seen in a column (delivered, refused:
// any connection at all for the broken host) is not what e allows: the
// rule Judge eliminates candidates by (rowContradiction).
func (e Expectation) Contradicts(delivered, refused bool) bool {
	switch e {
	case ExpectDeliver:
		return refused
	case ExpectRefuse:
		return delivered
	case ExpectNever:
		return delivered || refused
	case ExpectNoMail:
		return delivered
	}
	return false
}

// Contact is one connection as the table reads it.
type Contact struct {
	ID        int64     `json:"id"`
	Column    string    `json:"column"`    // a Column key; "" when it says nothing (cut before EHLO, still open)
	Delivered bool      `json:"delivered"` // reached MAIL FROM; false: refused (or, at the broken host, answered 421)
	Attempt   int       `json:"attempt"`   // the delivery attempt, from 1 (Verdict.Attempts counts them); 0 for none
	Started   time.Time `json:"started"`
	Ended     time.Time `json:"ended"` // zero while open
}

// Contacts classifies each connection as Judge does, oldest first: its
// column, delivered or refused, and its delivery attempt. Connections to
// the broken host (brokenAddrs) and to the IPv6-only host (ipv6Addrs) get
// that column and no attempt: answered 421, they take no part in the
// attempts.
func Contacts(conns []store.SMTPConnection, brokenAddrs, ipv6Addrs []netip.Addr) []Contact {
	conns = slices.Clone(conns)
	sort.SliceStable(conns, func(i, j int) bool { return conns[i].Started.Before(conns[j].Started) })
	rest, broken := splitLocal(conns, brokenAddrs)
	rest, v6 := splitLocal(rest, ipv6Addrs)
	attempt := attemptIndex(rest)
	out := make([]Contact, 0, len(conns))
	for i, c := range rest {
		ct := Contact{ID: c.ID, Started: c.Started, Ended: c.Ended}
		if col, delivered, ok := classify(c); ok {
			ct.Column, ct.Delivered, ct.Attempt = columnKeys[col], delivered, attempt[i]+1
		}
		out = append(out, ct)
	}
	for _, c := range broken {
		out = append(out, Contact{ID: c.ID, Column: ColumnBrokenHost, Started: c.Started, Ended: c.Ended})
	}
	for _, c := range v6 {
		out = append(out, Contact{ID: c.ID, Column: ColumnIPv6Host, Started: c.Started, Ended: c.Ended})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out
}
