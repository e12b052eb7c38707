package tlsrpt_test

import (
	"fmt"

	"github.com/mailsec/mailsec/internal/tlsrpt"
)

// The TXT record at _smtp._tls.example.org (RFC 8460 §3): where to send
// TLS reports. Commas inside a URI must be %-encoded.
func ExampleParseRecord() {
	r, err := tlsrpt.ParseRecord("v=TLSRPTv1; rua=mailto:tlsrpt@example.org,https://reports.example.org/v1")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.RUA)
	fmt.Println(r)
	// Output:
	// [mailto:tlsrpt@example.org https://reports.example.org/v1]
	// v=TLSRPTv1; rua=mailto:tlsrpt@example.org,https://reports.example.org/v1
}
