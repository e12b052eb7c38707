package backup

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/config"
	"github.com/mailsec/mailsec/internal/store"
)

// testConfig is a configuration whose data directory holds a store and a
// key file.
func testConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	st, err := store.Open(t.Context(), cfg.StorePath())
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if err := os.MkdirAll(cfg.KeyDir(), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg.KeyDir(), "zone.key"), []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cfg
}

// TestVerifyRefuses: a manifest is read from a directory that may have
// travelled: paths leaving the backup, changed files, another format and
// a missing manifest are refused (ErrDamaged) before anything is
// restored.
func TestVerifyRefuses(t *testing.T) {
	cfg := testConfig(t)
	dir := filepath.Join(t.TempDir(), "backup")
	m, err := Create(t.Context(), cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != 1 || m.Files[0].Path != "data/keys/zone.key" || m.Files[0].Mode != 0o600 {
		t.Fatalf("manifest files: %+v", m.Files)
	}
	if _, err := Verify(dir); err != nil {
		t.Fatalf("a fresh backup: %v", err)
	}
	write := func(t *testing.T, m Manifest) {
		t.Helper()
		b, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(dir, ManifestName), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		edit func(*Manifest)
		want string
	}{
		{"path leaving the backup", func(m *Manifest) { m.Files[0].Path = "data/../../etc/passwd" }, "path"},
		{"absolute path", func(m *Manifest) { m.Files[0].Path = "/etc/passwd" }, "path"},
		{"path outside data/", func(m *Manifest) { m.Files[0].Path = "manifest.json" }, "path"},
		{"changed file", func(m *Manifest) { m.Files[0].SHA256 = strings.Repeat("0", 64) }, "SHA-256"},
		{"other format", func(m *Manifest) { m.Format = "tarball" }, "format"},
		{"other store name", func(m *Manifest) { m.Store.Path = "data/keys/zone.key" }, "store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := m
			bad.Files = append([]File(nil), m.Files...)
			tt.edit(&bad)
			write(t, bad)
			defer write(t, m)
			if _, err := Verify(dir); !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Verify: %v, want ErrDamaged naming %q", err, tt.want)
			}
			other := config.Default()
			other.DataDir = filepath.Join(t.TempDir(), "data")
			if _, err := Restore(t.Context(), &other, dir, RestoreOptions{}); !errors.Is(err, ErrDamaged) {
				t.Errorf("Restore: %v, want ErrDamaged", err)
			}
			if _, err := os.Stat(other.DataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused restore made %s", other.DataDir)
			}
		})
	}
	if err := os.Remove(filepath.Join(dir, ManifestName)); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(dir); !errors.Is(err, ErrDamaged) {
		t.Errorf("no manifest: %v", err)
	}
}

// TestCreateRefuses: a backup directory that holds files, or lies inside
// the data directory (it would copy itself), is refused.
func TestCreateRefuses(t *testing.T) {
	cfg := testConfig(t)
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Create(t.Context(), cfg, full); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("non-empty directory: %v", err)
	}
	if _, err := Create(t.Context(), cfg, filepath.Join(cfg.DataDir, "backup")); err == nil || !strings.Contains(err.Error(), "inside the data directory") {
		t.Errorf("inside the data directory: %v", err)
	}
}
