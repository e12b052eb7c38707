package report

import (
	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/verdict"
)

// Advice is what to change for one finding: in words, then the settings
// that do it in common MTAs. The Postfix settings are the ones lab/run
// gives its Postfix senders at each level (docs/report.md "What to
// change" names the lab sender that proves each); the others are taken
// from their documentation (sources in docs/report.md).
type Advice struct {
	Key   string `json:"key"`  // "encrypt", "verify", "dane", "dnssec", "mtasts-dane", "sni", "dkim"
	Text  string `json:"text"` // what to change, in words
	Fixes []Fix  `json:"fixes"`
}

// Fix is one MTA's way to do what an Advice says.
type Fix struct {
	MTA     string `json:"mta"`     // "Postfix", "Exim", "chasquid", "Haraka", "Exchange Online", "Exchange Server"
	Setting string `json:"setting"` // configuration lines or a command, as typed ("" where there is none)
	Note    string `json:"note"`    // in words
}

// mtas are the MTAs advice is given for, in this order.
var mtas = []struct{ name, key string }{
	{"Postfix", "postfix"},
	{"Exim", "exim"},
	{"chasquid", "chasquid"},
	{"Haraka", "haraka"},
	{"Exchange Online", "exo"},
	{"Exchange Server", "exchange"},
}

// adviceSettings are the settings of each advice per MTA key (not
// translated: they are typed as they stand). An MTA without a setting
// has only its note ("advice.<key>.<mta>").
var adviceSettings = map[string]map[string]string{
	"encrypt": {
		"postfix":  "smtp_dns_support_level = dnssec\nsmtp_tls_security_level = dane-only   # or: verify",
		"exim":     "# smtp transport\nhosts_require_tls = *\nhosts_try_dane = *\n# dnslookup router\ndnssec_request_domains = *",
		"haraka":   "# config/tls.ini\n[outbound]\nrejectUnauthorized=true\nforce_tls_hosts[]=example.org",
		"exo":      "Set-OutboundConnector \"Partner\" -TlsSettings DomainValidation -TlsDomain mx.example.org -SmtpDaneMode Mandatory",
		"exchange": "Set-SendConnector \"Internet\" -RequireTLS $true -TlsAuthLevel DomainValidation -TlsDomain mx.example.org",
	},
	"verify": {
		"postfix":  "smtp_tls_security_level = verify   # or: dane-only\nsmtp_tls_CAfile = /etc/ssl/certs/ca-certificates.crt",
		"exim":     "# smtp transport\ntls_verify_certificates = system\ntls_verify_hosts = *",
		"haraka":   "# config/tls.ini\n[outbound]\nrejectUnauthorized=true",
		"exo":      "Set-OutboundConnector \"Partner\" -TlsSettings CertificateValidation",
		"exchange": "Set-SendConnector \"Internet\" -RequireTLS $true -TlsAuthLevel CertificateValidation",
	},
	"dane": {
		"postfix": "smtp_dns_support_level = dnssec\nsmtp_tls_security_level = dane",
		"exim":    "# dnslookup router\ndnssec_request_domains = *\n# smtp transport\nhosts_try_dane = *",
		"exo":     "Set-OutboundConnector \"Partner\" -SmtpDaneMode Opportunistic   # or Mandatory",
	},
	"dnssec": {
		"postfix": "# /etc/resolv.conf: a validating resolver on this host (Unbound)\nnameserver 127.0.0.1\n# main.cf\nsmtp_dns_support_level = dnssec",
		"exim":    "# /etc/resolv.conf: a validating resolver on this host (Unbound)\nnameserver 127.0.0.1",
	},
	"mtasts-dane": {
		"postfix": "smtp_tls_security_level = dane\n# postfix-mta-sts-resolver only for receivers without TLSA records\nsmtp_tls_policy_maps = socketmap:inet:127.0.0.1:8461:postfix",
	},
	"sni": {
		"postfix": "smtp_tls_servername = hostname",
		"exim":    "# smtp transport\ntls_sni = $host",
	},
	"dkim": {
		"postfix":  "# OpenDKIM (or rspamd) as a milter\nsmtpd_milters = inet:127.0.0.1:8891\nnon_smtpd_milters = inet:127.0.0.1:8891",
		"exim":     "# smtp transport\ndkim_domain = example.org\ndkim_selector = s1\ndkim_private_key = /etc/exim4/dkim/example.org.pem",
		"chasquid": "# private key of selector s1\n/etc/chasquid/domains/example.org/dkim:s1.pem",
		"haraka":   "# config/plugins\ndkim\n# config/dkim.ini\n[sign]\nenabled=true",
		"exo":      "Set-DkimSigningConfig -Identity example.org -Enabled $true",
	},
}

// adviceOfFact and adviceOfBehaviour name the advice of a finding: a fact
// that does not hold (or holds with a caveat), a behaviour.
var (
	adviceOfFact = map[string]string{
		verdict.FactEnforcesEncryption: "encrypt",
		verdict.FactValidatesPKIX:      "verify",
		verdict.FactValidatesDANE:      "dane",
		verdict.FactValidatesDNSSEC:    "dnssec",
		verdict.FactRespectsRFC8461S2:  "mtasts-dane",
		verdict.FactSendsSNI:           "sni",
		verdict.FactSignsDKIM:          "dkim",
	}
	adviceOfBehaviour = map[string]string{
		verdict.BehaviourPlainFallback:       "encrypt",
		verdict.BehaviourVerifyWhenOffered:   "encrypt",
		verdict.BehaviourMTASTSOverridesDANE: "mtasts-dane",
		verdict.BehaviourDANEWithoutDNSSEC:   "dnssec",
	}
)

// adviceFor is the advice key names, in language l; nil for none.
func adviceFor(l i18n.Lang, key string) *Advice {
	settings, ok := adviceSettings[key]
	if !ok {
		return nil
	}
	a := &Advice{Key: key, Text: i18n.T(l, "advice."+key), Fixes: []Fix{}}
	for _, m := range mtas {
		note := "advice." + key + "." + m.key
		if !i18n.Has(note) && settings[m.key] == "" {
			continue
		}
		f := Fix{MTA: m.name, Setting: settings[m.key]}
		if i18n.Has(note) {
			f.Note = i18n.T(l, note)
		}
		a.Fixes = append(a.Fixes, f)
	}
	return a
}
