package spf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// Limits of RFC 7208 §4.6.4.
const (
	// MaxLookups is the limit on DNS-querying terms (include, a, mx, ptr,
	// exists, redirect) in one evaluation, nested records included.
	MaxLookups = 10
	// MaxVoidLookups is the limit on look-ups that find nothing (NXDOMAIN
	// or an empty answer).
	MaxVoidLookups = 2
	// MaxMXNames is the separate limit of §4.6.4 on the MX host names one
	// mx term (and one ptr term) may resolve. Lookup does not resolve MX
	// records and so never checks it.
	MaxMXNames = 10
)

// Errors of Lookup, besides those of Parse and Select.
var (
	// ErrTooManyLookups: the record tree has more than MaxLookups
	// DNS-querying terms (§4.6.4: permerror).
	ErrTooManyLookups = errors.New("spf: too many DNS-querying terms")
	// ErrTooManyVoidLookups: more than MaxVoidLookups include/redirect
	// targets do not exist or have no TXT records (§4.6.4: permerror).
	ErrTooManyVoidLookups = errors.New("spf: too many void DNS lookups")
	// ErrLoop: an include or redirect leads back to a record already on
	// the path (an evaluator would only stop at the lookup limit).
	ErrLoop = errors.New("spf: include/redirect loop")
	// ErrDNS: a TXT lookup failed other than by NXDOMAIN (§4.4:
	// temperror). The lookup function's error is wrapped too.
	ErrDNS = errors.New("spf: DNS lookup failed")
	// ErrBound: Options.MaxDepth or Options.MaxRecords stopped the walk;
	// Result.Lookups is then a lower bound.
	ErrBound = errors.New("spf: walk stopped at a bound")
	// ErrInvalidDomain: a domain to query is not a valid DNS name (empty
	// label, label over 63 or name over 253 octets, non-ASCII).
	ErrInvalidDomain = errors.New("spf: invalid domain name")
)

// Options bound and tune Lookup. The zero value is usable.
type Options struct {
	// NotFound tells whether an error of lookupTXT means NXDOMAIN (a void
	// lookup, §4.6.4). Nil recognises *net.DNSError with IsNotFound; pass
	// e.g. func(err error) bool { return errors.Is(err, resolver.ErrNXDomain) }.
	NotFound func(error) bool
	// MaxDepth bounds the nesting of include/redirect; 0 means 20.
	MaxDepth int
	// MaxRecords bounds how many include/redirect targets are followed
	// in all (repeats included, though each name is queried only once);
	// 0 means 40. Both bounds are only reached by trees far over
	// MaxLookups, as every followed target costs a lookup.
	MaxRecords int
}

// Result is what Lookup found.
type Result struct {
	Domain string  // the domain queried, lower case, no trailing dot
	Text   string  // the selected TXT record as published
	Record *Record // nil when the domain has no usable SPF record
	// Lookups counts the DNS-querying terms (§4.6.4) an evaluation that
	// matches nothing would reach, nested records included: every
	// include, a, mx, ptr, exists and followed redirect once each.
	// Terms after "all" are not counted, as no evaluation reaches them
	// (§5.1), nor is redirect in a record with "all".
	Lookups int
	// VoidLookups counts include/redirect targets that are NXDOMAIN or
	// have no TXT records. Void answers of a, mx, ptr and exists can't be
	// seen, as Lookup does not resolve them.
	VoidLookups int
	// Queries is the number of TXT lookups made (each name once).
	Queries int
	// Errors lists every problem, limit errors first; each wraps one of
	// the sentinels (ErrTooManyLookups, ErrTooManyVoidLookups, ErrLoop,
	// ErrDNS, ErrBound, ErrSyntax, ErrNoRecord, ErrMultipleRecords,
	// ErrInvalidDomain, ErrNotSPF).
	Errors []error
	// Unexpanded lists the include/redirect terms not followed because
	// their domain-spec has macros (§7) that need a sender to expand;
	// they are counted in Lookups but their own terms are not.
	Unexpanded []string
	// Notes are remarks that are not errors (ptr use, ignored terms).
	Notes []string
	// Truncated: a bound or the context stopped the walk early.
	Truncated bool
}

