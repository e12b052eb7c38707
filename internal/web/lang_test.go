package web

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/inbound/checkreport"
)

// TestStartLanguage: a test's result-mail language is the one the start
// asks for ("lang"), else the request's (Accept-Language, the switch's
// cookie); an unsupported one is refused, not silently English; the
// report in the API answer reads in the request's language.
func TestStartLanguage(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.StartLimit = 100 })
	asJSON := []string{"Content-Type", "application/json"}
	for _, tc := range []struct {
		name, body string
		hdr        []string
		code       int
		want       string
	}{
		{"json lang", `{"lang": "de"}`, asJSON, http.StatusCreated, "de"},
		{"form lang", "lang=de", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusCreated, "de"},
		{"accept-language", `{}`, append(asJSON, "Accept-Language", "de-DE,de;q=0.9"), http.StatusCreated, "de"},
		{"cookie", `{}`, append(asJSON, "Cookie", "lang=de"), http.StatusCreated, "de"},
		{"default", `{}`, asJSON, http.StatusCreated, "en"},
		{"lang over accept-language", `{"lang": "en"}`, append(asJSON, "Accept-Language", "de"), http.StatusCreated, "en"},
		{"unsupported", `{"lang": "fr"}`, asJSON, http.StatusBadRequest, ""},
	} {
		resp, body := e.do(t, "POST", "/api/v1/tests", strings.NewReader(tc.body), tc.hdr...)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, body, tc.code)
			continue
		}
		if tc.code != http.StatusCreated {
			continue
		}
		var got map[string]any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if got["lang"] != tc.want {
			t.Errorf("%s: lang %v, want %s", tc.name, got["lang"], tc.want)
		}
		// Stored with the test: the result mail's language.
		stored, err := e.st.Test(t.Context(), got["id"].(string))
		if err != nil || stored.Lang != tc.want {
			t.Errorf("%s: stored lang %q (%v), want %s", tc.name, stored.Lang, err, tc.want)
		}
	}
}

// TestPageLanguage: pages follow Accept-Language, the ?lang= switch sets
// a cookie, and the switch links to the other language.
func TestPageLanguage(t *testing.T) {
	e := newEnv(t, nil)
	_, en := e.do(t, "GET", "/providers", nil)
	if !strings.Contains(string(en), `<html lang="en">`) || !strings.Contains(string(en), `href="?lang=de"`) {
		t.Errorf("English page:\n%s", en)
	}
	_, de := e.do(t, "GET", "/providers", nil, "Accept-Language", "de")
	if !strings.Contains(string(de), `<html lang="de">`) || !strings.Contains(string(de), "Domain prüfen") || !strings.Contains(string(de), `href="?lang=en"`) {
		t.Errorf("German page:\n%s", de)
	}
	resp, _ := e.do(t, "GET", "/providers?lang=de", nil)
	var set bool
	for _, c := range resp.Cookies() {
		set = set || c.Name == "lang" && c.Value == "de"
	}
	if !set {
		t.Errorf("?lang=de set no cookie: %v", resp.Header["Set-Cookie"])
	}
}

// englishLeft lists the English phrases of body (a page rendered in
// German) that should have been translated.
func englishLeft(body string, phrases []string) []string {
	var left []string
	for _, p := range phrases {
		if strings.Contains(body, p) {
			left = append(left, p)
		}
	}
	return left
}

// TestGermanProviderPages: the provider table and a provider's page in
// German carry none of their English sentences, headers or colour words;
// the operator's own notes stay as written.
func TestGermanProviderPages(t *testing.T) {
	e := providerEnv(t)
	for _, tc := range []struct {
		path    string
		english []string
		german  []string
	}{
		{"/providers", []string{"Results of public mail providers", "The latest outbound result", "The table is also available as",
			"Search", "domain or comment", ">Outbound<", ">Inbound<", ">any<", ">Filter<", "providers shown", "Last test", "Domain/Provider",
			"Adequate Certificates", "Encryption mandatory", ">Comments<", ">never<", "not checked", "Operator:", ">red<", ">green<", ">yes<", ">no<",
			"<td>only dane-only explains"},
			[]string{"nur dane-only erklärt Server 4: zugestellt, Server 5: abgelehnt", "von 3 Anbietern angezeigt", `data-format="{shown} von {total} Anbietern angezeigt."`, "Betreiber:", "Backup MX unencrypted.", "<title>Anbieter – mailsec"}},
		{"/providers/green.example", []string{"Provider green.example", "Last test", "Outbound (sending)", "Inbound (receiving)", "History of the outbound verdict",
			">Date<", ">Colour<", ">Policy<", ">Settled<", ">green<", ">red<", ">yes<", ">no<", "All providers", "not checked", "<td>only dane-only explains"},
			[]string{"nur dane-only erklärt Server 4", "Anbieter green.example", ">grün<", ">ja<"}},
		{"/providers/inbound.example", []string{"No verdict recorded yet.", ">never<", "(checked "}, []string{"Noch kein Ergebnis", "(geprüft am "}},
		// The filter searches the comments as the reader sees them, and
		// as stored.
		{"/providers?q=zugestellt", nil, []string{">1 von 3 Anbietern angezeigt"}},
		{"/providers?q=explains", nil, []string{">1 von 3 Anbietern angezeigt"}},
		{"/providers/other.example", []string{"no such provider"}, []string{"kein solcher Anbieter"}},
		{"/providers?outbound=purple", []string{"outbound must be one of"}, []string{"outbound muss"}},
	} {
		_, body := e.do(t, "GET", tc.path, nil, "Accept-Language", "de")
		if left := englishLeft(string(body), tc.english); len(left) > 0 {
			t.Errorf("%s in German still reads %q:\n%s", tc.path, left, body)
		}
		for _, want := range tc.german {
			if !strings.Contains(string(body), want) {
				t.Errorf("%s in German lacks %q:\n%s", tc.path, want, body)
			}
		}
	}
}

