// Package service wires mailsec's parts together from a configuration: it
// is the one place that knows every package, so that the packages themselves
// depend only downwards.
package service

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/dnssec"
	"github.com/mailsec/mailsec/internal/dnsserver"
	"github.com/mailsec/mailsec/internal/dnszone"
	"github.com/mailsec/mailsec/internal/mtasts"
	"github.com/mailsec/mailsec/internal/persona"
	"github.com/mailsec/mailsec/internal/store"
)

// DNSKEYTTL is the TTL of the DNSKEY RRsets.
const DNSKEYTTL = 3600

// Zones holds the test zones with their keys.
type Zones struct {
	Authority *dnszone.Authority
	KeyA      *dnssec.Key
	KeyB      *dnssec.Key // nil if zone B is unsigned
	Policy    mtasts.Policy
}

// BuildZones loads (or creates) the keys and builds the authority for the
// configured zones.
func BuildZones(cfg *config.Config, now time.Time) (*Zones, error) {
	keyDir := cfg.KeyDir()
	pkeys, err := persona.LoadKeys(keyDir)
	if err != nil {
		return nil, err
	}
	keyA, err := dnssec.LoadOrCreateKey(keyDir, cfg.Zones.A, DNSKEYTTL)
	if err != nil {
		return nil, err
	}
	var keyB *dnssec.Key
	if cfg.Zones.SignB {
		if keyB, err = dnssec.LoadOrCreateKey(keyDir, cfg.Zones.B, DNSKEYTTL); err != nil {
			return nil, err
		}
	}
	z := &Zones{KeyA: keyA, KeyB: keyB, Policy: Policy(cfg)}

	hostAddrs := map[string][]netip.Addr{}
	for h, list := range cfg.Zones.HostAddresses {
		hostAddrs[h] = addrs(list)
	}
	policyAddrs := addrs(cfg.Zones.PolicyHostAddresses)
	if len(policyAddrs) == 0 {
		policyAddrs = addrs(cfg.Zones.MXAddresses)
	}
	base := dnszone.TestZoneSpec{
		NSAddrs:     addrs(cfg.Zones.NSAddresses),
		MXAddrs:     addrs(cfg.Zones.MXAddresses),
		HostAddrs:   hostAddrs,
		PolicyAddrs: policyAddrs,
		TTL:         seconds(cfg.Zones.TTL.Duration),
		MXTTL:       seconds(cfg.Zones.MXTTL.Duration),
		NegativeTTL: seconds(cfg.Zones.NegativeTTL.Duration),
		SPF:         SPF(cfg),
		Keys:        pkeys,
		Rotation:    cfg.Timing.MXRotation.Duration,
	}
	specA := base
	specA.Zone, specA.Origin, specA.DNSKEY = persona.ZoneA, cfg.Zones.A, keyA.DNSKEY
	specA.Policy, specA.TLSRPT, specA.BrokenHosts = z.Policy, cfg.Zones.TLSRPTAddress, cfg.DNSSEC.BrokenHosts
	specB := base
	specB.Zone, specB.Origin = persona.ZoneB, cfg.Zones.B
	signer := func(k *dnssec.Key) *dnssec.Signer {
		if k == nil {
			return nil
		}
		return dnssec.NewSigner(k, cfg.DNSSEC.SignatureValidity.Duration, cfg.DNSSEC.RefreshBefore.Duration, cfg.DNSSEC.InceptionOffset.Duration)
	}
	if keyB != nil {
		specB.DNSKEY = keyB.DNSKEY
	}
	z.Authority, err = dnszone.NewAuthority(
		[]dnszone.TestZoneSpec{specA, specB},
		[]*dnssec.Signer{signer(keyA), signer(keyB)},
		cfg.Timing.MXRotation.Duration, now)
	if err != nil {
		return nil, err
	}
	return z, nil
}

// Policy returns zone A's MTA-STS policy: enforce, listing the personas
// that are in the policy (mx4, mx5, mx6 — DESIGN.md §2).
func Policy(cfg *config.Config) mtasts.Policy {
	p := mtasts.Policy{Mode: mtasts.ModeEnforce, MaxAge: cfg.Zones.MTASTSMaxAge.Duration}
	zone := strings.TrimSuffix(cfg.Zones.A, ".")
	for _, per := range persona.MXHosts(persona.ZoneA) {
		if per.InMTASTS {
			p.MX = append(p.MX, per.Host+"."+zone)
		}
	}
	return p
}

// SPF returns the SPF record of both zones: the configured one, or one that
// authorises the MX addresses (the service sends result mails from them).
func SPF(cfg *config.Config) string {
	if cfg.Zones.SPF != "" {
		return cfg.Zones.SPF
	}
	var b strings.Builder
	b.WriteString("v=spf1")
	for _, a := range addrs(cfg.Zones.MXAddresses) {
		if a.Is4() {
			b.WriteString(" ip4:" + a.String())
		} else {
			b.WriteString(" ip6:" + a.String())
		}
	}
	b.WriteString(" -all")
	return b.String()
}

// Serve runs the service until ctx is cancelled.
func Serve(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	st, err := store.Open(ctx, cfg.StorePath())
	if err != nil {
		return err
	}
	defer st.Close()
	zones, err := BuildZones(cfg, time.Now())
	if err != nil {
		return err
	}
	qlog := store.NewDNSQueryLog(st, log.With("part", "querylog"), cfg.DNS.QueryLogBuffer, cfg.DNS.QueryLogRetention.Duration)
	listeners, err := dnsserver.Listen(ctx, cfg.DNS.Listen)
	if err != nil {
		return err
	}
	srv := dnsserver.New(zones.Authority, dnsserver.Options{UDPSize: cfg.DNS.UDPSize, Recorder: qlog, Logger: log.With("part", "dns")})

	// The query log outlives the listeners: it is stopped only after the
	// server has shut down, so the last answered queries are written too.
	qctx, qcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer qcancel()
	qlogDone := make(chan error, 1)
	go func() { qlogDone <- qlog.Run(qctx) }()
	for _, l := range listeners {
		log.Info("dns listening", "addr", l.Addr().String(), "udp_sockets", len(l.UDP))
	}
	log.Info("zones ready", "a", cfg.Zones.A, "ds_a", zones.KeyA.DS().String(), "b", cfg.Zones.B, "rotation", cfg.Timing.MXRotation.Duration)
	err = srv.Serve(ctx, listeners)
	qcancel()
	if qerr := <-qlogDone; qerr != nil && err == nil {
		err = fmt.Errorf("query log: %w", qerr)
	}
	log.Info("query log closed", "written", qlog.Written(), "dropped", qlog.Dropped())
	return err
}

func addrs(list []string) []netip.Addr {
	out := make([]netip.Addr, 0, len(list))
	for _, s := range list {
		// config.Validate has checked every address.
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func seconds(d time.Duration) uint32 { return uint32(d / time.Second) }