// Lookup fetches the SPF record of domain with lookupTXT (one element per
// TXT RR, strings joined, RFC 7208 §3.3) and walks its include and
// redirect targets to count DNS-querying terms and void lookups against
// the limits of §4.6.4. It detects include/redirect loops and bounds
// depth and records (Options).
//
// It never resolves a, mx, ptr or exists: each counts as one lookup, and
// the limit of MaxMXNames address look-ups per mx term is not checked.
// Targets with macros are counted but not followed (Result.Unexpanded).
//
// The error is nil when nothing is wrong. A domain without a record gives
// ErrNoRecord (also for NXDOMAIN), a failing lookup ErrDNS, more than one
// record ErrMultipleRecords, a bad record ErrSyntax; those return a
// Result with a nil Record. Otherwise the Result is complete and the
// error joins Result.Errors (errors.Is finds each sentinel).
func Lookup(ctx context.Context, lookupTXT func(ctx context.Context, name string) ([]string, error), domain string, opts Options) (*Result, error) {
	if opts.NotFound == nil {
		opts.NotFound = func(err error) bool {
			var de *net.DNSError
			return errors.As(err, &de) && de.IsNotFound
		}
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = 20
	}
	if opts.MaxRecords <= 0 {
		opts.MaxRecords = 40
	}
	name, err := normalizeDomain(domain)
	res := &Result{Domain: name}
	if err != nil {
		return res, err
	}
	w := &walker{ctx: ctx, lookupTXT: lookupTXT, opts: opts, res: res, cache: map[string]fetched{}}
	txts, err := w.fetch(name)
	if err != nil {
		if opts.NotFound(err) {
			return res, fmt.Errorf("%w: %s does not exist", ErrNoRecord, name)
		}
		return res, fmt.Errorf("%w: TXT %s: %w", ErrDNS, name, err)
	}
	text, err := selectText(txts)
	if err != nil {
		return res, err
	}
	rec, err := Parse(text)
	if err != nil {
		return res, err
	}
	res.Text, res.Record = text, rec
	if len(text) > 450 {
		// RFC 7208 §3.4: records over 450 octets may not fit a UDP answer.
		res.Notes = append(res.Notes, fmt.Sprintf("record is %d octets; RFC 7208 §3.4 advises at most 450", len(text)))
	}
	w.walk(name, rec, []string{name})

	var limits []error
	if res.Lookups > MaxLookups {
		limits = append(limits, fmt.Errorf("%w: %d, limit %d (RFC 7208 §4.6.4: permerror)", ErrTooManyLookups, res.Lookups, MaxLookups))
	}
	if res.VoidLookups > MaxVoidLookups {
		limits = append(limits, fmt.Errorf("%w: %d, limit %d (RFC 7208 §4.6.4: permerror)", ErrTooManyVoidLookups, res.VoidLookups, MaxVoidLookups))
	}
	res.Errors = append(limits, res.Errors...)
	return res, errors.Join(res.Errors...)
}

type fetched struct {
	txts []string
	err  error
}

type walker struct {
	ctx       context.Context
	lookupTXT func(context.Context, string) ([]string, error)
	opts      Options
	res       *Result
	cache     map[string]fetched
	followed  int
	noted     map[string]bool
}

// fetch looks name up once per walk.
func (w *walker) fetch(name string) ([]string, error) {
	if f, ok := w.cache[name]; ok {
		return f.txts, f.err
	}
	var f fetched
	if f.err = w.ctx.Err(); f.err == nil {
		w.res.Queries++
		f.txts, f.err = w.lookupTXT(w.ctx, name)
	}
	w.cache[name] = f
	return f.txts, f.err
}

func (w *walker) note(s string) {
	if w.noted == nil {
		w.noted = map[string]bool{}
	}
	if !w.noted[s] {
		w.noted[s] = true
		w.res.Notes = append(w.res.Notes, s)
	}
}

