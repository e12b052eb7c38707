package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/inbound"
	"github.com/mailsec/mailsec/internal/keyfile"
	"github.com/mailsec/mailsec/internal/scan"
	"github.com/mailsec/mailsec/internal/store"
)

// scanFlags is the command line of `mailsec scan`.
type scanFlags struct {
	files                 []string // FILE or "-"; none to resume a loaded scan
	out, jsonl, csv, html string   // where the outputs go
	concurrency, perDest  int
	hostTTL               time.Duration
	rate                  float64
	scanID                string
	resume, worker        bool
	inbound               inboundFlags
	labelDefault          string
	json, quiet           bool
	cpuProfile            string
}

// parseScanFlags parses the command line of `mailsec scan` and rejects
// what cannot run (usage errors).
func parseScanFlags(e *env, args []string) (scanFlags, error) {
	var f scanFlags
	fs := newFlags(e, "scan", "FILE|- [--out DIR] [--jsonl F] [--csv F] [--html F] [--concurrency N] [--per-destination N] [--host-cache-ttl D] [--rate R] [--scan-id ID] [--resume] [--worker] [--allow-private] [--resolver IP:PORT] [--roots FILE] [--timeout D] [--label-default L] [--json]")
	fs.StringVar(&f.out, "out", "", "write results.jsonl, results.csv and report.html into `DIR` (default: scan-<ID> unless --jsonl/--csv/--html are given)")
	fs.StringVar(&f.jsonl, "jsonl", "", "write the JSON Lines results to `FILE`")
	fs.StringVar(&f.csv, "csv", "", "write the CSV results to `FILE`")
	fs.StringVar(&f.html, "html", "", "write the HTML report to `FILE`")
	fs.IntVar(&f.concurrency, "concurrency", 32, "domains checked at once")
	fs.IntVar(&f.perDest, "per-destination", 2, "connections open at once to one destination address (MX, policy host); 0: no cap")
	fs.DurationVar(&f.hostTTL, "host-cache-ttl", time.Hour, "reuse the result of an MX host at an address for this long across domains (0: probe every time)")
	fs.Float64Var(&f.rate, "rate", 0, "domains started per second at most (0: no limit)")
	fs.StringVar(&f.scanID, "scan-id", "", "name of the scan in the store (default: scan-<digest of the input>; rerunning the same input resumes it)")
	fs.BoolVar(&f.resume, "resume", false, "resume the scan --scan-id (FILE may be omitted once its input is loaded); also how a second worker joins it")
	fs.BoolVar(&f.worker, "worker", false, "one of several workers of the scan on a shared store: --rate and --per-destination hold for all of them together (counted in the store)")
	f.inbound = addInboundFlags(fs, "deadline of one domain's check (default: inbound.timeout)")
	fs.StringVar(&f.labelDefault, "label-default", "", "label of lines that have none")
	fs.BoolVar(&f.json, "json", false, "print a JSON summary on stdout at the end")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress output")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the scan to `FILE` (go tool pprof)")
	files, err := parseArgs(fs, args)
	if err != nil {
		return f, err
	}
	f.files = files
	switch {
	case len(files) > 1:
		return f, fmt.Errorf("%w: give one FILE (or - for standard input)", errUsage)
	case len(files) == 0 && !f.resume:
		fs.Usage()
		return f, fmt.Errorf("%w: give a FILE (or -), or --resume --scan-id ID", errUsage)
	case len(files) == 0 && f.scanID == "":
		return f, fmt.Errorf("%w: --resume without FILE needs --scan-id", errUsage)
	case f.concurrency < 1 || f.concurrency > 10000:
		return f, fmt.Errorf("%w: --concurrency %d is outside 1..10000", errUsage, f.concurrency)
	case f.perDest < 0:
		return f, fmt.Errorf("%w: --per-destination must not be negative", errUsage)
	case f.rate < 0:
		return f, fmt.Errorf("%w: --rate must not be negative", errUsage)
	case f.hostTTL < 0:
		return f, fmt.Errorf("%w: --host-cache-ttl must not be negative", errUsage)
	}
	return f, nil
}

