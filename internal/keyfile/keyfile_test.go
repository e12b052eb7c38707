package keyfile

import (
	"crypto/ecdsa"
	"crypto/x509"
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
