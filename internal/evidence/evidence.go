// Package evidence gathers a test's observations for the verdict: the one
// place that decides which stored rows are evidence about a test, with one
// set of windows and limits, so that the 451/250 answer in flight
// (internal/smtpd), the final verdict (internal/finalise), the live report
// (internal/reportsource: web, API, CLI), `mailsec verdict` and the demo
// all see the same evidence.
//
// A test's evidence is
//   - its SMTP connections, those tied to it by client address included
//     (Tie) and those from the sending server the user named when
//     creating the test (TieSendingServer, applied by Gather itself); the
//     rules are documented in docs/smtp.md, "Tying connections to a test";
//   - the fetches of zone A's MTA-STS policy (status 200) from the client
//     prefixes of those connections (an MTA-STS resolver fetches from the
//     MTA or a neighbour), from FetchWindow before the test was created
//     until now;
//   - for a test that holds a test slot (docs/dns.md "Test slots"): the
//     fetches of the slot's own policy (SNI mta-sts.s001.A) from any
//     address, and the DNS queries for the slot's names (DNSLookups) from
//     the test's creation until it became final — the slot is its alone
//     then, so every look-up of those names is its sender's;
//   - whether the sender had a mail for the B address (store.Test.AddressedB);
//   - the TLS-RPT reports tied to the test when they arrived (TieTLSRPT,
//     the rule of docs/tlsrpt.md), with their policies for its domains
//     (TLSRPTReports).
package evidence

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/clientnet"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/testslot"
	"github.com/mailsec/mailsec/internal/verdict"
)

// Defaults of the Rules.
const (
	// DefaultFetchWindow is how long before a test a policy fetch still
	// counts: an MTA-STS sender may apply a cached policy for its max_age
	// without fetching it again (RFC 8461 §5); a week is the usual
	// max_age (zone A's own, zones.mta_sts_max_age, by default).
	DefaultFetchWindow = 7 * 24 * time.Hour
	// DefaultFetchLimit bounds the policy fetches read per test. The
	// verdict only needs to know whether there is one; the newest are read.
	DefaultFetchLimit = 1000
	// DefaultTestExpiry is timing.test_expiry.
	DefaultTestExpiry = 48 * time.Hour
	// DefaultLookupLimit bounds the DNS look-ups read per test, the
	// oldest first: a sender's delivery attempts make a few dozen (the
	// query log folds identical queries within its flush window).
	DefaultLookupLimit = 1000
)

// fetchSlack is how far past now a policy fetch is still read: the policy
// host records a fetch with its own reading of the clock, which may come a
// little after the caller's now.
const fetchSlack = time.Second

// Rules are the windows and limits of the evidence. Zero fields take the
// defaults above; the service builds them from its configuration once
// (service.EvidenceRules) and gives the same to every part.
type Rules struct {
	// FetchWindow: policy fetches from this long before the test's
	// creation on count.
	FetchWindow time.Duration
	// FetchLimit: at most this many policy fetches, the newest.
	FetchLimit int
	// PrefixV4 and PrefixV6 make a connection's client address into the
	// network a policy fetch may come from (smtp.client_prefix_v4/v6).
	PrefixV4, PrefixV6 int
	// Quiet is timing.ack_after: the verdict takes what has not happened
	// for this long as not going to happen (verdict.Observations.Quiet).
	Quiet time.Duration
	// TestExpiry is timing.test_expiry: connections at most this old are
	// tied to a test (Tie).
	TestExpiry time.Duration
	// Slots are the test slots (zones.slots): the names whose look-ups
	// and policy fetches belong to the test holding the slot.
	Slots testslot.Pool
	// LookupLimit: at most this many DNS look-ups per test, the oldest.
	LookupLimit int
	// BrokenHosts are the labels of zone A's broken MX hosts (in every
	// slot's MX set, docs/dns.md "Broken host"), BrokenAddrs their
	// addresses: a look-up of one of the slot's broken hosts is the test's,
	// and a connection to one of those addresses the DNSSEC fact's
	// evidence (verdict.Observations.BrokenHostAddrs).
	BrokenHosts []string
	BrokenAddrs []netip.Addr
	// IPv6Host is the address of zone A's IPv6-only MX host
	// (zones.host_addresses.mx-v6, docs/dns.md "IPv6-only host"); slot
	// n's is testslot.HostAddr(IPv6Host, n). Invalid: not deployed. The
	// connections to a slot's address while the test holds the slot are
	// the test's (they name no recipient, and come from the sender's IPv6
	// address, which none of its other connections may share), and so are
	// the look-ups of the slot's IPv6-only host.
	IPv6Host netip.Addr
}