// runScan is `mailsec scan FILE|-`: the inbound check of every domain of
// a list, resumable, polite per destination, with JSON Lines, CSV and
// HTML outputs (docs/scan.md).
func runScan(e *env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "compare":
			return runScanCompare(e, args[1:])
		case "trend":
			return runScanTrend(e, args[1:])
		}
	}
	flags, err := parseScanFlags(e, args)
	if err != nil {
		return err
	}
	files := flags.files

	cfg, err := e.load()
	if err != nil {
		return err
	}
	log := e.logger(&cfg)
	opts, err := flags.inbound.options(&cfg)
	if err != nil {
		return err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	opts.Logger = log

	st, err := store.OpenDriver(e.ctx, cfg.Store.Driver, cfg.StorePath())
	if err != nil {
		return err
	}
	defer st.Close()

	// The input: a file, or standard input spooled to a temporary file
	// (its digest names the scan, and a failed load can be retried).
	var input string
	if len(files) == 1 {
		input = files[0]
		if input == "-" {
			tmp, err := spool(os.Stdin)
			if err != nil {
				return err
			}
			defer os.Remove(tmp)
			input = tmp
		}
	}
	id := flags.scanID
	var digest string
	if input != "" {
		if digest, err = fileDigest(input); err != nil {
			return err
		}
		if id == "" {
			id = "scan-" + digest[:12]
		}
	}
	sc, err := st.Scan(e.ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound) && flags.resume:
		return fmt.Errorf("%w: no scan %q in %s to resume", errUsage, id, cfg.StoreName())
	case errors.Is(err, store.ErrNotFound):
		o, _ := json.Marshal(map[string]any{"concurrency": flags.concurrency, "per_destination": flags.perDest, "host_cache_ttl": flags.hostTTL.String(),
			"rate": flags.rate, "timeout": opts.Timeout.String(), "resolver": opts.Resolver, "allow_private": opts.AllowPrivate,
			"label_default": flags.labelDefault})
		sc = store.Scan{ID: id, Created: time.Now(), Source: files[0], InputSHA256: digest, Options: string(o)}
		if err := st.CreateScan(e.ctx, sc); err != nil {
			return err
		}
	case err != nil:
		return err
	case digest != "" && sc.InputSHA256 != digest:
		return fmt.Errorf("%w: scan %q was started with another input (%s); give another --scan-id", errUsage, id, sc.Source)
	}
	if sc.Loaded.IsZero() {
		if input == "" {
			return fmt.Errorf("%w: the input of scan %q was not loaded completely: give its FILE again", errUsage, id)
		}
		f, err := os.Open(input)
		if err != nil {
			return err
		}
		ls, err := scan.Load(e.ctx, st, id, f, dnsname.NormalizeDomain, flags.labelDefault)
		f.Close()
		if err != nil {
			return fmt.Errorf("loading %s: %w", files[0], err)
		}
		fmt.Fprintf(e.stderr, "scan %s: %d lines read: %d domains, %d invalid lines, %d duplicates\n",
			id, ls.Lines, ls.Domains, ls.Invalid, ls.Duplicates)
	}
	fmt.Fprintf(e.stderr, "scan %s: resume or join with: mailsec scan --resume --scan-id %s\n", id, id)

	// Politeness: every connection of every check goes through one cap per
	// destination address, and MX hosts are probed once per TTL.
	hosts := scan.NewHostCache[inbound.Address](e.ctx, flags.hostTTL, opts.Timeout)
	// With --worker the caps are counted in the store, for every worker
	// of the scan together; a slot is held at most as long as a lease,
	// so a killed worker's slots come free as its items do.
	ropts := scan.Options{Concurrency: flags.concurrency, Rate: flags.rate, CheckTimeout: opts.Timeout + 15*time.Second, Logger: log,
		Retry: scan.TransientCheckError, SharedRate: flags.worker, Owner: scan.NewOwner()}
	dests := scan.NewDestinations(flags.perDest)
	if flags.worker {
		dests = scan.NewSharedDestinations(st, id, ropts.Owner, flags.perDest, 2*ropts.CheckTimeout)
	}
	check := scan.InboundChecker(opts, dests, hosts)
	if !flags.quiet {
		pp := &scan.ProgressPrinter{W: e.stderr, TTY: e.stderr == os.Stderr && scan.IsTerminal(os.Stderr)}
		ropts.Progress = pp.Print
	}
	if flags.cpuProfile != "" {
		f, err := os.Create(flags.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	stats, runErr := scan.Run(e.ctx, st, id, check, ropts)
	if flags.cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if runErr != nil && e.ctx.Err() == nil {
		return runErr
	}
	cs := hosts.Stats()
	fmt.Fprintf(e.stderr, "scan %s: checked %d domains in %s (%.1f/s), %d failed, %d retried; host cache: %d probes, %d reused, %d shared in flight\n",
		id, stats.Checked, stats.Elapsed.Round(time.Millisecond), rateOf(stats), stats.Failed, stats.Retried, cs.Misses, cs.Hits, cs.Shared)

	// Outputs, also after an interruption (rows not checked yet say so).
	octx := context.WithoutCancel(e.ctx)
	paths, err := writeScanOutputs(octx, st, id, flags.out, flags.jsonl, flags.csv, flags.html)
	if err != nil {
		return err
	}
	for _, p := range paths {
		fmt.Fprintf(e.stderr, "scan %s: wrote %s\n", id, p)
	}
	if flags.json {
		enc := json.NewEncoder(e.stdout)
		if err := enc.Encode(map[string]any{
			"scan": id, "items": stats.Counts.Total(), "done": stats.Counts.Done, "errors": stats.Counts.Error,
			"pending": stats.Counts.Pending + stats.Counts.Running, "checked": stats.Checked, "failed": stats.Failed, "retried": stats.Retried,
			"lost":    stats.Lost,
			"seconds": stats.Elapsed.Seconds(), "rate": rateOf(stats),
			"host_cache": map[string]int64{"probes": cs.Misses, "reused": cs.Hits, "shared": cs.Shared},
			"outputs":    paths,
		}); err != nil {
			return err
		}
	}
	if e.ctx.Err() != nil {
		fmt.Fprintf(e.stderr, "scan %s: interrupted; %d items left; resume with: mailsec scan --resume --scan-id %s\n",
			id, stats.Counts.Pending+stats.Counts.Running, id)
		return e.ctx.Err()
	}
	return nil
}

func rateOf(s scan.Stats) float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Checked) / s.Elapsed.Seconds()
}

