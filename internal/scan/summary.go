package scan

import (
	"encoding/json"
	"fmt"

	"github.com/mailsec/mailsec/internal/store"
)

// CheckSchema is the schema of the check's JSON that Summarize reads.
const CheckSchema = "mailsec.check.v1"

// report is the part of the check's JSON (contract "mailsec.check.v1":
// keys are only ever added) that the scan summarises.
type report struct {
	Schema    string `json:"schema"`
	Colour    string `json:"colour"`
	Qualified bool   `json:"qualified_encryption"`
	MX        struct {
		Kind   string `json:"kind"`
		DNSSEC string `json:"dnssec"`
		Hosts  []struct {
			Addresses []struct {
				Status   string           `json:"status"`
				STARTTLS bool             `json:"starttls"`
				TLS      *json.RawMessage `json:"tls"`
				Cert     *struct {
					PKIXValid bool `json:"pkix_valid"`
					NameMatch bool `json:"name_match"`
				} `json:"certificate"`
				DANE struct {
					State string `json:"state"`
				} `json:"dane"`
			} `json:"addresses"`
		} `json:"hosts"`
	} `json:"mx"`
	MTASTS struct {
		Record struct {
			Valid bool `json:"valid"`
		} `json:"record"`
		Policy struct {
			Valid bool   `json:"valid"`
			Mode  string `json:"mode"`
		} `json:"policy"`
	} `json:"mta_sts"`
}

// Summarize reads the key facts of one check's JSON (docs/scan.md):
//
//   - dnssec: the MX answer (or its absence) validated as secure;
//   - starttls: at least one address answered SMTP, and every address
//     that did offered STARTTLS and completed the TLS handshake;
//   - valid_cert: at least one certificate was seen, and every address
//     that answered showed a PKIX-valid certificate naming the MX host;
//   - dane: every address that answered matched secure, usable TLSA
//     records (RFC 7672);
//   - mta_sts: a valid record and a valid policy in mode enforce or testing
//     (RFC 8461);
//   - colour and qualified as the check graded them.
func Summarize(result []byte) (store.ScanSummary, error) {
	var r report
	if err := json.Unmarshal(result, &r); err != nil {
		return store.ScanSummary{}, fmt.Errorf("scan: the check's JSON: %w", err)
	}
	if r.Schema != CheckSchema {
		return store.ScanSummary{}, fmt.Errorf("scan: the check's JSON has schema %q, want %q", r.Schema, CheckSchema)
	}
	s := store.ScanSummary{Colour: r.Colour, Qualified: r.Qualified, DNSSEC: r.MX.DNSSEC == "secure"}
	answered, tlsAll, certAll, daneAll, certs := 0, true, true, true, 0
	for _, h := range r.MX.Hosts {
		for _, a := range h.Addresses {
			if a.Status != "ok" {
				continue
			}
			answered++
			if !a.STARTTLS || a.TLS == nil || string(*a.TLS) == "null" {
				tlsAll = false
			}
			if a.Cert == nil {
				certAll = false
			} else {
				certs++
				if !a.Cert.PKIXValid || !a.Cert.NameMatch {
					certAll = false
				}
			}
			if a.DANE.State != "valid" {
				daneAll = false
			}
		}
	}
	s.STARTTLS = answered > 0 && tlsAll
	s.ValidCert = certs > 0 && certAll
	s.DANE = answered > 0 && daneAll
	s.MTASTS = r.MTASTS.Record.Valid && r.MTASTS.Policy.Valid && (r.MTASTS.Policy.Mode == "enforce" || r.MTASTS.Policy.Mode == "testing")
	return s, nil
}
