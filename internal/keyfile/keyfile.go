// Package keyfile writes secret files safely: private, atomic, and never
// over an existing file, so that concurrent first starts agree on one key.
package keyfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteNew writes data to path with mode 0600 unless path already exists, in
// which case it returns nil and leaves the existing file alone (the caller
// reads it back). The file appears complete or not at all.
func WriteNew(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// link(2) fails with EEXIST instead of replacing: first writer wins.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("installing %s: %w", path, err)
	}
	return nil
}
