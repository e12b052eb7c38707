package cli

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/mailsec/mailsec/internal/evidence"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/untrusted"
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
	tieClient := fs.String("tie-client", "", "operator tool: first tie to the test, in the store, the connections of this client address (IP) that no test claimed (refused before RCPT TO), by the rule smtpd applies at the sender's next RCPT (docs/smtp.md); a user names the sending server when creating the test instead (test new -sending-server, the web form, the API)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return fmt.Errorf("%w: -test ID is required", errUsage)
	}
	cfg, st, t, _, err := e.openTest(*id)
	if err != nil {
		return err
	}
	defer st.Close()
	// The evidence of the service's own verdicts (internal/evidence).
	ev := evidence.Gatherer{Store: st, Rules: service.EvidenceRules(&cfg)}
	now := time.Now()
	if *tieClient != "" {
		addr, err := netip.ParseAddr(*tieClient)
		if err != nil {
			return fmt.Errorf("%w: -tie-client: %v", errUsage, err)
		}
		if _, err := ev.Tie(e.ctx, t, addr, now); err != nil {
			return err
		}
	}
	var opts []evidence.Option
	if *done {
		opts = append(opts, evidence.SenderDone())
	}
	if *sentToB {
		opts = append(opts, evidence.SentToB())
	}
	v, _, err := ev.Judge(e.ctx, t, now, opts...)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(struct {
			Test    string          `json:"test"`
			Verdict verdict.Verdict `json:"verdict"`
		}{t.ID, v})
	}
	// The reasons quote observations (names, replies) made from what
	// senders sent: nothing of it may drive the terminal.
	fmt.Fprintf(e.stdout, "Test %s: %s (complete: %v)\n  %s\n  zone B: %s\n  candidates: %v\n  attempts seen: %d\n\n", t.ID, v.Policy, v.Complete,
		untrusted.Terminal(v.Why), untrusted.Terminal(fmt.Sprint(v.ZoneB)), v.Candidates, v.Attempts)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FACT\tVALUE\tCONFIDENCE\tWHY")
	for _, f := range v.Facts {
		val := fmt.Sprint(f.Value)
		if f.Confidence == verdict.Unknown {
			val = "?"
		}
		why := f.Why
		if f.Caveat != "" {
			why += "; but " + f.Caveat
		}
		if f.Settle != "" {
			why += " (to settle: " + f.Settle + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, untrusted.Terminal(val), f.Confidence, untrusted.Terminal(why))
	}
	return tw.Flush()
}
