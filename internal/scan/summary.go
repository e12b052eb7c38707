package scan

import (
	"encoding/json"
	"fmt"

	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/store"
)

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
//
// The check's JSON decodes into the check's own type (checkreport.Report),
// whatever version of mailsec wrote it: keys are only ever added.
func Summarize(result []byte) (store.ScanSummary, error) {
	var r checkreport.Report
	if err := json.Unmarshal(result, &r); err != nil {
		return store.ScanSummary{}, fmt.Errorf("scan: the check's JSON: %w", err)
	}
	if r.Schema != checkreport.Schema {
		return store.ScanSummary{}, fmt.Errorf("scan: the check's JSON has schema %q, want %q", r.Schema, checkreport.Schema)
	}
	s := store.ScanSummary{Colour: string(r.Colour), Qualified: r.QualifiedEncryption, DNSSEC: r.MX.DNSSEC == checkreport.Secure}
	answered, tlsAll, certAll, daneAll, certs := 0, true, true, true, 0
	for _, h := range r.MX.Hosts {
		for _, a := range h.Addresses {
			if a.Status != checkreport.StatusOK {
				continue
			}
			answered++
			if !a.STARTTLS || a.TLS == nil {
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
			if a.DANE.State != checkreport.DANEValid {
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
