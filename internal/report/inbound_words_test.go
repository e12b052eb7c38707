package report

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"html"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/i18n"
	"github.com/mailsec/mailsec/internal/inbound/checkreport"
	"github.com/mailsec/mailsec/internal/store"
)

// checkreportFormats are the English formats internal/inbound/checkreport
// writes its findings, sentences and colour reasons with: the string
// literal passed as the format to its evaluation's add, to the
// sentences' add and to newMessage, read from its source.
func checkreportFormats(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "inbound", "checkreport", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("checkreport sources: %v", err)
	}
	var formats []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			at := -1
			switch fn := call.Fun.(type) {
			case *ast.SelectorExpr: // e.add(code, host, addr, format, …)
				switch fn.Sel.Name {
				case "add":
					at = 3
				case "validRecord": // (…, noneText): the text of a missing record
					at = 6
				}
			case *ast.Ident: // add(format, …) in sentences; newMessage(format, …)
				if fn.Name == "add" || fn.Name == "newMessage" {
					at = 0
				}
			}
			if at < 0 || len(call.Args) <= at {
				return true
			}
			lit, ok := call.Args[at].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				// A format that is not a literal (validRecord's noneText)
				// is a parameter: its literals are found where the caller
				// passes them.
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			formats = append(formats, s)
			return true
		})
	}
	return formats
}

// TestInboundCatalogued: every sentence the inbound check writes has its
// translation (texts.go), so that the check page, the report's inbound
// section and the result mail read in German.
func TestInboundCatalogued(t *testing.T) {
	formats := checkreportFormats(t)
	if len(formats) < 90 {
		t.Fatalf("only %d formats found in checkreport's source: %q", len(formats), formats)
	}
	for _, f := range formats {
		if !i18n.Has("text." + f) {
			t.Errorf("no translation of the inbound check's %q", f)
		}
	}
}

// TestGermanInbound: the report's inbound section (the web report and the
// result mail) reads the check's colour reason, sentences and bad
// findings in German, with nothing of their English left; a check stored
// before its sentences had Messages keeps its English texts.
func TestGermanInbound(t *testing.T) {
	ib := checkreport.Report{Schema: checkreport.Schema, Domain: "sub.example.org", Input: "sub.example.org",
		MX: checkreport.MXInfo{Kind: checkreport.MXKindNone}}
	checkreport.Evaluate(&ib)
	r := Build(Input{Test: testOf(from, store.TestFinal), Verdict: judge(nil, true), Final: true, Now: t0, Inbound: &ib, Lang: i18n.German})
	if len(r.Inbound.Bad) == 0 {
		t.Fatalf("the fixture has no bad finding: %+v", ib.Findings)
	}
	txt, page := renderBoth(t, r)
	english := append([]string{ib.ColourReason}, ib.Sentences...)
	for _, f := range ib.Findings {
		if f.Severity == checkreport.SevBad || f.Severity == checkreport.SevError {
			english = append(english, f.Text)
		}
	}
	for name, out := range map[string]string{"text": txt, "HTML": html.UnescapeString(page)} {
		for _, e := range english {
			if strings.Contains(out, e) {
				t.Errorf("German %s still reads %q", name, e)
			}
		}
		for _, want := range []string{"Die Domain hat keinen Mailserver (schlecht).", "Weder MX- noch Adresseinträge: Die Domain kann keine Mail empfangen.",
			"Die Domain hat keinen Mailserver: weder MX- noch Adresseinträge."} {
			if !strings.Contains(out, want) {
				t.Errorf("German %s lacks %q:\n%s", name, want, out)
			}
		}
	}
	if ib.Sentences[0] != "Domain does not have a mail server (bad)." {
		t.Errorf("localizing changed the check itself: %q", ib.Sentences[0])
	}

	js, err := os.ReadFile(filepath.Join("testdata", "inbound-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	var old Inbound
	if err := json.Unmarshal(js, &old); err != nil {
		t.Fatal(err)
	}
	if got := LocalizeInbound(i18n.German, old); got.ColourReason != old.ColourReason || !slices.Equal(got.Sentences, old.Sentences) {
		t.Errorf("a stored check without Messages: %q %q, want its English %q %q", got.ColourReason, got.Sentences, old.ColourReason, old.Sentences)
	}
}

// TestGermanAuthLines: the authentication lines' words are German; the
// results (RFC 8601's names) and the verifiers' reasons stay as they are.
func TestGermanAuthLines(t *testing.T) {
	for _, tc := range []struct {
		a       store.Authentication
		german  []string
		english []string
	}{
		{store.Authentication{DMARC: store.DMARCCheck{FromDomain: "example.org", Result: "pass", SPFAligned: true, SPFAlignment: "relaxed", DKIMAligned: true, DKIMAlignment: "strict"},
			ARC: store.ARCCheck{Result: "pass", Instances: 2}},
			[]string{"DKIM: none (die Mail ist nicht signiert)", "DMARC (example.org): pass durch SPF ausgerichtet (relaxed) und DKIM ausgerichtet (strict)", "ARC: pass (2 Sätze)"},
			[]string{"not signed", " by ", " and ", "sets"}},
		{store.Authentication{DKIM: []store.Signature{{Domain: "example.org", Selector: "s1"}}, ARC: store.ARCCheck{Result: "fail", Instances: 1, Reason: "cv=fail"}},
			[]string{"DKIM: nicht geprüft (d=example.org, s=s1)", "ARC: fail (1 Satz): cv=fail"},
			[]string{"not verified", "1 set"}},
	} {
		got := strings.Join(AuthLines(i18n.German, tc.a), "\n")
		for _, w := range tc.german {
			if !strings.Contains(got, w) {
				t.Errorf("German lines lack %q:\n%s", w, got)
			}
		}
		for _, e := range tc.english {
			if strings.Contains(got, e) {
				t.Errorf("German lines still read %q:\n%s", e, got)
			}
		}
		if en := strings.Join(AuthLines(i18n.English, tc.a), "\n"); !strings.Contains(en, tc.english[0]) {
			t.Errorf("English lines lack %q:\n%s", tc.english[0], en)
		}
	}
}

// TestGermanMailReason: why the result mail was withheld, stored in
// English, reads in German in a German report.
func TestGermanMailReason(t *testing.T) {
	in := Input{Test: testOf(from, store.TestFinal), Verdict: judge(nil, true), Final: true, Now: t0, Lang: i18n.German,
		Mail: &MailStatus{State: "withheld", Reason: "not sent, to prevent backscatter: the test mail had no envelope sender"}}
	if got, want := Build(in).Mail.Reason, "nicht gesendet, um Rückstreuung (Backscatter) zu vermeiden: die Testmail hatte keinen Absender im Umschlag"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
}