// germanCheckReport is an inbound check with the newer findings: TLS 1.0
// still accepted, a weak suite, a self-signed certificate, DMARC from the
// organizational domain, no MTA-STS.
func germanCheckReport(t *testing.T, domain string) *checkreport.Report {
	t.Helper()
	r := &checkreport.Report{Schema: checkreport.Schema, Domain: domain, Input: domain,
		MX: checkreport.MXInfo{Kind: checkreport.MXKindMX, DNSSEC: checkreport.Insecure, Hosts: []checkreport.Host{{
			Name: "mx." + domain, Preference: 10, AddressDNSSEC: checkreport.Insecure,
			Addresses: []checkreport.Address{{IP: "192.0.2.1", Status: checkreport.StatusOK, STARTTLS: true,
				TLS: &checkreport.TLSInfo{Version: "TLS 1.2", Cipher: "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", KeyExchange: "X25519",
					Versions: []checkreport.VersionProbe{{Version: "TLS 1.0", Result: checkreport.ProbeAccepted}, {Version: "TLS 1.1", Result: checkreport.ProbeRefused},
						{Version: "TLS 1.2", Result: checkreport.ProbeAccepted}, {Version: "TLS 1.3", Result: checkreport.ProbeRefused}},
					WeakProbe:   checkreport.ProbeAccepted,
					WeakCiphers: []checkreport.WeakCipher{{Version: "TLS 1.2", Cipher: "TLS_RSA_WITH_3DES_EDE_CBC_SHA", Class: "3DES"}}},
				Cert: &checkreport.CertInfo{Subject: "CN=mx." + domain, Issuer: "CN=mx." + domain, Names: []string{"mx." + domain},
					DaysLeft: 60, SelfSigned: true, PKIXError: "x509: certificate signed by unknown authority"}}}}}},
		DMARC:    checkreport.DMARCInfo{Present: true, Valid: true, Policy: "reject", OrgDomain: "example.org"},
		Resolver: checkreport.ResolverInfo{Address: "127.0.0.1:53", TrustsAD: true},
	}
	checkreport.Evaluate(r)
	for _, code := range []string{checkreport.CodeLegacyAccepted, checkreport.CodeCipherWeak, checkreport.CodeDMARCOrgDomain, checkreport.CodeCertSelfSigned} {
		if !r.Has(code) {
			t.Fatalf("the fixture lacks finding %s: %+v", code, r.Findings)
		}
	}
	return r
}

// TestGermanCheckPage: the check page in German shows the check's colour
// reason, sentences and findings in German (none of their English texts),
// while the API keeps the English "text" of mailsec.check.v1.
func TestGermanCheckPage(t *testing.T) {
	rep := germanCheckReport(t, "sub.example.org")
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) {
		o.CheckLimit = 100
		o.Check = func(context.Context, string) ([]byte, error) { return js, nil }
	})
	_, body := e.do(t, "POST", "/check", strings.NewReader("domain=sub.example.org"), "Content-Type", "application/x-www-form-urlencoded", "Accept-Language", "de")
	page := html.UnescapeString(string(body))
	english := append([]string{rep.ColourReason, "good: ", "bad: ", "warning: "}, rep.Sentences...)
	for _, f := range rep.Findings {
		english = append(english, f.Text)
	}
	if left := englishLeft(page, english); len(left) > 0 {
		t.Errorf("the German check page still reads %q:\n%s", left, page)
	}
	for _, want := range []string{"akzeptiert noch TLS 1.0", "akzeptiert schwache Cipher-Suites: TLS_RSA_WITH_3DES_EDE_CBC_SHA",
		"Organisationsdomain example.org", "Die Domain übernimmt die DMARC-Richtlinie reject", "ist selbstsigniert", "Warnung: "} {
		if !strings.Contains(page, want) {
			t.Errorf("the German check page lacks %q:\n%s", want, page)
		}
	}
	_, api := e.do(t, "POST", "/api/v1/check?domain=sub.example.org", nil, "Accept-Language", "de")
	var got checkreport.Report
	if err := json.Unmarshal(api, &got); err != nil || len(got.Findings) != len(rep.Findings) || got.Findings[0].Text != rep.Findings[0].Text ||
		got.Sentences[0] != rep.Sentences[0] || !strings.HasPrefix(got.Sentences[0], "Domain does") {
		t.Errorf("the API's check is not its English: %v %s", err, api)
	}
}
