package cluster

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mailsec/mailsec/internal/dnszone"
	"github.com/mailsec/mailsec/internal/option"
	"github.com/mailsec/mailsec/internal/periodic"
	"github.com/mailsec/mailsec/internal/store"
)

// ACME dns-01 across nodes (docs/cluster.md "ACME across nodes"). A CA
// validating a dns-01 challenge asks one of the zone's name servers —
// any of them (RFC 8555 §8.4 leaves the choice to the CA; Let's Encrypt
// asks from several places) — so a challenge record known only to the
// node that ordered the certificate fails whenever the CA asks another
// node. Challenges keeps the records in the shared store instead: the
// ordering node writes them, every node loads them into its zones
// (dnszone.Authority.ReplaceChallenges; signed as they are served, like
// every other record) and records when it did, and the ordering node
// waits until every live node has loaded them since its write before it
// tells the CA to validate.

// ChallengeHold bounds how long a challenge record is served: a node that
// dies between publishing and removing it leaves a row that expires (a
// dns-01 validation takes seconds; a CA's pending authorization lasts
// days, but the ordering node would order again after a restart).
const ChallengeHold = time.Hour

// storeTimeout bounds a store call made for the certificate manager,
// whose ChallengePublisher interface carries no context.
const storeTimeout = 30 * time.Second

// ChallengeOptions configure Challenges.
type ChallengeOptions struct {
	Store *store.Store
	// Node names the publishing node's rows (node.name).
	Node string
	// Zones is this node's authority, into which the records are loaded.
	Zones *dnszone.Authority
	// Period is how often each node loads the records (node.heartbeat;
	// default 2 s).
	Period time.Duration
	// DeadAfter: a node that has not loaded the records for this long is
	// not waited for (node.dead_after; default 15 Periods).
	DeadAfter time.Duration
	Logger    *slog.Logger
	Now       func() time.Time
}

// Challenges publishes ACME dns-01 challenge records through the store
// shared by the nodes (certs.ChallengePublisher) and loads every node's
// records into this node's zones (Run).
type Challenges struct {
	o  ChallengeOptions
	mu sync.Mutex // one load at a time: a late one must not undo a newer one
}

// NewChallenges returns Challenges with defaults for unset options.
func NewChallenges(o ChallengeOptions) (*Challenges, error) {
	if o.Store == nil || o.Node == "" || o.Zones == nil {
		return nil, errors.New("cluster: challenges need a store, a node name and the zones")
	}
	option.Positive(&o.Period, 2*time.Second)
	option.Positive(&o.DeadAfter, 15*o.Period)
	o.Logger = option.Logger(o.Logger)
	o.Now = option.Clock(o.Now)
	return &Challenges{o: o}, nil
}

// SetChallenge stores values as this node's TXT values of fqdn
// (_acme-challenge.<host>.), loads them here at once, and returns when
// every live node has loaded the records since (Propagated), so that
// every name server answers the CA.
func (c *Challenges) SetChallenge(fqdn string, values []string) error {
	name, vals, err := c.o.Zones.CheckChallenge(fqdn, values)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout+c.o.DeadAfter)
	defer cancel()
	if err := c.o.Store.SetACMEChallenge(ctx, c.o.Node, name, vals, c.o.Now().Add(ChallengeHold)); err != nil {
		return err
	}
	written := c.o.Now()
	if err := c.Load(ctx); err != nil {
		return err
	}
	return c.Propagated(ctx, written)
}

// Propagated waits until every node that loads the challenge records —
// each live node does every Period — has loaded them with a read begun at
// or after written, and so serves what was stored before. A node that
// has not loaded for DeadAfter is taken for dead and not waited for; a
// node still behind after DeadAfter is named in the log, and Propagated
// returns all the same (the CA's validation may then fail and the order
// is retried). The times are the nodes' clocks: keep them in step (NTP),
// as the MX rotation needs anyway.
func (c *Challenges) Propagated(ctx context.Context, written time.Time) error {
	poll := max(c.o.Period/4, 10*time.Millisecond)
	deadline := time.Now().Add(c.o.DeadAfter)
	for {
		loads, err := c.o.Store.ACMEChallengeLoads(ctx, c.o.Now().Add(-c.o.DeadAfter))
		if err != nil {
			return err
		}
		var behind []string
		for node, at := range loads {
			if at.Before(written) {
				behind = append(behind, node)
			}
		}
		if len(behind) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			c.o.Logger.Warn("ACME challenge records not loaded by every node in time", "nodes", behind)
			return nil
		}
		select {
		case <-time.After(poll):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ClearChallenge removes this node's values of fqdn from the store and
// from this node's zones; the other nodes drop them at their next load.
func (c *Challenges) ClearChallenge(fqdn string) error {
	name, _, err := c.o.Zones.CheckChallenge(fqdn, nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := c.o.Store.SetACMEChallenge(ctx, c.o.Node, name, nil, time.Time{}); err != nil {
		return err
	}
	return c.Load(ctx)
}

// Load publishes in this node's zones exactly the challenge records of
// every node that the store holds now.
func (c *Challenges) Load(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	began := c.o.Now()
	set, err := c.o.Store.ACMEChallenges(ctx, began)
	if err != nil {
		return err
	}
	changed, err := c.o.Zones.ReplaceChallenges(set)
	if changed {
		c.o.Logger.Info("ACME challenge records loaded", "names", len(set))
	}
	if err != nil {
		// Refused entries are left out (and named); the rest is served,
		// so the load counts.
		c.o.Logger.Error("cluster: loading ACME challenge records", "err", err)
	}
	return c.o.Store.ACMEChallengesLoaded(ctx, c.o.Node, began)
}

// Run loads the records every period until ctx ends.
func (c *Challenges) Run(ctx context.Context) error {
	periodic.Run(ctx, c.o.Period, c.o.Logger, "ACME challenge records", c.Load)
	return nil
}