// WithDefaults returns r with the defaults in its zero fields.
func (r Rules) WithDefaults() Rules {
	if r.FetchWindow <= 0 {
		r.FetchWindow = DefaultFetchWindow
	}
	if r.FetchLimit <= 0 {
		r.FetchLimit = DefaultFetchLimit
	}
	if r.PrefixV4 <= 0 {
		r.PrefixV4 = clientnet.DefaultBitsV4
	}
	if r.PrefixV6 <= 0 {
		r.PrefixV6 = clientnet.DefaultBitsV6
	}
	if r.TestExpiry <= 0 {
		r.TestExpiry = DefaultTestExpiry
	}
	if r.LookupLimit <= 0 {
		r.LookupLimit = DefaultLookupLimit
	}
	return r
}

// Gatherer reads a test's evidence from the store under its Rules.
type Gatherer struct {
	Store *store.Store
	Rules Rules
}

// Option adds what a caller knows beyond the store to Gather.
type Option func(*options)

type options struct {
	inFlight   *store.SMTPConnection
	senderDone bool
	sentToB    bool
}

// InFlight gives the current state of a connection still in progress (the
// mail being acknowledged): it replaces the connection's stored row, or is
// added if it has none yet, and its client prefix counts for the policy
// fetches.
func InFlight(c store.SMTPConnection) Option {
	return func(o *options) { o.inFlight = &c }
}

// SenderDone tells that the sender is known to have finished (its queue is
// empty: the demo's reference senders, `mailsec verdict -done`).
func SenderDone() Option {
	return func(o *options) { o.senderDone = true }
}

// SentToB tells that the sender is known to have had a mail for the B
// address, besides what the store knows (store.Test.AddressedB).
func SentToB() Option {
	return func(o *options) { o.sentToB = true }
}

// Gather returns the observations of test t at now.
func (g Gatherer) Gather(ctx context.Context, t store.Test, now time.Time, opts ...Option) (verdict.Observations, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	r := g.Rules.WithDefaults()
	if _, err := g.TieSendingServer(ctx, t, now); err != nil {
		return verdict.Observations{}, err
	}
	if _, err := g.TieIPv6Host(ctx, t, now); err != nil {
		return verdict.Observations{}, err
	}
	conns, err := g.Store.Connections(ctx, store.ConnectionFilter{TestID: t.ID})
	if err != nil {
		return verdict.Observations{}, fmt.Errorf("evidence: connections of %s: %w", t.ID, err)
	}
	if c := o.inFlight; c != nil {
		i := slices.IndexFunc(conns, func(s store.SMTPConnection) bool { return c.ID != 0 && s.ID == c.ID })
		if i >= 0 {
			conns[i] = *c
		} else {
			conns = append(conns, *c)
		}
	}
	ff := store.PolicyFetchFilter{
		Clients: ClientPrefixes(conns, r.PrefixV4, r.PrefixV6),
		Status:  200, // a policy was served (RFC 8461 §3.3); a 404 is no policy
		Since:   t.Created.Add(-r.FetchWindow),
		Until:   evidenceUntil(t, now),
		Limit:   r.FetchLimit,
	}
	if g.slotHeld(t) {
		// The slot's own policy host: its fetches are the test's from
		// any address (an MTA-STS resolver in another network).
		// From its creation: before, the slot was another test's.
		ff.SNI, ff.SNISince = r.Slots.PolicyHost(t.Slot), t.Created
	}
	fetches, err := g.Store.PolicyFetchesFrom(ctx, ff)
	if err != nil {
		return verdict.Observations{}, fmt.Errorf("evidence: policy fetches of %s: %w", t.ID, err)
	}
	lookups, err := g.DNSLookups(ctx, t, now)
	if err != nil {
		return verdict.Observations{}, err
	}
	var bTLSA, broken, v6Names []string
	if g.slotHeld(t) {
		for _, h := range persona.MXHosts(persona.ZoneB) {
			bTLSA = append(bTLSA, r.Slots.TLSANames(h.Host, t.Slot, persona.ZoneB)...)
		}
		broken = g.brokenNames(t.Slot)
		v6Names = g.ipv6HostNames(t.Slot)
	}
	var v6Addrs []netip.Addr
	if r.IPv6Host.IsValid() {
		v6Addrs = r.Slots.HostAddrs(r.IPv6Host)
	}
	reports, err := g.TLSRPTReports(ctx, t)
	if err != nil {
		return verdict.Observations{}, err
	}
	return verdict.Observations{
		Connections:     conns,
		PolicyFetches:   fetches,
		DNSLookups:      lookups,
		BTLSANames:      bTLSA,
		BrokenHostNames: broken,
		BrokenHostAddrs: slices.Clone(r.BrokenAddrs),
		IPv6HostAddrs:   v6Addrs,
		IPv6HostNames:   v6Names,
		Now:             now,
		Quiet:           r.Quiet,
		SenderDone:      o.senderDone,
		SentToB:         o.sentToB || !t.AddressedB.IsZero(),
		TLSRPT:          reports,
	}, nil
}

