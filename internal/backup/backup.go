// Package backup makes and restores a complete copy of a mailsec data
// directory while the service runs: the store (a consistent SQLite
// snapshot, VACUUM INTO) and every other file of the data directory — the
// DNSSEC zone keys (the DS at the parent names them), the persona keys (the
// TLSA records name them), the DKIM key of the result mails, the ACME
// account key, the certificates and the local CA — with a manifest of
// their SHA-256 sums, so that a damaged backup is refused before anything
// is written.
//
// Static certificate files (tls.static) and the configuration file live
// outside the data directory: they are the operator's, backed up with
// /etc.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/store"
)

// Format names the layout of a backup directory; Restore refuses others.
const Format = "mailsec-backup-1"

// ManifestName is the manifest's file name in a backup directory.
const ManifestName = "manifest.json"

// storeName is the store snapshot's name in a backup directory; the data
// directory's other files are under dataName.
const (
	storeName = "mailsec.db"
	dataName  = "data"
)

// Sentinel errors.
var (
	// ErrNotEmpty: the backup directory or the data directory to restore
	// into holds files already.
	ErrNotEmpty = errors.New("backup: directory is not empty")
	// ErrDamaged: a backup's file is missing, or its SHA-256 differs from
	// the manifest's, or the manifest is not a mailsec backup's.
	ErrDamaged = errors.New("backup: damaged or not a mailsec backup")
)

// File is one file of a backup.
type File struct {
	Path   string      `json:"path"` // slash-separated, relative to the backup directory
	Mode   fs.FileMode `json:"mode"`
	Bytes  int64       `json:"bytes"`
	SHA256 string      `json:"sha256"`
}

// Manifest describes a backup.
type Manifest struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	// Store is the snapshot of the store; Files the data directory's
	// other files, under "data/".
	Store File   `json:"store"`
	Files []File `json:"files"`
}

// Create writes a backup of cfg's data directory and store into dir, which
// must not exist or be empty. The key and certificate files are copied
// first, the store last: every key the snapshot records (zone_keys) is then
// in the backup, since keys are made before they are recorded and never
// change afterwards. Certificates replaced meanwhile are copied whole
// (they are replaced by rename) as the older or the newer one.
func Create(ctx context.Context, cfg *config.Config, dir string) (Manifest, error) {
	if err := emptyOrAbsent(dir); err != nil {
		return Manifest{}, err
	}
	if inside(dir, cfg.DataDir) {
		return Manifest{}, fmt.Errorf("backup: %s is inside the data directory %s", dir, cfg.DataDir)
	}
	if _, err := os.Stat(cfg.StorePath()); err != nil {
		return Manifest{}, fmt.Errorf("backup: the store: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	m := Manifest{Format: Format, Created: time.Now().UTC()}
	skip := storeFiles(cfg)
	err := filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() || slices.Contains(skip, path) {
			return nil // sockets, links and the store's files are not data
		}
		rel, err := filepath.Rel(cfg.DataDir, path)
		if err != nil {
			return err
		}
		f, err := copyFile(path, filepath.Join(dir, dataName, rel))
		if err != nil {
			return err
		}
		f.Path = dataName + "/" + filepath.ToSlash(rel)
		m.Files = append(m.Files, f)
		return nil
	})
	if err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	st, err := store.Open(ctx, cfg.StorePath())
	if err != nil {
		return Manifest{}, err
	}
	defer st.Close()
	snapshot := filepath.Join(dir, storeName)
	if err := st.Backup(ctx, snapshot); err != nil {
		return Manifest{}, err
	}
	if m.Store, err = describe(snapshot); err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	m.Store.Path = storeName
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return Manifest{}, err
	}
	// The manifest is written last: a backup without one is unfinished.
	if err := os.WriteFile(filepath.Join(dir, ManifestName), append(b, '\n'), 0o600); err != nil {
		return Manifest{}, fmt.Errorf("backup: %w", err)
	}
	return m, nil
}

// inside says whether path is below dir (both made absolute).
func inside(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != "." && filepath.IsLocal(rel)
}

// storeFiles are the store's file and its WAL and shared-memory files:
// copied as a snapshot, never as they are (a copy of a WAL database's
// files while it is written is not consistent).
func storeFiles(cfg *config.Config) []string {
	p := filepath.Clean(cfg.StorePath())
	return []string{p, p + "-wal", p + "-shm", p + "-journal"}
}

// RestoreOptions says what Restore may do to an existing data directory.
type RestoreOptions struct {
	// Replace: a data directory (or store) that exists and is not empty
	// is renamed aside (<path>.before-restore-<time>) instead of refused.
	// Nothing is deleted.
	Replace bool
}

