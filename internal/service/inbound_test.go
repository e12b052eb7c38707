package service

import (
	"testing"

	"github.com/mailsec/mailsec/internal/config"
)

// TestInboundOptions: the [inbound] limits and the TLS-version probes
// reach the check's options.
func TestInboundOptions(t *testing.T) {
	tests := []struct {
		name            string
		tweak           func(*config.Inbound)
		hosts, addrs    int
		skipTLSVersions bool
	}{
		{"defaults", func(*config.Inbound) {}, 10, 4, false},
		{"limits and no version probes", func(i *config.Inbound) { i.MaxHosts, i.MaxAddresses, i.TLSVersions = 2, 1, false }, 2, 1, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := config.Default()
			tc.tweak(&cfg.Inbound)
			o, err := InboundOptions(&cfg)
			if err != nil {
				t.Fatal(err)
			}
			if o.MaxHosts != tc.hosts || o.MaxAddresses != tc.addrs || o.SkipTLSVersions != tc.skipTLSVersions {
				t.Errorf("max hosts %d, addresses %d, skip TLS versions %v; want %d, %d, %v",
					o.MaxHosts, o.MaxAddresses, o.SkipTLSVersions, tc.hosts, tc.addrs, tc.skipTLSVersions)
			}
		})
	}
}
