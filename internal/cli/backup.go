package cli

import (
	"flag"
	"fmt"
	"time"

	"github.com/mailsec/mailsec/internal/backup"
	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/service"
)

// runBackup: 'backup DIR' writes a consistent copy of the store and the
// data directory's keys and certificates into DIR (absent or empty) while
// the service runs.
func runBackup(e *env, args []string) error {
	dir, cfg, err := e.parseOneLoad(newFlags(e, "backup", "DIR"), args, "'backup DIR'")
	if err != nil {
		return err
	}
	m, err := backup.Create(e.ctx, &cfg, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backup written to %s: the store (%d bytes) and %d files of %s\n", dir, m.Store.Bytes, len(m.Files), cfg.DataDir)
	return nil
}

// runRestore: 'restore [-replace] DIR' verifies the backup in DIR and
// restores it into the configuration's data directory, which must be
// absent or empty unless -replace (then it is moved aside); it prints the
// restored zones' DS records, which must equal the parent's.
func runRestore(e *env, args []string) error {
	fs := newFlags(e, "restore", "[-replace] DIR")
	replace := fs.Bool("replace", false, "move a non-empty data directory (and store) aside as <path>.before-restore-<time> instead of refusing")
	dir, cfg, err := e.parseOneLoad(fs, args, "'restore [-replace] DIR'")
	if err != nil {
		return err
	}
	m, err := backup.Restore(e.ctx, &cfg, dir, backup.RestoreOptions{Replace: *replace})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "restored the backup of %s into %s (store %s, %d files)\n", m.Created.Format(time.RFC3339), cfg.DataDir, cfg.StorePath(), len(m.Files))
	zones, err := service.BuildZones(&cfg, time.Now(), service.RequireZoneKeys)
	if err != nil {
		return fmt.Errorf("the restored keys: %w", err)
	}
	fmt.Fprintf(e.stdout, "DS at the parent must be:\n%s\n", zones.KeyA.DS())
	if zones.KeyB != nil {
		fmt.Fprintln(e.stdout, zones.KeyB.DS())
	}
	return nil
}

// parseOneLoad parses the flags of a command taking one argument (before or
// after them), then loads the configuration.
func (e *env) parseOneLoad(fs *flag.FlagSet, args []string, usage string) (string, config.Config, error) {
	operands, err := parseArgs(fs, args)
	if err != nil {
		return "", config.Config{}, err
	}
	if len(operands) != 1 {
		return "", config.Config{}, fmt.Errorf("%w: %s", errUsage, usage)
	}
	cfg, err := e.load()
	return operands[0], cfg, err
}
