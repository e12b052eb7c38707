package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWebAndResultMailKeys(t *testing.T) {
	cfg := Default()
	if err := Parse(&cfg, `
[web]
listen = ["127.0.0.1:0"]
base_url = "https://mailsec.example/"
providers = ["example.org", "mail.example"]
retention = "72h"
[result_mail]
from = "results@a.mailtest.example"
source_address = "127.0.0.1"
retry_base = "2s"
`); err != nil {
		t.Fatal(err)
	}
	if cfg.WebBaseURL() != "https://mailsec.example" || cfg.ResultMailFrom() != "results@a.mailtest.example" || len(cfg.Web.Providers) != 2 {
		t.Errorf("%s %s %v", cfg.WebBaseURL(), cfg.ResultMailFrom(), cfg.Web.Providers)
	}
	def := Default()
	if def.ResultMailFrom() != "mailsec@a.mailtest.example" || def.WebBaseURL() != "http://127.0.0.1:8080" {
		t.Errorf("defaults: %s %s", def.ResultMailFrom(), def.WebBaseURL())
	}
	for _, c := range []struct{ text, key string }{
		{"[web]\nlisten = [\"nope\"]", "web.listen"},
		{"[web]\nbase_url = \"ftp://x\"", "web.base_url"},
		{"[web]\nproviders = [\"a@b\"]", "web.providers"},
		{"[web]\nretention = \"1m\"", "web.retention"},
		{"[result_mail]\nfrom = \"x@b.mailtest.example\"", "result_mail.from"},
		{"[result_mail]\nfrom = \"x y@a.mailtest.example\"", "result_mail.from"},
		{"[result_mail]\nselector = \"a.b\"", "result_mail.selector"},
		{"[result_mail]\nsource_address = \"host\"", "result_mail.source_address"},
		{"[result_mail]\nmax_attempts = 0", "result_mail.max_attempts"},
	} {
		cfg := Default()
		err := Parse(&cfg, c.text)
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%q: %v, want an error naming %s", c.text, err, c.key)
		}
	}
}

// TestProviderNotes: web.provider_notes_file is taken relative to the
// configuration file, read and validated by ProviderNotes; a bad file is
// an error naming the key.
func TestProviderNotes(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "mailsec.toml")
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mailsec.toml", "[web]\nproviders = [\"example.org\"]\nprovider_notes_file = \"notes.toml\"\n")
	write("notes.toml", "[provider.\"example.org\"]\ncomment = \"DKIM since March\"\n")
	cfg, err := Load(conf)
	if err != nil {
		t.Fatal(err)
	}
	n, err := cfg.ProviderNotes()
	if err != nil || n["example.org"].Comment != "DKIM since March" {
		t.Fatalf("notes %v, %v", n, err)
	}
	write("notes.toml", "[provider.\"example.com\"]\ncomment = \"x\"\n")
	if _, err := cfg.ProviderNotes(); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "web.provider_notes_file") ||
		!strings.Contains(err.Error(), "not in web.providers") {
		t.Errorf("a note on a domain not listed: %v", err)
	}
	def := Default()
	if n, err := def.ProviderNotes(); n != nil || err != nil {
		t.Errorf("without a file: %v %v", n, err)
	}
}
