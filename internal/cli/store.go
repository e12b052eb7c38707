package cli

import (
	"encoding/json"
	"fmt"
	"slices"
	"text/tabwriter"

	"github.com/mailsec/mailsec/internal/store"
)

// runStore is the operator's view of the database: 'store stats' counts
// the rows of every table and the size, and with -integrity runs SQLite's
// integrity check (exit 1 when it fails). It only reads, so it can run
// beside a serving instance (WAL readers do not block the writer).
func runStore(e *env, args []string) error {
	if len(args) == 0 || args[0] != "stats" {
		return fmt.Errorf("%w: 'store stats [-json] [-integrity]'", errUsage)
	}
	fs := newFlags(e, "store stats", "[-json] [-integrity]")
	asJSON := fs.Bool("json", false, "print JSON")
	integrity := fs.Bool("integrity", false, "also run the integrity check (reads every page)")
	cfg, err := e.parseLoad(fs, args[1:])
	if err != nil {
		return err
	}
	st, err := store.Open(e.ctx, cfg.StorePath())
	if err != nil {
		return err
	}
	defer st.Close()
	stats, err := st.Stats(e.ctx, *integrity)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(stats); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tROWS")
		names := make([]string, 0, len(stats.Tables))
		for n := range stats.Tables {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			fmt.Fprintf(tw, "%s\t%d\n", n, stats.Tables[n])
		}
		fmt.Fprintf(tw, "(size)\t%d bytes\n", stats.Bytes)
		if stats.Integrity != "" {
			fmt.Fprintf(tw, "(integrity)\t%s\n", stats.Integrity)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if *integrity && stats.Integrity != "ok" {
		return fmt.Errorf("store: integrity check failed: %s", stats.Integrity)
	}
	return nil
}
