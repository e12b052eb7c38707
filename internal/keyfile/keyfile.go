// Package keyfile writes key and certificate files safely: atomically (a
// reader sees the whole file or none of it, never part of one), with the
// mode given (private by default), and either never over an existing file,
// so that concurrent first starts agree on one key, or replacing it whole.
package keyfile

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// WriteNew writes data to path with mode 0600 unless path already exists, in
// which case it returns nil and leaves the existing file alone (the caller
// reads it back). The file appears complete or not at all.
func WriteNew(path string, data []byte) error { return WriteNewMode(path, data, 0o600) }

// WriteNewMode is WriteNew with another mode, for files that are not
// secret (a CA's root certificate: 0644). Missing directories are made
// with the mode's read bits as search bits (0600 gives 0700, 0644 0755).
func WriteNewMode(path string, data []byte, mode fs.FileMode) error {
	tmp, err := writeTemp(path, mode, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	// link(2) fails with EEXIST instead of replacing: first writer wins.
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("installing %s: %w", path, err)
	}
	return nil
}

// Replace writes the file at path with write and mode, replacing any file
// there atomically (rename(2)): a reader sees the old or the new content.
func Replace(path string, mode fs.FileMode, write func(io.Writer) error) error {
	tmp, err := writeTemp(path, mode, write)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("installing %s: %w", path, err)
	}
	return nil
}

// writeTemp writes a temporary file beside path with mode and write, and
// syncs it, so that linking or renaming it installs a complete file. It
// returns the temporary file's name; on error it has removed it.
func writeTemp(path string, mode fs.FileMode, write func(io.Writer) error) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, mode.Perm()|(mode.Perm()&0o444)>>2); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return "", err
	}
	err = tmp.Chmod(mode)
	if err == nil {
		err = write(tmp)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return tmp.Name(), nil
}

// LoadOrCreateSigner reads a PKCS#8 private key from a PEM file, creating an
// ECDSA P-256 key there first if the file does not exist (mode 0600, never
// overwritten: two processes starting at once end with one key).
func LoadOrCreateSigner(path string) (crypto.Signer, error) {
	return LoadOrCreate(path, func() (crypto.Signer, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) })
}

// LoadOrCreate reads a PKCS#8 private key from a PEM file, creating it with
// generate first if the file does not exist (mode 0600, never overwritten:
// WriteNew). The key read back is returned, whoever wrote it.
func LoadOrCreate(path string, generate func() (crypto.Signer, error)) (crypto.Signer, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		key, err := generate()
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := WriteNew(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, err
		}
	}
	return ReadSigner(path)
}

// ReadSigner reads a PKCS#8 private key from a PEM file; a missing file is
// an error wrapping fs.ErrNotExist (nothing is created).
func ReadSigner(path string) (crypto.Signer, error) {
	block, err := ReadPEM(path)
	if err != nil {
		return nil, err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := parsed.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: %T is not a signing key", path, parsed)
	}
	return signer, nil
}

// ReadPEM returns the first PEM block of the file at path; a file without
// one is an error naming the path.
func ReadPEM(path string) (*pem.Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	return block, nil
}