// Restore verifies the backup in dir against its manifest, then restores
// it into cfg's data directory and store path, which must be absent or
// empty (or, with Replace, are moved aside). The files are written into a
// new directory beside the data directory and renamed into place, so an
// interrupted restore leaves no half-restored data directory. The service
// must not be running on the data directory.
func Restore(ctx context.Context, cfg *config.Config, dir string, opt RestoreOptions) (Manifest, error) {
	m, err := Verify(dir)
	if err != nil {
		return Manifest{}, err
	}
	storePath := filepath.Clean(cfg.StorePath())
	dataDir := filepath.Clean(cfg.DataDir)
	storeInside := inside(storePath, dataDir)
	targets := []string{dataDir}
	if !storeInside {
		targets = append(targets, storeFiles(cfg)...)
	}
	var aside []string
	for _, t := range targets {
		err := emptyOrAbsent(t)
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrNotEmpty) || !opt.Replace {
			return Manifest{}, fmt.Errorf("%w (restore -replace moves it aside)", err)
		}
		aside = append(aside, t)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dataDir), "."+filepath.Base(dataDir)+".restore-")
	if err != nil {
		return Manifest{}, fmt.Errorf("restore: %w", err)
	}
	defer os.RemoveAll(tmp) // empty after the rename; the remains of a failure otherwise
	for _, f := range m.Files {
		if err := ctx.Err(); err != nil {
			return Manifest{}, err
		}
		rel := strings.TrimPrefix(f.Path, dataName+"/")
		if _, err := copyFile(filepath.Join(dir, filepath.FromSlash(f.Path)), filepath.Join(tmp, filepath.FromSlash(rel))); err != nil {
			return Manifest{}, fmt.Errorf("restore: %w", err)
		}
	}
	storeTmp := filepath.Join(tmp, storeName)
	if storeInside {
		rel, _ := filepath.Rel(dataDir, storePath)
		storeTmp = filepath.Join(tmp, rel)
	}
	if _, err := copyFile(filepath.Join(dir, storeName), storeTmp); err != nil {
		return Manifest{}, fmt.Errorf("restore: %w", err)
	}
	// The restored store must open (migrations of an older backup run
	// here) and pass SQLite's integrity check before it is put in place.
	if err := checkStore(ctx, storeTmp); err != nil {
		return Manifest{}, err
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	for _, t := range aside {
		if err := os.Rename(t, t+".before-restore-"+stamp); err != nil {
			return Manifest{}, fmt.Errorf("restore: moving %s aside: %w", t, err)
		}
	}
	if !storeInside {
		if err := os.MkdirAll(filepath.Dir(storePath), 0o700); err != nil {
			return Manifest{}, fmt.Errorf("restore: %w", err)
		}
		if err := os.Rename(storeTmp, storePath); err != nil {
			return Manifest{}, fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Remove(dataDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("restore: %w", err) // an empty data directory is replaced
	}
	if err := os.Rename(tmp, dataDir); err != nil {
		return Manifest{}, fmt.Errorf("restore: %w", err)
	}
	return m, os.Chmod(dataDir, 0o700)
}

// checkStore opens the store at path and runs the integrity check.
func checkStore(ctx context.Context, path string) error {
	st, err := store.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("restore: the store: %w", err)
	}
	defer st.Close()
	stats, err := st.Stats(ctx, true)
	if err != nil {
		return fmt.Errorf("restore: the store: %w", err)
	}
	if stats.Integrity != "ok" {
		return fmt.Errorf("%w: the store's integrity check: %s", ErrDamaged, stats.Integrity)
	}
	return nil
}

// Verify reads dir's manifest and checks every file it names: present,
// inside dir, of the recorded size and SHA-256.
func Verify(dir string) (Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %s: %v", ErrDamaged, ManifestName, err)
	}
	if m.Format != Format {
		return Manifest{}, fmt.Errorf("%w: format %q, want %q", ErrDamaged, m.Format, Format)
	}
	if m.Store.Path != storeName {
		return Manifest{}, fmt.Errorf("%w: store %q, want %q", ErrDamaged, m.Store.Path, storeName)
	}
	for _, f := range append([]File{m.Store}, m.Files...) {
		// The manifest is read from a directory that may have travelled:
		// no path may leave the backup or the data directory.
		if !filepath.IsLocal(filepath.FromSlash(f.Path)) || (f.Path != storeName && !strings.HasPrefix(f.Path, dataName+"/")) {
			return Manifest{}, fmt.Errorf("%w: path %q", ErrDamaged, f.Path)
		}
		got, err := describe(filepath.Join(dir, filepath.FromSlash(f.Path)))
		if err != nil {
			return Manifest{}, fmt.Errorf("%w: %v", ErrDamaged, err)
		}
		if got.SHA256 != f.SHA256 || got.Bytes != f.Bytes {
			return Manifest{}, fmt.Errorf("%w: %s: SHA-256 %s (%d bytes), manifest %s (%d bytes)", ErrDamaged, f.Path, got.SHA256, got.Bytes, f.SHA256, f.Bytes)
		}
	}
	return m, nil
}

// emptyOrAbsent is nil when path does not exist or is an empty directory,
// an error wrapping ErrNotEmpty when it holds something (or is a file).
func emptyOrAbsent(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s exists", ErrNotEmpty, path)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w: %s", ErrNotEmpty, path)
	}
	return nil
}

// copyFile copies src to dst (created, parents 0700, never overwritten)
// with src's permission bits, synced, and describes what was written.
func copyFile(src, dst string) (File, error) {
	var f File
	err := readFile(src, func(in *os.File, mode fs.FileMode) error {
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		f, err = hashCopy(out, in, mode)
		if err == nil {
			err = out.Sync()
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		return File{}, fmt.Errorf("copy %s: %w", src, err)
	}
	return f, nil
}

// describe is the size and SHA-256 of the file at path.
func describe(path string) (File, error) {
	var f File
	err := readFile(path, func(in *os.File, mode fs.FileMode) (err error) {
		f, err = hashCopy(io.Discard, in, mode)
		return err
	})
	return f, err
}

// readFile opens path and hands it, with its permission bits, to use.
func readFile(path string, use func(*os.File, fs.FileMode) error) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	return use(in, fi.Mode().Perm())
}

// hashCopy copies in to w and describes what passed: size and SHA-256.
func hashCopy(w io.Writer, in io.Reader, mode fs.FileMode) (File, error) {
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), in)
	if err != nil {
		return File{}, err
	}
	return File{Mode: mode, Bytes: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
