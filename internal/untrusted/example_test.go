package untrusted_test

import (
	"fmt"

	"github.com/mailsec/mailsec/internal/untrusted"
)

func ExampleTruncate() {
	// "ü" is two bytes; the cut does not split it.
	fmt.Println(untrusted.Truncate("grüße", 3))
	fmt.Println(untrusted.Truncate("short", 10))
	// Output:
	// gr…
	// short
}

func ExamplePrintable() {
	banner := "220 mx.example ESMTP\r\n\x1b[2Jgotcha"
	fmt.Println(untrusted.Printable(banner, 24))
	// Output:
	// 220 mx.example ESMTP???[…
}
