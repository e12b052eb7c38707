// Command benchtool builds and serves parts of the synthetic internet of
// bench/scan (figure P5) and measures the machine's STARTTLS handshake
// limit. Subcommands:
//
//	gen -n N -dir DIR          the world: PKI (kept once made), zone files, domain list, tlsa
//	policy -dir DIR -listen A  the MTA-STS policy host of every domain (certificates made per SNI)
//	handshake -targets ...     concurrent EHLO+STARTTLS+handshake loops, bounded in count and time
//
// The world is deterministic: domain i's zone, MX, TLSA and MTA-STS policy
// are a function of i (plan), so the policy host needs no list. Every
// address is on 127.0.0.0/8; the tool refuses others.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool gen|policy|handshake [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = runGen(os.Args[2:])
	case "policy":
		err = runPolicy(os.Args[2:])
	case "handshake":
		err = runHandshake(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool:", err)
		os.Exit(1)
	}
}
