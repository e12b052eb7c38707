package persona

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
)

func TestTableMatchesDesign(t *testing.T) {
	tab := Table()
	if len(tab) != 7 {
		t.Fatalf("%d personas", len(tab))
	}
	inPolicy := ""
	for _, p := range tab {
		if p.InMTASTS {
			inPolicy += p.Host + " "
		}
	}
	if inPolicy != "mx4 mx5 mx6 " {
		t.Fatalf("MTA-STS policy hosts %q, want mx4 mx5 mx6 (DESIGN.md §2)", inPolicy)
	}
	if hosts := MXHosts(ZoneA); len(hosts) != 4 || hosts[0].Host != "mx3" || MXHosts(ZoneB)[0].Host != "mx7" {
		t.Fatalf("MX hosts %v", hosts)
	}
	if p, ok := ByNumber(4); !ok || p.TLSA != TLSACorrect || p.Cert != CertSelfSigned {
		t.Fatalf("persona 4: %+v", p)
	}
	tab[0].Number = 99
	if Table()[0].Number != 1 {
		t.Fatal("Table returns shared state")
	}
}

func TestKeysPersistAndOverride(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for n := 2; n <= 7; n++ {
		a, _ := k1.SPKISHA256(n)
		b, _ := k2.SPKISHA256(n)
		if len(a) != 32 || !bytes.Equal(a, b) {
			t.Fatalf("persona %d: key not persisted", n)
		}
	}
	if k1.Signer(1) != nil {
		t.Fatal("persona 1 (plain text) has no key")
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k3, err := LoadKeysWith(dir, map[int]crypto.Signer{6: other})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := k1.SPKISHA256(6)
	c, _ := k3.SPKISHA256(6)
	if bytes.Equal(a, c) || k3.Signer(6) != other {
		t.Fatal("override of persona 6's key (static certificate) not applied")
	}
}
