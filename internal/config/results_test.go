package config

import (
	"errors"
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
