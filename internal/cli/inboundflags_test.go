package cli

import (
	"errors"
	"flag"
	"io"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/config"
)

func TestInboundFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		resolver string
		timeout  time.Duration
		usage    bool
	}{
		{args: []string{"--resolver", "127.0.0.53"}, resolver: "127.0.0.53:53"},
		{args: []string{"--resolver", "[::1]:5353"}, resolver: "[::1]:5353"},
		{args: []string{"--resolver", "resolver.example:53"}, usage: true},
		{args: []string{"--timeout", "5s"}, timeout: 5 * time.Second},
		{args: []string{"--timeout", "2h"}, usage: true},
		{args: []string{"--timeout", "-1s"}, usage: true},
		{args: []string{"--roots", "/nonexistent/roots.pem"}, usage: true},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		inf := addInboundFlags(fs, "deadline")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		cfg := config.Default()
		opts, err := inf.options(&cfg)
		if tc.usage {
			if !errors.Is(err, errUsage) {
				t.Errorf("%v: error %v, want a usage error", tc.args, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if tc.resolver != "" && opts.Resolver != tc.resolver {
			t.Errorf("%v: resolver %q, want %q", tc.args, opts.Resolver, tc.resolver)
		}
		if tc.timeout != 0 && opts.Timeout != tc.timeout {
			t.Errorf("%v: timeout %s, want %s", tc.args, opts.Timeout, tc.timeout)
		}
	}
}
