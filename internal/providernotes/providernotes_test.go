package providernotes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var providers = []string{"example.org", "Provider.Example.", "xn--bcher-kva.example"}

func TestParse(t *testing.T) {
	n, err := Parse(`
[provider."example.org"]
comment = "Signs with DKIM."
footnotes = ["Tested from the form.", "Backup MX."]

[provider."PROVIDER.example"]
comment = "Capitals are the same domain."

[provider."bücher.example"]
footnotes = ["IDN as typed."]
`, providers)
	if err != nil {
		t.Fatal(err)
	}
	if got := n["example.org"]; got.Comment != "Signs with DKIM." || len(got.Footnotes) != 2 || got.Footnotes[1] != "Backup MX." {
		t.Errorf("example.org: %+v", got)
	}
	if n["provider.example"].Comment == "" {
		t.Errorf("provider.example not found under its canonical name: %v", n)
	}
	if len(n["xn--bcher-kva.example"].Footnotes) != 1 {
		t.Errorf("IDN not made an A-label: %v", n)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"syntax", `[provider."example.org"`, "toml"},
		{"unknown key", "[provider.\"example.org\"]\ncomments = \"x\"", `unknown key provider."example.org".comments`},
		{"unknown top-level", "providers = 1", "unknown key providers"},
		{"not listed", "[provider.\"other.example\"]\ncomment = \"x\"", `"other.example" is not in web.providers`},
		{"not a domain", "[provider.\"a..b\"]\ncomment = \"x\"", `provider "a..b"`},
		{"twice", "[provider.\"example.org\"]\ncomment = \"x\"\n[provider.\"EXAMPLE.org\"]\ncomment = \"y\"", "given twice"},
		{"control", "[provider.\"example.org\"]\ncomment = \"a\\nb\"", "control character U+000A"},
		{"long comment", "[provider.\"example.org\"]\ncomment = \"" + strings.Repeat("x", MaxCommentLen+1) + "\"", "comment: 2001 bytes exceeds 2000"},
		{"empty footnote", "[provider.\"example.org\"]\nfootnotes = [\"a\", \" \"]", "footnote 2 is empty"},
		{"many footnotes", "[provider.\"example.org\"]\nfootnotes = [" + strings.Repeat("\"a\",", MaxFootnotes+1) + "]", "11 footnotes exceeds 10"},
		{"wrong type", "[provider.\"example.org\"]\ncomment = 3", "toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.text, providers)
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "notes.toml")
	if err := os.WriteFile(good, []byte("[provider.\"example.org\"]\ncomment = \"ok\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := Load(good, providers); err != nil || n["example.org"].Comment != "ok" {
		t.Errorf("Load = %v, %v", n, err)
	}
	if _, err := Load(filepath.Join(dir, "missing.toml"), providers); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.toml")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big, providers); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), big) {
		t.Errorf("big file: %v", err)
	}
}
