package dane_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/mailsec/mailsec/internal/dane"
)

// A server presents a self-signed certificate. Its published TLSA
// records: a DANE-EE "3 1 1" record of its key, one of another key (left
// from a rollover), and a PKIX-EE record, which SMTP does not use (RFC
// 7672 §3.1.3). Verify authenticates the server by the first; the
// certificate's name and dates do not matter to DANE-EE (RFC 7672 §3.1.1).
func ExampleVerify() {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "not the MX name"},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), // long expired
	}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	cert, _ := x509.ParseCertificate(der)

	ours, _ := dane.Compute(dane.UsageDANEEE, dane.SelectorSPKI, dane.MatchSHA256, cert)
	old, _ := dane.ParseTLSA("3 1 1 " + fmt.Sprintf("%064x", 1))
	pkixEE, _ := dane.ParseTLSA("1 1 1 " + fmt.Sprintf("%064x", 2))

	// What a client that leaves verification to DANE receives.
	cs := tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}
	res, err := dane.Verify(cs, []dane.TLSA{old, ours, pkixEE}, "mx.example.org", time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	fmt.Println("verified:", res.Verified, err)
	for _, c := range res.Checks {
		fmt.Printf("%v %v %v: %s\n", c.Record.Usage, c.Record.Selector, c.Record.MatchingType, c.Reason)
	}
	// Output:
	// verified: true <nil>
	// DANE-EE SPKI SHA2-256: does not match the server certificate
	// DANE-EE SPKI SHA2-256: matches the server certificate
	// PKIX-EE SPKI SHA2-256: unusable: usage PKIX-EE is not used for SMTP (RFC 7672 §3.1.3)
}
