package mtasts

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultCacheSize bounds a Cache made with size 0.
const DefaultCacheSize = 10000

// CacheEntry is a policy as a sender keeps it (RFC 8461 §5.1).
type CacheEntry struct {
	Domain  string // lower case, no trailing dot
	ID      string // id of the record the policy was fetched under
	Policy  Policy
	Fetched time.Time
	Expires time.Time // Fetched + max_age (§3.2)
}

// Valid tells whether the entry is still in force at now.
func (e CacheEntry) Valid(now time.Time) bool { return now.Before(e.Expires) }

// Cache holds fetched policies by domain until they expire. It is safe for
// concurrent use; the zero value is not usable, use NewCache.
type Cache struct {
	mu   sync.Mutex
	m    map[string]CacheEntry
	max  int
	now  func() time.Time
	runs map[string]*discovery // discoveries in flight, by domain
}

type discovery struct {
	done chan struct{}
	res  Discovery
}

// NewCache returns an empty cache of at most size entries (0 means
// DefaultCacheSize); now nil means time.Now.
func NewCache(size int, now func() time.Time) *Cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &Cache{m: map[string]CacheEntry{}, max: size, now: now, runs: map[string]*discovery{}}
}

// Get returns the unexpired entry of domain.
func (c *Cache) Get(domain string) (CacheEntry, bool) {
	d, err := normalDomain(domain)
	if err != nil {
		return CacheEntry{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[d]
	if !ok || !e.Valid(c.now()) {
		return CacheEntry{}, false
	}
	return e, true
}

// Put stores the policy fetched for domain under record id and returns the
// entry; it expires after the policy's max_age.
func (c *Cache) Put(domain, id string, p Policy) CacheEntry {
	d, err := normalDomain(domain)
	if err != nil {
		return CacheEntry{}
	}
	now := c.now()
	e := CacheEntry{Domain: d, ID: id, Policy: p, Fetched: now, Expires: now.Add(p.MaxAge)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[d]; !ok && len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[d] = e
	return e
}

// Delete forgets domain.
func (c *Cache) Delete(domain string) {
	if d, err := normalDomain(domain); err == nil {
		c.mu.Lock()
		delete(c.m, d)
		c.mu.Unlock()
	}
}

// Len returns the number of entries, expired ones included.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// evictLocked makes room: expired entries go first; if none, the entry
// closest to expiry.
func (c *Cache) evictLocked(now time.Time) {
	for d, e := range c.m {
		if !e.Valid(now) {
			delete(c.m, d)
		}
	}
	if len(c.m) < c.max {
		return
	}
	victim := ""
	var soonest time.Time
	for d, e := range c.m {
		if victim == "" || e.Expires.Before(soonest) {
			victim, soonest = d, e.Expires
		}
	}
	delete(c.m, victim)
}

// Source tells where a discovered policy came from.
type Source int

// Sources.
const (
	SourceNone    Source = iota // no policy applies
	SourceFetched               // fetched just now
	SourceCache                 // the cached policy (id unchanged, or record/fetch unavailable)
)

func (s Source) String() string {
	switch s {
	case SourceFetched:
		return "fetched"
	case SourceCache:
		return "cache"
	}
	return "none"
}

// Discovery is the outcome of Cache.Discover.
type Discovery struct {
	Domain string
	Source Source
	// Entry is the policy in force (Source != SourceNone).
	Entry CacheEntry
	// Record is the TXT record found, if any (RecordErr == nil).
	Record Record
	// RecordErr is the look-up outcome: nil, ErrNoRecord,
	// ErrMultipleRecords, ErrRecordSyntax or ErrRecordLookup.
	RecordErr error
	// FetchErr is set when a fetch was tried and failed.
	FetchErr error
}

// Policy returns the policy in force, if any.
func (d Discovery) Policy() (Policy, bool) {
	if d.Source == SourceNone {
		return Policy{}, false
	}
	return d.Entry.Policy, true
}

// FetchFunc fetches the policy of a domain; Fetch with a client is one.
type FetchFunc func(ctx context.Context, domain string) (Policy, error)

// Discover finds the policy in force for domain by the rules of RFC 8461
// §3.1, §3.3 and §5.1:
//
//   - the _mta-sts record is looked up every time;
//   - an unexpired cached policy whose id equals the record's is used
//     without fetching;
//   - otherwise (new id, nothing cached, cache expired) the policy is
//     fetched and cached under the record's id;
//   - when the record is absent, unusable, or its look-up fails, or when
//     the fetch fails, an unexpired cached policy stays in force; with
//     nothing cached there is no policy (SourceNone) and delivery goes on
//     as if the domain had no MTA-STS (§5.1).
//
// Concurrent calls for one domain share one look-up and fetch.
func (c *Cache) Discover(ctx context.Context, domain string, lookupTXT LookupTXTFunc, fetch FetchFunc) Discovery {
	d, err := normalDomain(domain)
	if err != nil {
		return Discovery{Domain: domain, RecordErr: err}
	}
	c.mu.Lock()
	if run, ok := c.runs[d]; ok {
		c.mu.Unlock()
		select {
		case <-run.done:
			return run.res
		case <-ctx.Done():
			return Discovery{Domain: d, RecordErr: errors.Join(ErrRecordLookup, ctx.Err())}
		}
	}
	run := &discovery{done: make(chan struct{})}
	c.runs[d] = run
	c.mu.Unlock()

	run.res = c.discover(ctx, d, lookupTXT, fetch)
	c.mu.Lock()
	delete(c.runs, d)
	c.mu.Unlock()
	close(run.done)
	return run.res
}

func (c *Cache) discover(ctx context.Context, d string, lookupTXT LookupTXTFunc, fetch FetchFunc) Discovery {
	res := Discovery{Domain: d}
	cached, haveCached := c.Get(d)
	useCache := func() Discovery {
		if haveCached {
			res.Source, res.Entry = SourceCache, cached
		}
		return res
	}
	res.Record, res.RecordErr = LookupRecord(ctx, lookupTXT, d)
	if res.RecordErr != nil {
		return useCache()
	}
	if haveCached && cached.ID == res.Record.ID {
		return useCache()
	}
	p, err := fetch(ctx, d)
	if err != nil {
		res.FetchErr = err
		return useCache()
	}
	res.Source, res.Entry = SourceFetched, c.Put(d, res.Record.ID, p)
	return res
}
