package mtasts

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Mode is a policy's mode (RFC 8461 §3.2).
type Mode string

// Policy modes.
const (
	ModeEnforce Mode = "enforce"
	ModeTesting Mode = "testing"
	ModeNone    Mode = "none"
)

// Policy is an MTA-STS policy.
type Policy struct {
	Mode   Mode
	MX     []string // host names or "*." patterns, without trailing dot
	MaxAge time.Duration
}

// String formats the policy as served at
// https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 §3.2): CRLF line
// endings, version first.
func (p Policy) String() string {
	var b strings.Builder
	b.WriteString("version: STSv1\r\n")
	fmt.Fprintf(&b, "mode: %s\r\n", p.Mode)
	for _, mx := range p.MX {
		fmt.Fprintf(&b, "mx: %s\r\n", strings.TrimSuffix(mx, "."))
	}
	fmt.Fprintf(&b, "max_age: %d\r\n", int64(p.MaxAge/time.Second))
	return b.String()
}

// ID derives the policy id of the _mta-sts TXT record from the policy text,
// so the id changes exactly when the policy does (RFC 8461 §3.1: senders
// refetch only when the id changes). 20 hex digits fit the 1–32
// alphanumeric characters the RFC allows.
func (p Policy) ID() string {
	sum := sha256.Sum256([]byte(p.String()))
	return hex.EncodeToString(sum[:10])
}

// Record returns the TXT record text announcing the policy (RFC 8461 §3.1).
func (p Policy) Record() string { return Record{ID: p.ID()}.String() }