// slotHeld tells whether t holds a slot of the pool.
func (g Gatherer) slotHeld(t store.Test) bool {
	return t.Slot > 0 && t.Slot <= g.Rules.Slots.Count
}

// DNSLookups returns the DNS queries for the names of t's test slot
// (testslot.Pool.Names), oldest first, at most LookupLimit: from the
// test's creation (when it took the slot) until now or, once the test is
// final, until then (the slot rests, then belongs to another test). Nil
// for a test without a slot: the shared names' look-ups are every test's.
func (g Gatherer) DNSLookups(ctx context.Context, t store.Test, now time.Time) ([]store.DNSQuery, error) {
	if !g.slotHeld(t) {
		return nil, nil
	}
	r := g.Rules.WithDefaults()
	names := slices.Concat(r.Slots.Names(t.Slot), g.brokenNames(t.Slot), g.ipv6HostNames(t.Slot))
	qs, err := g.Store.DNSQueries(ctx, store.DNSQueryFilter{Names: names, Since: t.Created, Until: evidenceUntil(t, now), Limit: r.LookupLimit})
	if err != nil {
		return nil, fmt.Errorf("evidence: DNS look-ups of %s: %w", t.ID, err)
	}
	return qs, nil
}

// brokenNames are the names of the broken MX hosts in slot n, fully
// qualified and lower-case as the query log stores them.
func (g Gatherer) brokenNames(n int) []string {
	var out []string
	for _, b := range g.Rules.BrokenHosts {
		out = append(out, g.Rules.Slots.Host(strings.ToLower(b), n, persona.ZoneA)+".")
	}
	return out
}

// ipv6HostNames is the IPv6-only host's name in slot n, fully qualified
// and lower-case as the query log stores it; none when it is not deployed.
func (g Gatherer) ipv6HostNames(n int) []string {
	if !g.Rules.IPv6Host.IsValid() {
		return nil
	}
	return []string{g.Rules.Slots.Host(testslot.IPv6HostLabel, n, persona.ZoneA) + "."}
}

// TieIPv6Host ties to test t the connections to the IPv6-only host's
// address of t's slot while t holds it (from its creation until it is
// final, as for the slot's look-ups) that no test claimed, and returns
// how many. The address names the slot and so the test; the connection
// names no recipient, and comes from the sender's IPv6 address, which
// none of its other connections need share. Gather applies it before it
// reads the connections, like TieSendingServer. A test without a slot
// gets none: the shared host's connections could be any test's.
func (g Gatherer) TieIPv6Host(ctx context.Context, t store.Test, now time.Time) (int64, error) {
	if !g.Rules.IPv6Host.IsValid() || !g.slotHeld(t) || t.State == store.TestFinal {
		return 0, nil
	}
	addr, ok := testslot.HostAddr(g.Rules.IPv6Host, t.Slot)
	if !ok {
		return 0, nil
	}
	n, err := g.Store.TieSlotAddress(ctx, t.ID, addr, t.Created, evidenceUntil(t, now))
	if err != nil {
		return 0, fmt.Errorf("evidence: %w", err)
	}
	return n, nil
}

// evidenceUntil is the end of the time in which policy fetches and DNS
// look-ups are t's evidence: now (and a little, the recorders' clocks),
// or when t became final (its slot then rests and goes to another test).
func evidenceUntil(t store.Test, now time.Time) time.Time {
	until := now.Add(fetchSlack)
	if t.State == store.TestFinal && t.Updated.Before(until) {
		until = t.Updated.Add(time.Nanosecond)
	}
	return until
}

