package cli

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/mailsec/mailsec/internal/demo"
	"github.com/mailsec/mailsec/internal/untrusted"
)

func runDemo(e *env, args []string) error {
	var opts demo.Options
	fs := newFlags(e, "demo", "[-json] [-v] [-hold D]")
	asJSON := fs.Bool("json", false, "print the results as JSON")
	verbose := fs.Bool("v", false, "log the service and the senders to standard error")
	fs.DurationVar(&opts.Deadline, "deadline", 110*time.Second, "bound on the whole run")
	fs.DurationVar(&opts.Hold, "hold", 0, "keep the service and its web UI running this long after the senders are done")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: untrusted.LogAttr}))
	}
	webURL := ""
	if !*asJSON {
		fmt.Fprintf(e.stdout, "mailsec demo: the service on loopback, 8 reference senders (one per policy), each sends one test mail...\n")
		opts.Progress = func(r demo.Result) {
			mark := "ok"
			if !r.OK {
				mark = "WRONG"
			}
			fmt.Fprintf(e.stderr, "  %-13s done after %.1fs: %s (%s) %s/t/%s\n", r.Sender, r.Seconds, r.Verdict, mark, webURL, r.OwnerKey)
		}
		opts.Started = func(url string) {
			webURL = url
			fmt.Fprintf(e.stdout, "web UI: %s (while the demo runs; -hold 10m keeps it up afterwards)\n", url)
		}
	}
	rep, err := demo.Run(e.ctx, opts)
	if err != nil && rep == nil {
		return err
	}
	if *asJSON {
		if jerr := json.NewEncoder(e.stdout).Encode(rep); jerr != nil {
			return jerr
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SENDER\tEXPECTED\tVERDICT\tATTEMPTS\tSECONDS\t")
		for _, r := range rep.Results {
			mark := ""
			if !r.OK {
				mark = "  <- wrong"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%.1f\t%s\n", r.Sender, r.Expected, r.Verdict, r.Attempts, r.Seconds, mark)
		}
		tw.Flush()
		fmt.Fprintf(e.stdout, "\nDNSSEC: %s.\nTotal %.1fs.\n", rep.DNSSEC, rep.Seconds)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return fmt.Errorf("some verdicts differ from the expected policy")
	}
	return nil
}
