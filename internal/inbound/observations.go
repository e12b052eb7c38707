package inbound

import (
	"time"

	"github.com/mailsec/mailsec/internal/inbound/checkreport"
)

// The observations of one address, as the SMTP/TLS probe (probe.go) fills
// them. They are the report's own types (internal/inbound/checkreport), not
// copies: the names are repeated here so that the probing code reads as
// the dialogue it is, and so that the probe's cache (Options.ProbeCache,
// internal/scan) can name what it keeps.
type (
	Address  = checkreport.Address
	TLSInfo  = checkreport.TLSInfo
	CertInfo = checkreport.CertInfo
	DANEInfo = checkreport.DANEInfo
)

// Statuses of an address (checkreport.StatusOK, …).
const (
	StatusOK          = checkreport.StatusOK
	StatusUnreachable = checkreport.StatusUnreachable
	StatusNotTestable = checkreport.StatusNotTestable
	StatusRefused     = checkreport.StatusRefused
	StatusError       = checkreport.StatusError
)

// ms converts a duration to milliseconds with 0.01 ms resolution, the unit
// of the report's timings_ms.
func ms(d time.Duration) float64 {
	return float64(d.Round(10*time.Microsecond)) / float64(time.Millisecond)
}
