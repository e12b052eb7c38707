package inbound

import (
	"errors"
	"net/netip"

	"github.com/mailsec/mailsec/internal/netguard"
)

// ErrRefused is wrapped by the error for a target the check will not
// contact: a private, loopback, link-local, CGNAT, multicast or otherwise
// reserved address, without Options.AllowPrivate. A public service that
// connected wherever a domain's MX records point could be used to probe
// the operator's own network (issue 6, "Safety").
var ErrRefused = errors.New("inbound: private or reserved address refused")

// guard is the check's destination guard: nil with AllowPrivate (every
// address may be contacted), else public addresses and AllowDestinations.
func (o *Options) guard() *netguard.Guard {
	if o.AllowPrivate {
		return nil
	}
	return &netguard.Guard{Allow: o.AllowDestinations}
}

// permitted tells whether the check may contact ip.
func (o *Options) permitted(ip netip.Addr) bool {
	g := o.guard()
	return g == nil || g.Check(ip) == nil
}
