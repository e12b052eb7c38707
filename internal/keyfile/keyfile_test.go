package keyfile

import (
	"crypto/ecdsa"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestWriteNewNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret")
	if err := WriteNew(path, []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := WriteNew(path, []byte("second")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	info, _ := os.Stat(path)
	if string(b) != "first" || info.Mode().Perm() != 0o600 {
		t.Fatalf("content %q mode %v: want the first write, 0600", b, info.Mode())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".tmp-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestLoadOrCreateSigner(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k.key")
	var wg sync.WaitGroup
	keys := make([][]byte, 6)
	for i := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := LoadOrCreateSigner(path)
			if err != nil {
				t.Error(err)
				return
			}
			if _, ok := s.(*ecdsa.PrivateKey); !ok {
				t.Errorf("%T, want an ECDSA key", s)
			}
			keys[i], _ = x509.MarshalPKIXPublicKey(s.Public())
		}()
	}
	wg.Wait()
	for i := range keys {
		if string(keys[i]) != string(keys[0]) {
			t.Fatal("concurrent first starts created different keys")
		}
	}
	os.WriteFile(filepath.Join(filepath.Dir(path), "bad.key"), []byte("not pem"), 0o600)
	if _, err := LoadOrCreateSigner(filepath.Join(filepath.Dir(path), "bad.key")); err == nil {
		t.Fatal("a file without a PEM block was accepted")
	}
}

// TestWriteNewMode: the mode given is the file's, and a missing directory
// gets the matching search bits; an existing file still wins.
func TestWriteNewMode(t *testing.T) {
	for _, tc := range []struct {
		mode, dirMode os.FileMode
	}{
		{0o600, 0o700},
		{0o644, 0o755},
	} {
		dir := filepath.Join(t.TempDir(), "sub")
		path := filepath.Join(dir, "file")
		if err := WriteNewMode(path, []byte("first"), tc.mode); err != nil {
			t.Fatal(err)
		}
		if err := WriteNewMode(path, []byte("second"), tc.mode); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		fi, _ := os.Stat(path)
		di, _ := os.Stat(dir)
		// The umask may take bits from the directory, never add any.
		if string(b) != "first" || fi.Mode().Perm() != tc.mode || di.Mode().Perm()&^tc.dirMode != 0 || di.Mode().Perm()&0o700 != 0o700 {
			t.Errorf("mode %v: content %q, file %v, directory %v; want first, %v, %v", tc.mode, b, fi.Mode().Perm(), di.Mode().Perm(), tc.mode, tc.dirMode)
		}
	}
}

// TestReplace: the new content replaces the old whole; a failed write
// leaves the old file and no temporary file.
func TestReplace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "chain.pem")
	write := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	for _, s := range []string{"old", "new"} {
		if err := Replace(path, 0o644, write(s)); err != nil {
			t.Fatal(err)
		}
	}
	errWrite := errors.New("disk full")
	err := Replace(path, 0o644, func(w io.Writer) error {
		io.WriteString(w, "partial")
		return errWrite
	})
	if !errors.Is(err, errWrite) {
		t.Errorf("Replace with a failing write: %v, want %v", err, errWrite)
	}
	b, _ := os.ReadFile(path)
	info, _ := os.Stat(path)
	if string(b) != "new" || info.Mode().Perm() != 0o644 {
		t.Errorf("content %q mode %v: want new, 0644", b, info.Mode().Perm())
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".tmp-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
