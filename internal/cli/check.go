package cli

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/inbound"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
)

// runCheck is `mailsec check DOMAIN`: the inbound analysis of a receiving
// domain (docs/inbound.md). Exit status 0 when the check ran to its end,
// whatever the colour; 2 for usage errors (including a DOMAIN that is no
// domain name); 1 when the resolver is unusable or a target was refused
// as private (the report is still printed).
func runCheck(e *env, args []string) error {
	fs := newFlags(e, "check", "DOMAIN [--json] [--resolver IP:PORT] [--allow-private] [--roots FILE] [--timeout DURATION]")
	asJSON := fs.Bool("json", false, "print the report as JSON (schema mailsec.check.v1)")
	inf := addInboundFlags(fs, "one deadline for the whole check (default: inbound.timeout)")
	// DOMAIN may come before or after the flags.
	domains, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(domains) != 1 {
		fs.Usage()
		return fmt.Errorf("%w: give one DOMAIN", errUsage)
	}
	cfg, err := e.load()
	if err != nil {
		return err
	}
	opts, err := inf.options(&cfg)
	if err != nil {
		return err
	}
	opts.Logger = e.logger(&cfg)

	r, err := inbound.Check(e.ctx, domains[0], opts)
	if errors.Is(err, dnsname.ErrBadDomain) {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if r != nil {
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(r); werr != nil {
				return werr
			}
		} else if werr := r.WriteText(e.stdout); werr != nil {
			return werr
		}
	}
	if e.ctx.Err() != nil {
		return e.ctx.Err()
	}
	if err != nil {
		return err
	}
	if r.Has(checkreport.CodePrivateRefused) {
		return fmt.Errorf("%w: private or reserved addresses were not contacted (--allow-private)", inbound.ErrRefused)
	}
	return nil
}
