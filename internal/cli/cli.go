// Package cli implements the mailsec command line: global flags, the
// subcommands and their help. cmd/mailsec only calls Main.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/service"
	"github.com/mailsec/mailsec/internal/store"
	"github.com/mailsec/mailsec/internal/untrusted"
)

// Exit codes.
const (
	exitOK     = 0
	exitFail   = 1 // the job failed
	exitUsage  = 2 // bad command line or configuration
	exitSignal = 130
)

type env struct {
	ctx        context.Context
	stdout     io.Writer
	stderr     io.Writer
	configPath string
	logLevel   string
}

type command struct {
	name    string
	summary string
	run     func(e *env, args []string) error
}

func commands() []command {
	return []command{
		{"demo", "run the service and 8 reference senders (one per policy) on loopback; print the verdicts", runDemo},
		{"serve", "run the service (DNS zones, SMTP personas, MTA-STS host) until interrupted", runServe},
		{"dns", "zone tools: 'dns ds' prints the DS records, 'dns dump [-zone a|b]' the signed zone", runDNS},
		{"test", "outbound tests: 'test new' creates one, 'test show ID' prints its connection history", runTest},
		{"store", "the database: 'store stats [-json] [-integrity]' counts the rows of every table (and checks the file's integrity)", runStore},
		{"backup", "'backup DIR': a consistent copy of the store, keys and certificates while the service runs", runBackup},
		{"restore", "'restore [-replace] DIR': verify a backup and restore it into an empty data directory", runRestore},
		{"verdict", "re-judge a stored test from its history: 'verdict -test ID'", runVerdict},
		{"check", "inbound check of a receiving domain: 'check DOMAIN [--json]' (MX, DNSSEC, STARTTLS, DANE, MTA-STS, colour)", runCheck},
		{"scan", "inbound check of every domain of a list: 'scan FILE|-' (resumable; JSON Lines, CSV, HTML report); 'scan compare A B' and 'scan trend [SCAN...]' report across scans", runScan},
		{"init", "write the production configuration of docs/deploy.md from a few flags (-zone-a, -zone-b, -addr, -policy-addr, -acme-email, -web-url)", runInit},
		{"config", "print the effective configuration (defaults plus file) as TOML", runConfig},
		{"version", "print the version", runVersion},
		{"help", "list the subcommands", nil},
	}
}

// errUsage marks command-line mistakes (exit status 2).
var errUsage = errors.New("usage")

// Main runs the command line args (without the program name) and returns
// the exit status.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr}
	fs := flag.NewFlagSet("mailsec", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&e.configPath, "config", os.Getenv("MAILSEC_CONFIG"), "configuration `file` (TOML; default: embedded defaults; env MAILSEC_CONFIG)")
	fs.StringVar(&e.logLevel, "log-level", "", "override log.level (debug, info, warn, error)")
	fs.Usage = func() { usage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] == "help" || rest[0] == "-h" || rest[0] == "--help" {
		usage(stdout, fs)
		return exitOK
	}
	for _, c := range commands() {
		if c.name != rest[0] || c.run == nil {
			continue
		}
		err := c.run(e, rest[1:])
		switch {
		case err == nil:
			return exitOK
		case errors.Is(err, flag.ErrHelp):
			return exitOK
		case errors.Is(err, errUsage), errors.Is(err, config.ErrInvalid):
			fmt.Fprintf(stderr, "mailsec %s: %s\n", c.name, errorText(err))
			return exitUsage
		case errors.Is(err, context.Canceled):
			return exitSignal
		default:
			fmt.Fprintf(stderr, "mailsec %s: %s\n", c.name, errorText(err))
			return exitFail
		}
	}
	fmt.Fprintf(stderr, "mailsec: unknown command %q (see 'mailsec help')\n", rest[0])
	return exitUsage
}

// errorText is err's text for the terminal: errors quote peers (a DNS
// name, a server's reply), so each line is made printable; the line
// breaks of joined errors stay.
func errorText(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i, l := range lines {
		lines[i] = untrusted.Terminal(l)
	}
	return strings.Join(lines, "\n")
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "mailsec — email transport security test service\n\nUsage: mailsec [-config FILE] COMMAND [ARGS]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n")
	fs.SetOutput(w)
	fs.PrintDefaults()
	fmt.Fprintf(w, "\nRun 'mailsec COMMAND -h' for a command's flags. Documentation: docs/.\n")
}

func (e *env) load() (config.Config, error) {
	cfg, err := config.Load(e.configPath)
	if err != nil {
		return cfg, err
	}
	if e.logLevel != "" {
		cfg.Log.Level = e.logLevel
		if err := cfg.Validate(); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

func (e *env) logger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	// Log lines quote peers: untrusted.LogAttr keeps their control
	// characters off the operator's terminal.
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: untrusted.LogAttr}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(e.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(e.stderr, opts))
}

