package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/dnsname"
	"github.com/mailsec/mailsec/internal/keyfile"
)

// The servers of the world (bench/scan/run starts them on these addresses,
// port 25, inside the benchmark's network namespace).
const (
	ipKnot   = "127.0.0.10"
	ipA      = "127.0.0.21" // Postfix, STARTTLS, CA-signed mx1/mx2.hoster-a and *.mx.hoster-a
	ipB      = "127.0.0.22" // Postfix, STARTTLS, CA-signed *.mx.hoster-b
	ipC      = "127.0.0.23" // Postfix, STARTTLS, self-signed with DANE-EE TLSA
	ipD      = "127.0.0.24" // Postfix without STARTTLS
	ipE      = "127.0.0.25" // mailsec's SMTP personas (self-signed persona 2)
	ipPolicy = "127.0.0.30" // the MTA-STS policy host
)

// Zones: customer zones (two signed, two not) and the hosters' zones.
var (
	customerZones = []string{"s1.example", "s2.example", "u1.example", "u2.example"}
	signedZones   = []string{"s1.example", "s2.example", "hoster-a.example", "hoster-c.example"}
	hosterZones   = []string{"hoster-a.example", "hoster-b.example", "hoster-c.example", "hoster-d.example", "hoster-e.example"}
	labels        = map[string]string{"s1.example": "authority", "u1.example": "authority", "s2.example": "law firm", "u2.example": "law firm"}
)

// MX kinds of a domain.
const (
	mxSharedA = "shared-a" // mx1 and mx2.hoster-a (many domains: the host cache helps)
	mxOwnA    = "own-a"    // its own name under mx.hoster-a (one probe per domain)
	mxOwnB    = "own-b"    // its own name under mx.hoster-b (unsigned)
	mxSharedC = "shared-c" // mx.hoster-c: self-signed with DANE
	mxSharedD = "shared-d" // mx.hoster-d: no STARTTLS
	mxSharedE = "shared-e" // mx.hoster-e: mailsec's personas
	mxNone    = "implicit" // no MX: the domain's own A record (at ipA)
	mxNull    = "null"     // MX 0 . (RFC 7505)
)

// domain is the plan of domain i.
type domain struct {
	I      int
	Name   string // d00042.s1.example
	Zone   string
	Label  string
	MXKind string
	MX     []string // host names
	TLSA   string   // "", "good" or "wrong" (own-a only)
	STS    bool     // publishes MTA-STS
}

// mix is a deterministic pseudo-random number in [0,1) for (i, salt).
func mix(i, salt int) float64 {
	x := uint64(i)*0x9E3779B97F4A7C15 + uint64(salt)*0xBF58476D1CE4E5B9
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	x ^= x >> 31
	return float64(x>>11) / float64(1<<53)
}

func plan(i int) domain {
	var z string
	if mix(i, 1) < 0.4 {
		z = customerZones[i%2] // signed
	} else {
		z = customerZones[2+i%2]
	}
	d := domain{I: i, Zone: z, Label: labels[z], Name: fmt.Sprintf("d%05d.%s", i, z)}
	own := fmt.Sprintf("d%05d-%s", i, strings.TrimSuffix(z, ".example"))
	r := mix(i, 2)
	switch {
	case r < 0.35:
		d.MXKind, d.MX = mxSharedA, []string{"mx1.hoster-a.example", "mx2.hoster-a.example"}
	case r < 0.60:
		d.MXKind, d.MX = mxOwnA, []string{own + ".mx.hoster-a.example"}
		switch t := mix(i, 3); {
		case t < 0.5:
			d.TLSA = "good"
		case t < 0.6:
			d.TLSA = "wrong"
		}
	case r < 0.70:
		d.MXKind, d.MX = mxOwnB, []string{own + ".mx.hoster-b.example"}
	case r < 0.78:
		d.MXKind, d.MX = mxSharedC, []string{"mx.hoster-c.example"}
	case r < 0.86:
		d.MXKind, d.MX = mxSharedD, []string{"mx.hoster-d.example"}
	case r < 0.96:
		d.MXKind, d.MX = mxSharedE, []string{"mx.hoster-e.example"}
	case r < 0.98:
		d.MXKind = mxNone
	default:
		d.MXKind = mxNull
	}
	d.STS = len(d.MX) > 0 && mix(i, 4) < 0.2
	return d
}

