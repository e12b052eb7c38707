package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlanRoundTrip(t *testing.T) {
	kinds := map[string]int{}
	for i := range 5000 {
		d := plan(i)
		kinds[d.MXKind]++
		j, ok := parseDomain(d.Name)
		if !ok || j != i {
			t.Fatalf("parseDomain(%q) = %d %v, want %d", d.Name, j, ok, i)
		}
		if d.STS {
			p := d.policy()
			for _, m := range d.MX {
				if !strings.Contains(p, "mx: "+m+"\n") {
					t.Fatalf("policy of %s lacks %s:\n%s", d.Name, m, p)
				}
			}
		}
	}
	for _, k := range []string{mxSharedA, mxOwnA, mxOwnB, mxSharedC, mxSharedD, mxSharedE, mxNone, mxNull} {
		if kinds[k] == 0 {
			t.Errorf("no domain of kind %s in 5000", k)
		}
	}
	for _, bad := range []string{"x.example", "d1.s1.example", "d00001.nope.example", "d00001.s9.example"} {
		if _, ok := parseDomain(bad); ok {
			t.Errorf("parseDomain(%q) accepted", bad)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, a := range []string{"127.0.0.21:25", "127.255.0.1:443"} {
		if err := loopbackOnly(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	for _, a := range []string{"10.0.0.1:25", "[::1]:25", "192.0.2.1:443", "localhost:25"} {
		if err := loopbackOnly(a); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
}

func TestGen(t *testing.T) {
	dir := t.TempDir()
	if err := runGen([]string{"-n", "300", "-dir", dir}); err != nil {
		t.Fatal(err)
	}
	list, err := os.ReadFile(filepath.Join(dir, "domains.txt"))
	if err != nil || strings.Count(string(list), "\n") != 301 {
		t.Fatalf("domains.txt: %v", err)
	}
	za, err := os.ReadFile(filepath.Join(dir, "zones", "hoster-a.example.zone"))
	if err != nil || !strings.Contains(string(za), "_25._tcp.mx1 TLSA 3 1 1 ") {
		t.Fatalf("hoster-a zone: %v\n%s", err, za)
	}
}