// walk counts the terms of rec, the record of domain, in evaluation order
// and follows include and redirect targets. path holds the domains from
// the top record to domain.
func (w *walker) walk(domain string, rec *Record, path []string) {
	for i, m := range rec.Mechanisms {
		if m.Kind == All {
			if i < len(rec.Mechanisms)-1 {
				w.note(fmt.Sprintf("%s: terms after %q are never evaluated (RFC 7208 §5.1)", domain, m.String()))
			}
			if rec.Redirect != "" {
				w.note(fmt.Sprintf("%s: redirect=%s is ignored because of %q (RFC 7208 §5.1)", domain, rec.Redirect, m.String()))
			}
			return
		}
		if !m.Kind.QueriesDNS() {
			continue
		}
		w.res.Lookups++
		switch m.Kind {
		case PTR:
			w.note(fmt.Sprintf("%s: ptr should not be used (RFC 7208 §5.5)", domain))
		case Include:
			w.follow(domain, m.String(), m.Domain, path)
		}
	}
	if rec.Redirect != "" {
		w.res.Lookups++
		w.follow(domain, "redirect="+rec.Redirect, rec.Redirect, path)
	}
}

// follow fetches, parses and walks the record at target, named by term
// in the record of from.
func (w *walker) follow(from, term, target string, path []string) {
	fail := func(err error) { w.res.Errors = append(w.res.Errors, err) }
	where := fmt.Sprintf("%q in %s", term, from)
	if strings.Contains(target, "%") {
		w.res.Unexpanded = append(w.res.Unexpanded, fmt.Sprintf("%s (macros need a sender; counted, not followed)", where))
		return
	}
	name, err := normalizeDomain(target)
	if err != nil {
		fail(fmt.Errorf("%s: %w", where, err))
		return
	}
	for _, p := range path {
		if p == name {
			fail(fmt.Errorf("%w: %s leads back to %s (path %s)", ErrLoop, where, name, strings.Join(path, " → ")))
			return
		}
	}
	if len(path) > w.opts.MaxDepth {
		w.res.Truncated = true
		fail(fmt.Errorf("%w: %s not followed, nesting deeper than %d", ErrBound, where, w.opts.MaxDepth))
		return
	}
	if w.followed >= w.opts.MaxRecords {
		w.res.Truncated = true
		fail(fmt.Errorf("%w: %s not followed, more than %d include/redirect targets", ErrBound, where, w.opts.MaxRecords))
		return
	}
	w.followed++
	txts, err := w.fetch(name)
	switch {
	case err != nil && w.opts.NotFound(err):
		// §4.6.4 void lookup; §5.2 and §6.1: a target without a record
		// is a permerror for include and redirect alike.
		w.res.VoidLookups++
		fail(fmt.Errorf("%w at %s (%s): the name does not exist", ErrNoRecord, name, where))
		return
	case err != nil:
		if w.ctx.Err() != nil {
			w.res.Truncated = true
		}
		fail(fmt.Errorf("%w: TXT %s (%s): %w", ErrDNS, name, where, err))
		return
	case len(txts) == 0:
		w.res.VoidLookups++
		fail(fmt.Errorf("%w at %s (%s): no TXT records", ErrNoRecord, name, where))
		return
	}
	text, err := selectText(txts)
	if err != nil {
		fail(fmt.Errorf("%w at %s (%s)", err, name, where))
		return
	}
	rec, err := Parse(text)
	if err != nil {
		fail(fmt.Errorf("%w (record of %s, %s)", err, name, where))
		return
	}
	w.walk(name, rec, append(path[:len(path):len(path)], name))
}

// normalizeDomain lower-cases a domain, drops one trailing dot and checks
// it is a DNS name: ASCII, labels of 1–63 octets, at most 253 octets.
func normalizeDomain(d string) (string, error) {
	s := dnsname.Canonical(d)
	if s == "" || len(s) > 253 {
		return s, fmt.Errorf("%w: %q", ErrInvalidDomain, untrusted.Truncate(d, 80))
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return s, fmt.Errorf("%w: %q", ErrInvalidDomain, untrusted.Truncate(d, 80))
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return s, fmt.Errorf("%w: %q (give IDNs as A-labels)", ErrInvalidDomain, untrusted.Truncate(d, 80))
		}
	}
	return s, nil
}