// parseDomain is the inverse of the naming: "d00042.s1.example" → 42.
func parseDomain(name string) (int, bool) {
	name = dnsname.Canonical(name)
	first, zone, ok := strings.Cut(name, ".")
	if !ok || len(first) != 6 || first[0] != 'd' {
		return 0, false
	}
	i, err := strconv.Atoi(first[1:])
	if err != nil {
		return 0, false
	}
	if plan(i).Zone != zone {
		return 0, false
	}
	return i, true
}

// policy is domain d's MTA-STS policy (RFC 8461 §3.2): enforce, its MX.
func (d domain) policy() string {
	var b strings.Builder
	b.WriteString("version: STSv1\nmode: enforce\n")
	for _, m := range d.MX {
		b.WriteString("mx: " + m + "\n")
	}
	b.WriteString("max_age: 86400\n")
	return b.String()
}

// ---------------------------------------------------------------- PKI

type pki struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func writeKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

// readPEM returns the bytes of the first PEM block of a file.
func readPEM(path string) ([]byte, error) {
	blk, err := keyfile.ReadPEM(path)
	if err != nil {
		return nil, err
	}
	return blk.Bytes, nil
}

func loadPKI(dir string) (*pki, error) {
	c, err := readPEM(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return nil, err
	}
	k, err := readPEM(filepath.Join(dir, "ca.key"))
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(c)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	ek, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("ca.key is not ECDSA")
	}
	return &pki{caCert: cert, caKey: ek}, nil
}

var serial = time.Now().UnixNano()

func template(cn string, names []string, ca bool) *x509.Certificate {
	serial++
	t := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(2 * 365 * 24 * time.Hour),
		DNSNames: names, BasicConstraintsValid: true,
	}
	if ca {
		t.IsCA, t.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageCRLSign
	} else {
		t.KeyUsage, t.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	return t
}

// leaf issues a certificate for names (signed by the CA, or self-signed
// when p is nil) and returns the DER and key.
func (p *pki) leaf(names []string, key *ecdsa.PrivateKey) ([]byte, error) {
	t := template(names[0], names, false)
	if p == nil {
		return x509.CreateCertificate(rand.Reader, t, t, &key.PublicKey, key)
	}
	return x509.CreateCertificate(rand.Reader, t, p.caCert, &key.PublicKey, p.caKey)
}

