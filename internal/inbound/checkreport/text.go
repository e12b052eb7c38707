package checkreport

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/mailsec/mailsec/internal/dane"
)

// WriteText writes the report for people: the colour and its reason, the
// sentences, a table of the tested addresses, MTA-STS and the records, and
// every finding not graded good.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", r.Domain, strings.ToUpper(string(r.Colour)))
	fmt.Fprintf(&b, "  %s\n", r.ColourReason)
	if r.Input != r.Domain {
		fmt.Fprintf(&b, "  (input %q)\n", r.Input)
	}
	fmt.Fprintf(&b, "\n")
	for _, s := range r.Sentences {
		fmt.Fprintf(&b, "%s\n", s)
	}
	fmt.Fprintf(&b, "\nMX (%s, DNSSEC %s)\n", r.MX.Kind, r.MX.DNSSEC)
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	if len(r.MX.Hosts) > 0 {
		fmt.Fprintln(tw, "  PREF\tHOST\tADDRESS\tSTATUS\tSTARTTLS\tTLS\tCERTIFICATE\tDANE")
	}
	for _, h := range r.MX.Hosts {
		name := h.Name
		if h.CNAMETarget != "" {
			name += " → " + h.CNAMETarget
		}
		if len(h.Addresses) == 0 {
			fmt.Fprintf(tw, "  %d\t%s\t-\t%s\t\t\t\t\n", h.Preference, name, h.AddressError)
			continue
		}
		for _, a := range h.Addresses {
			tlsText, certText := "-", "-"
			if a.TLS != nil {
				tlsText = a.TLS.Version + " " + a.TLS.KeyExchange + acceptedVersions(a.TLS)
			} else if a.TLSError != "" {
				tlsText = "failed"
			}
			if c := a.Cert; c != nil {
				switch {
				case c.PKIXValid && c.NameMatch:
					certText = "trusted"
				case c.SelfSigned:
					certText = "self-signed"
				case !c.PKIXValid:
					certText = "untrusted"
				default:
					certText = "name mismatch"
				}
				certText += fmt.Sprintf(" (%dd)", c.DaysLeft)
			}
			status := a.Status
			if a.Status != StatusOK && a.Detail != "" {
				status += ": " + a.Detail
			}
			yes := map[bool]string{true: "yes", false: "no"}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Preference, name, a.IP, status,
				yes[a.STARTTLS], tlsText, certText, a.DANE.State)
		}
	}
	tw.Flush()
	if r.MX.Omitted > 0 {
		fmt.Fprintf(&b, "  %d more MX hosts not tested (limit inbound.max_hosts)\n", r.MX.Omitted)
	}
	for _, h := range r.MX.Hosts {
		if h.OmittedAddresses > 0 {
			fmt.Fprintf(&b, "  %s: %d more addresses not tested (limit inbound.max_addresses)\n", h.Name, h.OmittedAddresses)
		}
	}
	for _, h := range r.MX.Hosts {
		if len(h.TLSA.Records) > 0 {
			fmt.Fprintf(&b, "  TLSA %s (DNSSEC %s): %s\n", h.TLSA.Name, h.TLSA.DNSSEC, strings.Join(shortRecords(h.TLSA.Records), ", "))
		}
	}
	m := r.MTASTS
	switch {
	case m.Policy.Valid:
		fmt.Fprintf(&b, "\nMTA-STS: id %s, mode %s, mx %s, max_age %d\n", m.Record.ID, m.Policy.Mode, strings.Join(m.Policy.MX, " "), m.Policy.MaxAge)
	case m.Record.Present:
		fmt.Fprintf(&b, "\nMTA-STS: record %q, policy: %s\n", m.Record.ID, m.Policy.Error)
	}
	fmt.Fprintf(&b, "\nFindings (not good):\n")
	n := 0
	for _, f := range r.Findings {
		if f.Severity == SevGood {
			continue
		}
		n++
		fmt.Fprintf(&b, "  [%s] %s: %s\n", f.Severity, f.Code, f.Text)
	}
	if n == 0 {
		fmt.Fprintf(&b, "  none\n")
	}
	for _, e := range r.Errors {
		fmt.Fprintf(&b, "  error: %s\n", e)
	}
	fmt.Fprintf(&b, "\nChecked %s in %.2f s (MX %.0f ms, hosts %.0f ms, MTA-STS %.0f ms, records %.0f ms) via resolver %s.\n",
		r.CheckedAt.Format("2006-01-02 15:04:05 MST"), r.Seconds, r.Timings.MX, r.Timings.Hosts, r.Timings.MTASTS, r.Timings.Records, r.Resolver.Address)
	_, err := io.WriteString(w, b.String())
	return err
}

// shortRecords cuts the data of TLSA records for texts.
func shortRecords(rs []string) []string {
	out := make([]string, 0, len(rs))
	for _, s := range rs {
		if t, err := dane.ParseTLSA(s); err == nil {
			out = append(out, t.Short())
		} else {
			out = append(out, s)
		}
	}
	return out
}

// acceptedVersions lists the versions a server accepted when each was
// offered alone, " (accepts 1.0 1.2 1.3)", or "" when they were not
// probed; an unanswered probe shows as "1.1?".
func acceptedVersions(t *TLSInfo) string {
	var out []string
	for _, v := range t.Versions {
		short := strings.TrimPrefix(v.Version, "TLS ")
		switch v.Result {
		case ProbeAccepted:
			out = append(out, short)
		case ProbeUnknown:
			out = append(out, short+"?")
		}
	}
	if len(out) == 0 {
		return ""
	}
	return " (accepts " + strings.Join(out, " ") + ")"
}
