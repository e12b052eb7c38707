package dnsname_test

import (
	"fmt"

	"github.com/mailsec/mailsec/internal/dnsname"
)

func ExampleCanonical() {
	fmt.Println(dnsname.Canonical("MX1.Example."))
	fmt.Println(dnsname.Canonical("mx1.example") == dnsname.Canonical("MX1.EXAMPLE."))
	fmt.Printf("%q\n", dnsname.Canonical("."))
	// Output:
	// mx1.example
	// true
	// ""
}

func ExampleCanonicalFQDN() {
	fmt.Println(dnsname.CanonicalFQDN("MX1.Example"))
	// Output:
	// mx1.example.
}
