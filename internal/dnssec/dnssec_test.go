package dnssec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func mustRR(t *testing.T, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatal(err)
	}
	return rr
}

func TestKeyPersists(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir, "A.Example.", 3600)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir, "a.example.", 3600)
	if err != nil {
		t.Fatal(err)
	}
	if k1.KeyTag() != k2.KeyTag() || k1.DNSKEY.PublicKey != k2.DNSKEY.PublicKey {
		t.Fatal("reloaded key differs")
	}
	if k1.DNSKEY.Flags != 257 || k1.DNSKEY.Algorithm != dns.ECDSAP256SHA256 {
		t.Fatalf("want a CSK with algorithm 13: %s", k1.DNSKEY)
	}
	ds := k1.DS()
	if ds.DigestType != dns.SHA256 || ds.KeyTag != k1.KeyTag() || ds.Hdr.Name != "a.example." {
		t.Fatalf("DS %s", ds)
	}
	info, err := os.Stat(filepath.Join(dir, "a.example.private"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("private key file mode: %v %v", info.Mode(), err)
	}
}

// TestConcurrentFirstStart: processes creating the key at once must end
// with one key pair whose halves match.
func TestConcurrentFirstStart(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	tags := make([]uint16, 8)
	errs := make([]error, 8)
	for i := range tags {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := LoadOrCreateKey(dir, "race.example.", 3600)
			if err == nil {
				tags[i] = k.KeyTag()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i := range tags {
		if errs[i] != nil {
			t.Fatalf("loader %d: %v", i, errs[i])
		}
		if tags[i] != tags[0] {
			t.Fatalf("loaders disagree on the key: %v", tags)
		}
	}
}

func TestMismatchedKeyFilesAreRejected(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreateKey(dir, "one.example.", 3600); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if _, err := LoadOrCreateKey(other, "one.example.", 3600); err != nil {
		t.Fatal(err)
	}
	priv, _ := os.ReadFile(filepath.Join(other, "one.example.private"))
	if err := os.WriteFile(filepath.Join(dir, "one.example.private"), priv, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateKey(dir, "one.example.", 3600); err == nil {
		t.Fatal("a private key of another key pair was accepted")
	}
}

func TestSignVerifiesAndCaches(t *testing.T) {
	key, err := LoadOrCreateKey(t.TempDir(), "a.example.", 3600)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSigner(key, 10*24*time.Hour, 2*24*time.Hour, time.Hour)
	set := []dns.RR{mustRR(t, "a.example. 60 IN MX 10 mx4.a.example."), mustRR(t, "a.example. 60 IN MX 20 mx5.a.example.")}
	now := time.Now()
	sig, err := s.Sign(now, set)
	if err != nil {
		t.Fatal(err)
	}
	if err := sig.Verify(key.DNSKEY, set); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if !sig.ValidityPeriod(now) || sig.OrigTtl != 60 || sig.Labels != 2 || sig.SignerName != "a.example." {
		t.Fatalf("bad RRSIG fields: %s", sig)
	}
	again, _ := s.Sign(now.Add(time.Hour), set)
	if again != sig {
		t.Fatal("fresh signature was not reused from the cache")
	}
	// Less than refresh_before left: a new signature.
	later := now.Add(8*24*time.Hour + time.Minute)
	renewed, _ := s.Sign(later, set)
	if renewed == sig || !renewed.ValidityPeriod(later.Add(2*24*time.Hour)) {
		t.Fatalf("signature not refreshed before expiry: %s", renewed)
	}
	// A changed RRset (the next MX rotation) gets its own signature.
	set[0].(*dns.MX).Preference = 40
	other, _ := s.Sign(now, set)
	if other == sig {
		t.Fatal("changed RRset reused the old signature")
	}
	if err := other.Verify(key.DNSKEY, set); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign(now, nil); err == nil {
		t.Fatal("empty RRset signed")
	}
}

func TestCorruptFailsVerification(t *testing.T) {
	key, err := LoadOrCreateKey(t.TempDir(), "a.example.", 3600)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSigner(key, 24*time.Hour, time.Hour, time.Hour)
	set := []dns.RR{mustRR(t, "broken.a.example. 60 IN A 192.0.2.1")}
	sig, _ := s.Sign(time.Now(), set)
	bad := Corrupt(sig)
	if err := bad.Verify(key.DNSKEY, set); err == nil {
		t.Fatal("corrupted signature verifies")
	}
	if err := sig.Verify(key.DNSKEY, set); err != nil {
		t.Fatal("Corrupt changed the cached original")
	}
}

// TestLoadKeyNeverCreates: LoadKey reads an existing key and refuses,
// naming the path, when either file is gone, making nothing.
func TestLoadKeyNeverCreates(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadKey(dir, "a.example."); !errors.Is(err, ErrKeyMissing) || !strings.Contains(err.Error(), filepath.Join(dir, "a.example.key")) {
		t.Fatalf("no key: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("LoadKey made files: %v", entries)
	}
	made, err := LoadOrCreateKey(dir, "a.example.", 3600)
	if err != nil {
		t.Fatal(err)
	}
	k, err := LoadKey(dir, "A.example.")
	if err != nil || k.KeyTag() != made.KeyTag() {
		t.Fatalf("LoadKey: %v", err)
	}
	priv := filepath.Join(dir, "a.example.private")
	if err := os.Remove(priv); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(dir, "a.example."); !errors.Is(err, ErrKeyMissing) || !strings.Contains(err.Error(), priv) {
		t.Fatalf("private file gone: %v", err)
	}
}