// writeScanOutputs writes the outputs asked for and returns their paths.
func writeScanOutputs(ctx context.Context, st *store.Store, id, dir, jsonlPath, csvPath, htmlPath string) ([]string, error) {
	if dir == "" && jsonlPath == "" && csvPath == "" && htmlPath == "" {
		dir = id
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if jsonlPath == "" {
			jsonlPath = filepath.Join(dir, "results.jsonl")
		}
		if csvPath == "" {
			csvPath = filepath.Join(dir, "results.csv")
		}
		if htmlPath == "" {
			htmlPath = filepath.Join(dir, "report.html")
		}
	}
	var paths []string
	for _, o := range []struct {
		path  string
		write func(io.Writer) error
	}{
		{jsonlPath, func(w io.Writer) error { return scan.WriteJSONL(ctx, st, id, w) }},
		{csvPath, func(w io.Writer) error { return scan.WriteCSV(ctx, st, id, w) }},
		{htmlPath, func(w io.Writer) error { return scan.WriteHTML(ctx, st, id, w, time.Now()) }},
	} {
		if o.path == "" {
			continue
		}
		if err := keyfile.Replace(o.path, 0o644, o.write); err != nil {
			return paths, err
		}
		paths = append(paths, o.path)
	}
	return paths, nil
}

// spool copies r to a temporary file and returns its name.
func spool(r io.Reader) (string, error) {
	f, err := os.CreateTemp("", "mailsec-scan-*.txt")
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("reading standard input: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
