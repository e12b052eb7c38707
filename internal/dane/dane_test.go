package dane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

var now = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

// certSpec describes a certificate made for a test.
type certSpec struct {
	cn        string
	names     []string
	ca        bool
	notBefore time.Time
	notAfter  time.Time
}

type keyCert struct {
	key  crypto.Signer
	cert *x509.Certificate
}

// mint makes a certificate for spec, signed by parent (self-signed when
// parent is nil).
func mint(t *testing.T, spec certSpec, parent *keyCert) *keyCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if spec.notBefore.IsZero() {
		spec.notBefore = now.Add(-24 * time.Hour)
	}
	if spec.notAfter.IsZero() {
		spec.notAfter = now.Add(24 * time.Hour)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: spec.cn}, DNSNames: spec.names,
		NotBefore: spec.notBefore, NotAfter: spec.notAfter, BasicConstraintsValid: true,
	}
	if spec.ca {
		tmpl.IsCA, tmpl.KeyUsage = true, x509.KeyUsageCertSign
	} else {
		tmpl.KeyUsage, tmpl.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	}
	signer, issuer := crypto.Signer(key), tmpl
	if parent != nil {
		signer, issuer = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &keyCert{key: key, cert: cert}
}

func tlsa(t *testing.T, u Usage, s Selector, m MatchingType, c *keyCert) TLSA {
	t.Helper()
	r, err := Compute(u, s, m, c.cert)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func state(chain ...*keyCert) tls.ConnectionState {
	var cs tls.ConnectionState
	for _, c := range chain {
		cs.PeerCertificates = append(cs.PeerCertificates, c.cert)
	}
	return cs
}

func TestVerify(t *testing.T) {
	const host = "mx.example.org"
	// DANE-EE material: a self-signed server certificate whose name and
	// dates are wrong on purpose (DANE-EE checks neither).
	self := mint(t, certSpec{cn: "whatever", names: []string{"other.example"}, notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-24 * time.Hour)}, nil)
	stranger := mint(t, certSpec{cn: "stranger", names: []string{host}}, nil)
	// DANE-TA material: root → intermediate → leaf.
	root := mint(t, certSpec{cn: "root", ca: true}, nil)
	inter := mint(t, certSpec{cn: "intermediate", ca: true}, root)
	leaf := mint(t, certSpec{cn: host, names: []string{host}}, inter)
	wildLeaf := mint(t, certSpec{cn: "wild", names: []string{"*.example.org"}}, inter)
	wrongName := mint(t, certSpec{cn: "mx.example.net", names: []string{"mx.example.net"}}, inter)
	expired := mint(t, certSpec{cn: host, names: []string{host}, notBefore: now.Add(-48 * time.Hour), notAfter: now.Add(-time.Hour)}, inter)
	otherRoot := mint(t, certSpec{cn: "other root", ca: true}, nil)

	bad311 := TLSA{Usage: UsageDANEEE, Selector: SelectorSPKI, MatchingType: MatchSHA256, Data: make([]byte, 32)}

	tests := []struct {
		name    string
		cs      tls.ConnectionState
		records []TLSA
		err     error
		matched int // index of the record that must be Matched; -1: none
		reasons []string
	}{
		{name: "3 1 1 self-signed, wrong name and expired", cs: state(self),
			records: []TLSA{tlsa(t, UsageDANEEE, SelectorSPKI, MatchSHA256, self)}, matched: 0},
		{name: "3 0 1", cs: state(self), records: []TLSA{tlsa(t, UsageDANEEE, SelectorCert, MatchSHA256, self)}, matched: 0},
		{name: "3 1 2", cs: state(self), records: []TLSA{tlsa(t, UsageDANEEE, SelectorSPKI, MatchSHA512, self)}, matched: 0},
		{name: "3 0 0", cs: state(self), records: []TLSA{tlsa(t, UsageDANEEE, SelectorCert, MatchFull, self)}, matched: 0},
		{name: "3 1 1 of another key", cs: state(self), records: []TLSA{tlsa(t, UsageDANEEE, SelectorSPKI, MatchSHA256, stranger)},
			err: ErrNoMatch, matched: -1, reasons: []string{"does not match the server certificate"}},
		{name: "3 1 1 matching an issuer does not count", cs: state(leaf, inter), records: []TLSA{tlsa(t, UsageDANEEE, SelectorSPKI, MatchSHA256, inter)},
			err: ErrNoMatch, matched: -1},
		{name: "wrong then right: the second authenticates", cs: state(self),
			records: []TLSA{bad311, tlsa(t, UsageDANEEE, SelectorSPKI, MatchSHA256, self)}, matched: 1,
			reasons: []string{"does not match", "matches the server certificate"}},

		{name: "2 0 1 root in chain", cs: state(leaf, inter, root), records: []TLSA{tlsa(t, UsageDANETA, SelectorCert, MatchSHA256, root)}, matched: 0,
			reasons: []string{"depth 2"}},
		{name: "2 1 1 intermediate", cs: state(leaf, inter), records: []TLSA{tlsa(t, UsageDANETA, SelectorSPKI, MatchSHA256, inter)}, matched: 0,
			reasons: []string{"depth 1"}},
		{name: "2 1 1 wildcard name", cs: state(wildLeaf, inter), records: []TLSA{tlsa(t, UsageDANETA, SelectorSPKI, MatchSHA256, inter)}, matched: 0},
		{name: "2 0 1 wrong name", cs: state(wrongName, inter, root), records: []TLSA{tlsa(t, UsageDANETA, SelectorCert, MatchSHA256, root)},
			err: ErrNoMatch, matched: -1, reasons: []string{"does not validate under it"}},
		{name: "2 1 1 wrong name", cs: state(wrongName, inter), records: []TLSA{tlsa(t, UsageDANETA, SelectorSPKI, MatchSHA256, inter)},
			err: ErrNoMatch, matched: -1, reasons: []string{"mx.example.net"}},
		{name: "2 1 1 expired server certificate", cs: state(expired, inter), records: []TLSA{tlsa(t, UsageDANETA, SelectorSPKI, MatchSHA256, inter)},
			err: ErrNoMatch, matched: -1, reasons: []string{"expired"}},
		{name: "2 0 1 trust anchor not served", cs: state(leaf, inter), records: []TLSA{tlsa(t, UsageDANETA, SelectorCert, MatchSHA256, root)},
			err: ErrNoMatch, matched: -1, reasons: []string{"matches no certificate"}},
		{name: "2 0 1 of another CA", cs: state(leaf, inter, root), records: []TLSA{tlsa(t, UsageDANETA, SelectorCert, MatchSHA256, otherRoot)},
			err: ErrNoMatch, matched: -1},
		{name: "2 0 1 matching only the leaf", cs: state(leaf, inter), records: []TLSA{tlsa(t, UsageDANETA, SelectorCert, MatchSHA256, leaf)},
			err: ErrNoMatch, matched: -1, reasons: []string{"matches only the server certificate"}},
		{name: "2 1 1 without any issuer served", cs: state(leaf), records: []TLSA{tlsa(t, UsageDANETA, SelectorSPKI, MatchSHA256, inter)},
			err: ErrNoMatch, matched: -1, reasons: []string{"no issuer certificate"}},

		{name: "usages 0 and 1 are ignored even when they match", cs: state(leaf, inter, root),
			records: []TLSA{tlsa(t, UsagePKIXTA, SelectorCert, MatchSHA256, root), tlsa(t, UsagePKIXEE, SelectorSPKI, MatchSHA256, leaf)},
			err:     ErrNoUsableRecords, matched: -1, reasons: []string{"RFC 7672 §3.1.3", "RFC 7672 §3.1.3"}},
		{name: "unusable records beside a usable one", cs: state(self),
			records: []TLSA{tlsa(t, UsagePKIXEE, SelectorSPKI, MatchSHA256, self), tlsa(t, UsageDANEEE, SelectorSPKI, MatchSHA256, self)}, matched: 1,
			reasons: []string{"unusable", "matches"}},
		{name: "unknown usage, selector, matching type; short digest", cs: state(self),
			records: []TLSA{
				{Usage: 4, Selector: 1, MatchingType: 1, Data: make([]byte, 32)},
				{Usage: 3, Selector: 2, MatchingType: 1, Data: make([]byte, 32)},
				{Usage: 3, Selector: 1, MatchingType: 3, Data: make([]byte, 32)},
				{Usage: 3, Selector: 1, MatchingType: 1, Data: make([]byte, 31)},
				{Usage: 3, Selector: 1, MatchingType: 2, Data: make([]byte, 32)},
				{Usage: 3, Selector: 0, MatchingType: 0},
			},
			err: ErrNoUsableRecords, matched: -1,
			reasons: []string{"unknown usage 4", "unknown selector 2", "unknown matching type 3", "31 octets", "want 64", "empty data"}},
		{name: "no records", cs: state(self), err: ErrNoUsableRecords, matched: -1},
		{name: "no certificate", cs: tls.ConnectionState{}, records: []TLSA{bad311}, err: ErrNoCertificate, matched: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Verify(tc.cs, tc.records, host+".", now)
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("Verify error %v, want %v\n%s", err, tc.err, res.Summary())
			}
			if res.Verified != (tc.matched >= 0) {
				t.Fatalf("Verified = %v, want %v\n%s", res.Verified, tc.matched >= 0, res.Summary())
			}
			if len(res.Checks) != len(tc.records) {
				t.Fatalf("%d checks for %d records", len(res.Checks), len(tc.records))
			}
			for i, c := range res.Checks {
				if c.Matched != (i == tc.matched) {
					t.Errorf("record %d matched = %v: %s", i, c.Matched, c.Reason)
				}
				if i < len(tc.reasons) && !strings.Contains(c.Reason, tc.reasons[i]) {
					t.Errorf("record %d reason %q lacks %q", i, c.Reason, tc.reasons[i])
				}
			}
			if tc.matched >= 0 && !reflect.DeepEqual(res.Matched, tc.records[tc.matched]) {
				t.Errorf("Matched = %v, want record %d", res.Matched, tc.matched)
			}
		})
	}
}