// makePKI writes ca, a, b (CA-signed) and c (self-signed) into dir once.
func makePKI(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "c.pem")); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := newKey()
	if err != nil {
		return err
	}
	t := template("mailsec scan bench CA", nil, true)
	caDER, err := x509.CreateCertificate(rand.Reader, t, t, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	if err := writeKey(filepath.Join(dir, "ca.key"), caKey); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER, 0o644); err != nil {
		return err
	}
	p, err := loadPKI(dir)
	if err != nil {
		return err
	}
	for _, s := range []struct {
		name  string
		names []string
		self  bool
	}{
		{"a", []string{"mx1.hoster-a.example", "mx2.hoster-a.example", "*.mx.hoster-a.example"}, false},
		{"b", []string{"*.mx.hoster-b.example"}, false},
		{"c", []string{"mx.hoster-c.example"}, true},
	} {
		k, err := newKey()
		if err != nil {
			return err
		}
		issuer := p
		if s.self {
			issuer = nil
		}
		der, err := issuer.leaf(s.names, k)
		if err != nil {
			return err
		}
		if err := writeKey(filepath.Join(dir, s.name+".key"), k); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(dir, s.name+".pem"), "CERTIFICATE", der, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// spki311 is the TLSA 3 1 1 data of a certificate file.
func spki311(path string) (string, error) {
	der, err := readPEM(path)
	if err != nil {
		return "", err
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(h[:]), nil
}

// ---------------------------------------------------------------- gen

func runGen(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	n := fs.Int("n", 10000, "domains")
	dir := fs.String("dir", "", "output directory (pki/ is kept once made)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || *n < 1 || *n > 99999 {
		return errors.New("gen needs -dir and -n 1..99999")
	}
	pk := filepath.Join(*dir, "pki")
	if err := makePKI(pk); err != nil {
		return err
	}
	tlsaA, err := spki311(filepath.Join(pk, "a.pem"))
	if err != nil {
		return err
	}
	tlsaC, err := spki311(filepath.Join(pk, "c.pem"))
	if err != nil {
		return err
	}
	zdir := filepath.Join(*dir, "zones")
	if err := os.MkdirAll(zdir, 0o755); err != nil {
		return err
	}
	zf := map[string]*bufio.Writer{}
	var files []*os.File
	for _, z := range append(append([]string{}, customerZones...), hosterZones...) {
		f, err := os.Create(filepath.Join(zdir, z+".zone"))
		if err != nil {
			return err
		}
		files = append(files, f)
		w := bufio.NewWriter(f)
		zf[z] = w
		fmt.Fprintf(w, "$ORIGIN %s.\n$TTL 3600\n@ SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n@ NS ns.%s.\nns A %s\n", z, z, z, z, ipKnot)
	}
	ha, hc := zf["hoster-a.example"], zf["hoster-c.example"]
	fmt.Fprintf(ha, "mx1 A %s\nmx2 A %s\n_25._tcp.mx1 TLSA 3 1 1 %s\n", ipA, ipA, tlsaA)
	fmt.Fprintf(zf["hoster-b.example"], "; per-domain hosts under mx\n")
	fmt.Fprintf(hc, "mx A %s\n_25._tcp.mx TLSA 3 1 1 %s\n", ipC, tlsaC)
	fmt.Fprintf(zf["hoster-d.example"], "mx A %s\n", ipD)
	fmt.Fprintf(zf["hoster-e.example"], "mx A %s\n", ipE)

	list, err := os.Create(filepath.Join(*dir, "domains.txt"))
	if err != nil {
		return err
	}
	lw := bufio.NewWriter(list)
	fmt.Fprintf(lw, "# bench/scan: %d synthetic domains (benchtool gen)\n", *n)
	counts := map[string]int{}
	for i := range *n {
		d := plan(i)
		counts[d.MXKind]++
		w := zf[d.Zone]
		rel := strings.TrimSuffix(d.Name, "."+d.Zone)
		fmt.Fprintf(lw, "%s,%s\n", d.Name, d.Label)
		switch d.MXKind {
		case mxNull:
			fmt.Fprintf(w, "%s MX 0 .\n", rel)
		case mxNone:
			fmt.Fprintf(w, "%s A %s\n", rel, ipA)
		default:
			for k, m := range d.MX {
				fmt.Fprintf(w, "%s MX %d %s.\n", rel, 10*(k+1), m)
			}
		}
		fmt.Fprintf(w, "%s TXT \"v=spf1 mx -all\"\n_dmarc.%s TXT \"v=DMARC1; p=none\"\n", rel, rel)
		if d.STS {
			fmt.Fprintf(w, "_mta-sts.%s TXT \"v=STSv1; id=%d\"\nmta-sts.%s A %s\n", rel, 20260101+i, rel, ipPolicy)
			fmt.Fprintf(w, "_smtp._tls.%s TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@%s\"\n", rel, d.Name)
		}
		switch d.MXKind {
		case mxOwnA:
			h := strings.TrimSuffix(d.MX[0], ".hoster-a.example")
			fmt.Fprintf(ha, "%s A %s\n", h, ipA)
			switch d.TLSA {
			case "good":
				fmt.Fprintf(ha, "_25._tcp.%s TLSA 3 1 1 %s\n", h, tlsaA)
			case "wrong":
				fmt.Fprintf(ha, "_25._tcp.%s TLSA 3 1 1 %064x\n", h, i)
			}
		case mxOwnB:
			fmt.Fprintf(zf["hoster-b.example"], "%s A %s\n", strings.TrimSuffix(d.MX[0], ".hoster-b.example"), ipB)
		}
	}
	if err := lw.Flush(); err != nil {
		return err
	}
	if err := list.Close(); err != nil {
		return err
	}
	for i, z := range append(append([]string{}, customerZones...), hosterZones...) {
		if err := zf[z].Flush(); err != nil {
			return err
		}
		if err := files[i].Close(); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "benchtool gen: %d domains in %s; MX kinds %v\n", *n, *dir, counts)
	return nil
}
