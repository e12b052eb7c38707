// Package providernotes reads the operator's comments and footnotes on the
// public mail providers (web.provider_notes_file, docs/providers.md): a
// TOML file with one table per provider domain,
//
//	[provider."example.org"]
//	comment = "Signs with DKIM since March."
//	footnotes = ["Tested from the web form.", "Second MX is a backup."]
//
// Every mistake is an error naming the file and the provider: an unknown
// key, a domain that is not one or is not in web.providers, control
// characters, text over the bounds below. The service reads the file once
// at start (it has no reload path; restart it to read the file again).
package providernotes

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/BurntSushi/toml"

	"github.com/mailsec/mailsec/internal/dnsname"
)

// Bounds of the file and of its text: a note is a sentence or two, not a
// document.
const (
	MaxFileSize     = 1 << 20
	MaxCommentLen   = 2000
	MaxFootnotes    = 10
	MaxFootnoteLen  = 1000
	maxProviderRows = 10000
)

// Note is the operator's text on one provider.
type Note struct {
	Comment   string   `toml:"comment" json:"comment,omitempty"`
	Footnotes []string `toml:"footnotes" json:"footnotes,omitempty"`
}

// Notes are the notes by provider domain (A-label, lower case, no trailing
// dot). The zero value has none.
type Notes map[string]Note

// ErrInvalid is wrapped by every error about the file's content.
var ErrInvalid = errors.New("invalid provider notes")

type file struct {
	Provider map[string]Note `toml:"provider"`
}

// Load reads and validates the notes file at path. providers are the
// domains of web.providers; a note on any other domain is an error (it
// would never be shown, so it is most likely a typing mistake).
func Load(path string, providers []string) (Notes, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("provider notes: %w", err)
	}
	if fi.Size() > MaxFileSize {
		return nil, fmt.Errorf("provider notes %s: %w: %d bytes exceeds %d", path, ErrInvalid, fi.Size(), MaxFileSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("provider notes: %w", err)
	}
	n, err := Parse(string(b), providers)
	if err != nil {
		return nil, fmt.Errorf("provider notes %s: %w", path, err)
	}
	return n, nil
}

// Parse validates the text of a notes file (Load without the file).
func Parse(text string, providers []string) (Notes, error) {
	var f file
	md, err := toml.Decode(text, &f)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%w: unknown key %s (a provider takes comment and footnotes)", ErrInvalid, strings.Join(keys, ", "))
	}
	if len(f.Provider) > maxProviderRows {
		return nil, fmt.Errorf("%w: %d providers exceeds %d", ErrInvalid, len(f.Provider), maxProviderRows)
	}
	known := make(map[string]bool, len(providers))
	for _, p := range providers {
		known[dnsname.Canonical(p)] = true
	}
	notes := make(Notes, len(f.Provider))
	// In a fixed order, so the first error is always the same one.
	domains := make([]string, 0, len(f.Provider))
	for d := range f.Provider {
		domains = append(domains, d)
	}
	slices.Sort(domains)
	for _, d := range domains {
		nd, err := dnsname.NormalizeDomain(d)
		if err != nil {
			return nil, fmt.Errorf("%w: provider %q: %w", ErrInvalid, d, err)
		}
		if !known[nd] {
			return nil, fmt.Errorf("%w: provider %q is not in web.providers", ErrInvalid, d)
		}
		if _, dup := notes[nd]; dup {
			return nil, fmt.Errorf("%w: provider %q is given twice (as another spelling of %s)", ErrInvalid, d, nd)
		}
		n := f.Provider[d]
		if err := checkText(n.Comment, MaxCommentLen); err != nil {
			return nil, fmt.Errorf("%w: provider %q: comment: %w", ErrInvalid, d, err)
		}
		if len(n.Footnotes) > MaxFootnotes {
			return nil, fmt.Errorf("%w: provider %q: %d footnotes exceeds %d", ErrInvalid, d, len(n.Footnotes), MaxFootnotes)
		}
		for i, fn := range n.Footnotes {
			if strings.TrimSpace(fn) == "" {
				return nil, fmt.Errorf("%w: provider %q: footnote %d is empty", ErrInvalid, d, i+1)
			}
			if err := checkText(fn, MaxFootnoteLen); err != nil {
				return nil, fmt.Errorf("%w: provider %q: footnote %d: %w", ErrInvalid, d, i+1, err)
			}
		}
		notes[nd] = n
	}
	return notes, nil
}

// checkText refuses text a page or a CSV cell would show wrongly: invalid
// UTF-8, control characters (a line break included: a note is one
// paragraph), more than max bytes.
func checkText(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes exceeds %d", len(s), max)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for i, r := range s {
		if unicode.IsControl(r) {
			return fmt.Errorf("control character %U at byte %d", r, i)
		}
	}
	return nil
}