// TestVerifyOverTLS runs a real handshake: a client that skips Go's own
// verification sees the chain as served, which is what Verify expects.
func TestVerifyOverTLS(t *testing.T) {
	root := mint(t, certSpec{cn: "root", ca: true, notBefore: time.Now().Add(-time.Hour), notAfter: time.Now().Add(time.Hour)}, nil)
	leaf := mint(t, certSpec{cn: "mx.example.org", names: []string{"mx.example.org"}, notBefore: time.Now().Add(-time.Hour), notAfter: time.Now().Add(time.Hour)}, root)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{
		Certificate: [][]byte{leaf.cert.Raw, root.cert.Raw}, PrivateKey: leaf.key,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	raw, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{ServerName: "mx.example.org", InsecureSkipVerify: true})
	defer c.Close()
	if err := c.Handshake(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []TLSA{tlsa(t, UsageDANETA, SelectorCert, MatchSHA256, root), tlsa(t, UsageDANEEE, SelectorSPKI, MatchSHA256, leaf)} {
		if res, err := Verify(c.ConnectionState(), []TLSA{r}, "mx.example.org", time.Now()); err != nil || !res.Verified {
			t.Errorf("%v: %v %s", r, err, res.Summary())
		}
	}
}

func TestRecordForms(t *testing.T) {
	r, err := ParseTLSA("3 1 1 0123456789abcdef 0123456789ABCDEF0123456789abcdef0123456789abcdef")
	if err != nil {
		t.Fatal(err)
	}
	if r.Usage != UsageDANEEE || r.Selector != SelectorSPKI || r.MatchingType != MatchSHA256 || len(r.Data) != 32 {
		t.Fatalf("parsed %+v", r)
	}
	if again, err := ParseTLSA(r.String()); err != nil || !reflect.DeepEqual(again, r) {
		t.Fatalf("round trip %q: %+v %v", r.String(), again, err)
	}
	for _, bad := range []string{"", "3 1 1", "3 1 x 00", "256 1 1 00", "3 1 1 0g"} {
		if _, err := ParseTLSA(bad); !errors.Is(err, ErrBadRecord) {
			t.Errorf("ParseTLSA(%q) = %v", bad, err)
		}
	}
	rr, err := dns.NewRR("_25._tcp.mx.example.org. 300 IN TLSA " + r.String())
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := dns.NewRR("_25._tcp.mx.example.org. 300 IN CNAME x.example.org.")
	got, malformed := FromRRs([]dns.RR{sig, rr, &dns.TLSA{Certificate: "zz"}})
	if malformed != 1 || len(got) != 1 || !reflect.DeepEqual(got[0], r) {
		t.Fatalf("FromRRs = %+v, %d", got, malformed)
	}
	if u := Usable([]TLSA{{Usage: 1}, r, {Usage: 0}}); len(u) != 1 || !reflect.DeepEqual(u[0], r) {
		t.Fatalf("Usable = %+v", u)
	}
	if s := r.Short(); !strings.HasPrefix(s, "3 1 1 0123456789abcdef") || !strings.HasSuffix(s, "…") {
		t.Fatalf("Short = %q", s)
	}
}

// TestMnemonics: the field values print as RFC 7218 names them, and a
// value without a name prints as its number.
func TestMnemonics(t *testing.T) {
	for _, tc := range []struct {
		v    fmt.Stringer
		want string
	}{
		{UsagePKIXTA, "PKIX-TA"}, {UsagePKIXEE, "PKIX-EE"}, {UsageDANETA, "DANE-TA"}, {UsageDANEEE, "DANE-EE"},
		{Usage(4), "usage 4"}, {Usage(255), "usage 255"},
		{SelectorCert, "Cert"}, {SelectorSPKI, "SPKI"}, {Selector(2), "selector 2"},
		{MatchFull, "Full"}, {MatchSHA256, "SHA2-256"}, {MatchSHA512, "SHA2-512"}, {MatchingType(3), "matching type 3"},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("%T(%d).String() = %q, want %q", tc.v, tc.v, got, tc.want)
		}
	}
}