// Judge gathers t's observations and judges them: the live verdict.
func (g Gatherer) Judge(ctx context.Context, t store.Test, now time.Time, opts ...Option) (verdict.Verdict, verdict.Observations, error) {
	obs, err := g.Gather(ctx, t, now, opts...)
	if err != nil {
		return verdict.Verdict{}, obs, err
	}
	return verdict.Judge(obs), obs, nil
}

// ClientPrefixes returns the distinct networks of the connections' client
// addresses: bitsV4 or bitsV6 long, IPv4-mapped addresses as IPv4.
func ClientPrefixes(conns []store.SMTPConnection, bitsV4, bitsV6 int) []netip.Prefix {
	var out []netip.Prefix
	for _, c := range conns {
		if p, ok := clientnet.Prefix(c.Client.Addr(), bitsV4, bitsV6); ok && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Clients returns the distinct client addresses of the connections,
// unmapped, but for those of connections tied by their slot address (to
// the IPv6-only host): that client address may be shared by the senders
// of other tests (a host's one IPv6 address), and its other connections
// there are the other slots' (finalise ties by client).
func Clients(conns []store.SMTPConnection) []netip.Addr {
	var out []netip.Addr
	for _, c := range conns {
		if c.TiedBy == store.TiedBySlotAddress {
			continue
		}
		if a := c.Client.Addr().Unmap(); a.IsValid() && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// TieSendingServer ties to test t the connections from its sending server
// (store.Test.SendingAddrs, named by the user at creation) that no test
// claimed, and returns how many. The rule (docs/smtp.md, "Tying
// connections to a test"): connections from one of the test's sending
// addresses that have ended and started in the test's window — not before
// its creation, at most TestExpiry before now, and not once it is final —
// unless another test that was open when the connection started names the
// same address (the connection could be either's: it stays untied, and
// SharedSendingAddrs tells the report). Gather applies it before it reads
// the connections, so every reader of the evidence (the 451/250 in
// flight, the finaliser before it freezes, the live page, `mailsec
// verdict`) sees the same ties; rows once tied keep their test.
func (g Gatherer) TieSendingServer(ctx context.Context, t store.Test, now time.Time) (int64, error) {
	if len(t.SendingAddrs) == 0 || t.State == store.TestFinal {
		return 0, nil
	}
	r := g.Rules.WithDefaults()
	since := now.Add(-r.TestExpiry)
	if t.Created.After(since) {
		since = t.Created
	}
	n, err := g.Store.TieSendingServer(ctx, t.ID, since, now.Add(time.Nanosecond))
	if err != nil {
		return 0, fmt.Errorf("evidence: %w", err)
	}
	return n, nil
}

// SharedSendingAddrs returns the sending addresses of the unfinished test
// t that another unfinished test names too: connections from them that no
// test mail's RCPT TO claims are tied to neither (TieSendingServer).
func (g Gatherer) SharedSendingAddrs(ctx context.Context, t store.Test) ([]netip.Addr, error) {
	if len(t.SendingAddrs) == 0 || t.State == store.TestFinal {
		return nil, nil
	}
	addrs, err := g.Store.SharedSendingAddrs(ctx, t.ID)
	if err != nil {
		return nil, fmt.Errorf("evidence: %w", err)
	}
	return addrs, nil
}

// Tie ties to test t the connections of client that no test claimed (they
// ended before RCPT TO named one: a refused certificate), and returns how
// many. The rule (docs/smtp.md, "Tying connections to a test"): connections
// of the same client address that started at most TestExpiry before now
// and, for a token test, not before the test was created (a fixed-address
// test is created by its first mail, so the attempts before it count).
// Rows already tied keep their test. smtpd applies it at every accepted
// RCPT; the finaliser once more for every client of the test before the
// verdict is frozen; `mailsec verdict -tie-client` and the demo for a
// client they know.
func (g Gatherer) Tie(ctx context.Context, t store.Test, client netip.Addr, now time.Time) (int64, error) {
	r := g.Rules.WithDefaults()
	since := now.Add(-r.TestExpiry)
	if t.Kind == store.TestToken && t.Created.After(since) {
		since = t.Created
	}
	n, err := g.Store.TieConnections(ctx, t.ID, client.Unmap(), since, now.Add(time.Nanosecond))
	if err != nil {
		return 0, fmt.Errorf("evidence: %w", err)
	}
	return n, nil
}
