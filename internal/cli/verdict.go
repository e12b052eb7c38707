package cli

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/verdict"
)

// runVerdict re-judges a stored test from its recorded history, so real
// histories can be replayed when the rules change.
func runVerdict(e *env, args []string) error {
	fs := newFlags(e, "verdict", "-test ID [-json] [-done] [-sent-to-b] [-tie-client ADDR]")
	id := fs.String("test", "", "the test to judge (required)")
	asJSON := fs.Bool("json", false, "print JSON")
	done := fs.Bool("done", false, "the sender is known to have finished (its queue is empty)")
	sentToB := fs.Bool("sent-to-b", false, "the sender is known to have had a mail for the B address (the service knows it by itself when a test mail names B in To or Cc)")
	tieClient := fs.String("tie-client", "", "first tie to the test the connections of this client address (IP) since the test was created that no test claimed (refused before RCPT TO), as smtpd does at the sender's next RCPT; for a sender known to use only this address")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return fmt.Errorf("%w: -test ID is required", errUsage)
	}
	cfg, st, t, conns, err := e.openTest(*id)
	if err != nil {
		return err
	}
	defer st.Close()
	now := time.Now()
	if *tieClient != "" {
		addr, err := netip.ParseAddr(*tieClient)
		if err != nil {
			return fmt.Errorf("%w: -tie-client: %v", errUsage, err)
		}
		n, err := st.TieConnections(e.ctx, t.ID, addr.Unmap(), t.Created, now.Add(time.Second))
		if err != nil {
			return err
		}
		if n > 0 {
			if conns, err = st.Connections(e.ctx, store.ConnectionFilter{TestID: t.ID}); err != nil {
				return err
			}
		}
	}
	// The same evidence rule as the SMTP personas' acknowledgement: policy
	// fetches from the sender's network, up to a week before the test.
	all, err := st.PolicyFetches(e.ctx, t.Created.Add(-7*24*time.Hour), now.Add(time.Second), 10000)
	if err != nil {
		return err
	}
	var fetches []store.PolicyFetch
	for _, f := range all {
		if f.Status == 200 && verdict.ClientMatches(f.Client.Addr(), conns, cfg.SMTP.ClientPrefixV4, cfg.SMTP.ClientPrefixV6) {
			fetches = append(fetches, f)
		}
	}
	v := verdict.Judge(verdict.Observations{Connections: conns, PolicyFetches: fetches, Now: now,
		Quiet: cfg.Timing.AckAfter.Duration, SenderDone: *done, SentToB: *sentToB || !t.AddressedB.IsZero()})
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(struct {
			Test    string          `json:"test"`
			Verdict verdict.Verdict `json:"verdict"`
		}{t.ID, v})
	}
	fmt.Fprintf(e.stdout, "Test %s: %s (complete: %v)\n  %s\n  zone B: %s\n  candidates: %v\n  attempts seen: %d\n\n", t.ID, v.Policy, v.Complete, v.Why, v.ZoneB, v.Candidates, v.Attempts)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FACT\tVALUE\tCONFIDENCE\tWHY")
	for _, f := range v.Facts {
		val := fmt.Sprint(f.Value)
		if f.Confidence == verdict.Unknown {
			val = "?"
		}
		why := f.Why
		if f.Settle != "" {
			why += " (to settle: " + f.Settle + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, val, f.Confidence, why)
	}
	return tw.Flush()
}
