package mtasts_test

import (
	"fmt"

	"github.com/mailsec/mailsec/internal/mtasts"
)

// A policy as served at https://mta-sts.example.org/.well-known/mta-sts.txt
// (RFC 8461 §3.2), and which MX hosts it lets a sender deliver to
// (§4.1: "*." matches exactly one more label).
func ExampleParsePolicy() {
	p, err := mtasts.ParsePolicy("version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmx: *.backup.example.org\r\nmax_age: 604800\r\n")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(p.Mode, p.MX, p.MaxAge)
	for _, host := range []string{"MAIL.example.org.", "mx1.backup.example.org", "a.mx1.backup.example.org", "evil.example.net"} {
		fmt.Printf("%s: %v\n", host, p.Matches(host))
	}
	// Output:
	// enforce [mail.example.org *.backup.example.org] 168h0m0s
	// MAIL.example.org.: true
	// mx1.backup.example.org: true
	// a.mx1.backup.example.org: false
	// evil.example.net: false
}

// A malformed policy: the error says what is wrong and where.
func ExampleParsePolicy_error() {
	_, err := mtasts.ParsePolicy("version: STSv1\nmode: enforcing\nmax_age: 86400\n")
	fmt.Println(err)
	// Output:
	// mtasts: malformed MTA-STS policy: line 2: mode "enforcing", want enforce, testing or none
}

func ExampleParseRecord() {
	r, err := mtasts.ParseRecord("v=STSv1; id=20250301T120000")
	fmt.Println(r.ID, err)
	fmt.Println(r)
	// Output:
	// 20250301T120000 <nil>
	// v=STSv1; id=20250301T120000
}