func newFlags(e *env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet("mailsec "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: mailsec [-config FILE] %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses fs from args; a bad flag is a usage error, -h is
// flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

// parse parses the flags of a command that takes no other arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	return nil
}

// parseArgs parses the flags of a command whose arguments may come before,
// between or after them (the flag package stops at the first argument),
// and returns the arguments in order.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var operands []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return operands, nil
		}
		operands = append(operands, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseLoad parses the flags of a command that takes no other arguments,
// then loads the configuration: how most commands start.
func (e *env) parseLoad(fs *flag.FlagSet, args []string) (config.Config, error) {
	if err := parse(fs, args); err != nil {
		return config.Config{}, err
	}
	return e.load()
}

func runServe(e *env, args []string) error {
	cfg, err := e.parseLoad(newFlags(e, "serve", ""), args)
	if err != nil {
		return err
	}
	log := e.logger(&cfg)
	// The process's soft memory limit: near it the collector works
	// harder, so the DATA budget is not doubled by the heap's headroom
	// (lab/hardening "R2 slow DATA"). GOMEMLIMIT in the environment wins.
	if limit := cfg.EffectiveMemoryLimit(); limit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(limit)
		log.Info("soft memory limit", "bytes", limit)
	}
	// Start once: the keys, zones and listeners are what is printed.
	run, err := service.Start(e.ctx, &cfg, log)
	if err != nil {
		return err
	}
	if run.WebURL != "" {
		fmt.Fprintf(e.stdout, "Web UI: %s\n", run.WebURL)
	}
	// Tell a newcomer what to try: the DS for the parent (or a resolver's
	// trust anchor) and queries that show signed answers, at the bound
	// address.
	fmt.Fprintf(e.stdout, "DS for the parent of zone A (or a resolver's trust anchor):\n  %s\n", run.Zones.KeyA.DS())
	if run.Zones.KeyB != nil {
		fmt.Fprintf(e.stdout, "DS for the parent of zone B:\n  %s\n", run.Zones.KeyB.DS())
	}
	if len(run.DNSAddrs) > 0 {
		ap := run.DNSAddrs[0]
		fmt.Fprintf(e.stdout, "Try:\n  dig @%s -p %d +dnssec +multi MX %s\n", ap.Addr(), ap.Port(), cfg.Zones.A)
		fmt.Fprintf(e.stdout, "  dig @%s -p %d +dnssec TLSA _25._tcp.mx4.%s\n", ap.Addr(), ap.Port(), cfg.Zones.A)
	}
	err = run.Wait()
	if errors.Is(e.ctx.Err(), context.Canceled) {
		log.Info("stopped")
		return nil
	}
	return err
}

func runDNS(e *env, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: 'dns ds' or 'dns dump'", errUsage)
	}
	switch args[0] {
	case "ds":
		fs := newFlags(e, "dns ds", "[-zone a|b]")
		zone := fs.String("zone", "", "only this zone (a or b); default: every signed zone")
		cfg, err := e.parseLoad(fs, args[1:])
		if err != nil {
			return err
		}
		keys, err := service.ZoneKeysFor(e.ctx, &cfg)
		if err != nil {
			return err
		}
		zones, err := service.BuildZones(&cfg, time.Now(), keys)
		if err != nil {
			return err
		}
		switch *zone {
		case "", "a":
			fmt.Fprintln(e.stdout, zones.KeyA.DS())
			if *zone == "" && zones.KeyB != nil {
				fmt.Fprintln(e.stdout, zones.KeyB.DS())
			}
		case "b":
			if zones.KeyB == nil {
				return fmt.Errorf("zone B is not signed (zones.sign_b = false)")
			}
			fmt.Fprintln(e.stdout, zones.KeyB.DS())
		default:
			return fmt.Errorf("%w: -zone must be a or b", errUsage)
		}
		return nil
	case "dump":
		fs := newFlags(e, "dns dump", "[-zone a|b]")
		zone := fs.String("zone", "a", "zone to dump: a or b")
		at := fs.String("at", "", "dump the zone as at this RFC 3339 time (default: now)")
		asServed := fs.Bool("as-served", false, "show deliberately broken signatures (dnssec.broken_hosts) corrupted, as served")
		if err := parse(fs, args[1:]); err != nil {
			return err
		}
		idx := map[string]int{"a": 0, "b": 1}
		i, ok := idx[*zone]
		if !ok {
			return fmt.Errorf("%w: -zone must be a or b", errUsage)
		}
		now := time.Now()
		if *at != "" {
			t, err := time.Parse(time.RFC3339, *at)
			if err != nil {
				return fmt.Errorf("%w: -at: %v", errUsage, err)
			}
			now = t
		}
		cfg, err := e.load()
		if err != nil {
			return err
		}
		keys, err := service.ZoneKeysFor(e.ctx, &cfg)
		if err != nil {
			return err
		}
		zones, err := service.BuildZones(&cfg, now, keys)
		if err != nil {
			return err
		}
		return zones.Authority.Snapshot(now).Zones[i].Dump(e.stdout, now, *asServed)
	}
	return fmt.Errorf("%w: unknown 'dns %s' ('dns ds' or 'dns dump')", errUsage, args[0])
}

func runConfig(e *env, args []string) error {
	cfg, err := e.parseLoad(newFlags(e, "config", ""), args)
	if err != nil {
		return err
	}
	// The files the configuration names and the service reads at start
	// are checked here too, so a mistake shows before a restart.
	if _, err := cfg.ProviderNotes(); err != nil {
		return err
	}
	if cfg.Store.Driver == store.DriverPostgres {
		cfg.Store.DSN = cfg.StoreName() // the password stays out of the output
	}
	enc := toml.NewEncoder(e.stdout)
	enc.Indent = ""
	return enc.Encode(cfg)
}

func runVersion(e *env, args []string) error {
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		v = bi.Main.Version
		var rev []string
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				rev = append(rev, s.Key+"="+s.Value)
			}
		}
		sort.Strings(rev)
		if len(rev) > 0 {
			v += " " + strings.Join(rev, " ")
		}
	}
	fmt.Fprintf(e.stdout, "mailsec %s\n", v)
	return nil
}
