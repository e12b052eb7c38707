package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/store"
)

// runStore is the operator's view of the database:
//   - 'store stats' counts the rows of every table and the size, and with
//     -integrity runs SQLite's integrity check (exit 1 when it fails);
//   - 'store backup FILE' writes a consistent copy;
//   - 'store purge' runs the retention purge once, now or -as-of a later
//     time (what would be gone by then; on a copy, with -db).
//
// -db works on another database file (a backup) instead of the
// configuration's. Stats and backup only read, so they can run beside a
// serving instance (WAL readers do not block the writer). On a PostgreSQL
// store, backup refuses (pg_dump is the tool there) and -integrity needs
// the amcheck extension (docs/store.md "PostgreSQL").
func runStore(e *env, args []string) error {
	usage := fmt.Errorf("%w: 'store stats [-json] [-integrity] [-db FILE]', 'store backup FILE' or 'store purge [-json] [-as-of TIME] [-db FILE]'", errUsage)
	if len(args) == 0 {
		return usage
	}
	switch args[0] {
	case "stats":
		return runStoreStats(e, args[1:])
	case "backup":
		return runStoreBackup(e, args[1:])
	case "purge":
		return runStorePurge(e, args[1:])
	}
	return usage
}

// loadStore loads the configuration and opens its store; the caller
// closes the store.
func (e *env) loadStore() (config.Config, *store.Store, error) {
	cfg, err := e.load()
	if err != nil {
		return cfg, nil, err
	}
	st, err := store.OpenDriver(e.ctx, cfg.Store.Driver, cfg.StorePath())
	return cfg, st, err
}

// openStoreFlag opens -db if given, else the configuration's store.
func openStoreFlag(e *env, cfg config.Config, db string) (*store.Store, error) {
	if db == "" {
		return store.OpenDriver(e.ctx, cfg.Store.Driver, cfg.StorePath())
	}
	// -db is a SQLite file (a backup, or a copy to purge).
	if _, err := os.Stat(db); err != nil {
		return nil, fmt.Errorf("%w: -db: %v", errUsage, err) // never create a new one by mistake
	}
	return store.Open(e.ctx, db)
}

func runStoreBackup(e *env, args []string) error {
	fs := newFlags(e, "store backup", "FILE")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: 'store backup FILE'", errUsage)
	}
	dst := fs.Arg(0)
	if _, err := os.Stat(dst); err == nil {
		return fmt.Errorf("%w: %s exists", errUsage, dst)
	}
	_, st, err := e.loadStore()
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Backup(e.ctx, dst); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup written to %s\n", dst)
	return nil
}

func runStorePurge(e *env, args []string) error {
	fs := newFlags(e, "store purge", "[-json] [-as-of TIME] [-db FILE]")
	asJSON := fs.Bool("json", false, "print JSON")
	asOf := fs.String("as-of", "", "purge as if it were this time (RFC 3339, or +DURATION from now, e.g. +8760h): what would be gone by then")
	db := fs.String("db", "", "the database file to purge (default: the configuration's store)")
	cfg, err := e.parseLoad(fs, args)
	if err != nil {
		return err
	}
	now := time.Now()
	switch {
	case strings.HasPrefix(*asOf, "+"):
		d, err := time.ParseDuration((*asOf)[1:])
		if err != nil || d < 0 {
			return fmt.Errorf("%w: -as-of %q: want +DURATION (e.g. +720h) or an RFC 3339 time", errUsage, *asOf)
		}
		now = now.Add(d)
	case *asOf != "":
		t, err := time.Parse(time.RFC3339, *asOf)
		if err != nil {
			return fmt.Errorf("%w: -as-of %q: want +DURATION (e.g. +720h) or an RFC 3339 time", errUsage, *asOf)
		}
		now = t
	}
	st, err := openStoreFlag(e, cfg, *db)
	if err != nil {
		return err
	}
	defer st.Close()
	p := service.Purger(&cfg, st, e.logger(&cfg))
	counts, err := p.PurgeAt(e.ctx, now)
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(counts)
	} else {
		fmt.Fprintf(e.stdout, "purged as of %s: %+v\n", now.UTC().Format(time.RFC3339), counts)
	}
	return err
}

func runStoreStats(e *env, args []string) error {
	fs := newFlags(e, "store stats", "[-json] [-integrity] [-db FILE]")
	asJSON := fs.Bool("json", false, "print JSON")
	integrity := fs.Bool("integrity", false, "also run the integrity check (reads every page)")
	db := fs.String("db", "", "the database file to read (default: the configuration's store)")
	cfg, err := e.parseLoad(fs, args)
	if err != nil {
		return err
	}
	st, err := openStoreFlag(e, cfg, *db)
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
