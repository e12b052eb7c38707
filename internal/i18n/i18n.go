// Package i18n holds mailsec's message catalogues, English and German, and
// picks the language of a reader: the web UI, the report and the result
// mail print every word through a Printer of this package, never a string
// of their own (docs/i18n.md).
//
// Messages are golang.org/x/text/message catalogue entries keyed by a
// short identifier ("report.heading.history"); each language's text is a
// fmt format whose verbs (%s, %d, %[2]s) must match the English one's.
// TestCatalogues fails when a key is missing in a language or its verbs
// differ.
package i18n

import (
	"fmt"
	"html"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

// Lang is a supported language, as its BCP 47 tag ("en", "de"): the form
// stored with a test (tests.lang) and given in the API's "lang" field.
type Lang string

// Languages. English is the default and the fallback.
const (
	English Lang = "en"
	German  Lang = "de"
)

// Supported are the languages with a complete catalogue, default first.
var Supported = []Lang{English, German}

// catalogues are the messages of each language, key → fmt format: the
// words of english and german, and the texts under "text." + English.
// Built once, never changed after.
var catalogues = func() map[Lang]map[string]string {
	en := make(map[string]string, len(english)+len(texts))
	de := make(map[string]string, len(german)+len(texts))
	for k, v := range english {
		en[k] = v
	}
	for k, v := range german {
		de[k] = v
	}
	for _, t := range slices.Concat(texts, inboundTexts, whyTexts) {
		en["text."+t.en] = t.en
		de["text."+t.en] = t.de
	}
	return map[Lang]map[string]string{English: en, German: de}
}()

// Tag is the language's BCP 47 tag.
func (l Lang) Tag() language.Tag {
	if l == German {
		return language.German
	}
	return language.English
}

// Name is the language's name in itself, for the language switch.
func (l Lang) Name() string {
	if l == German {
		return "Deutsch"
	}
	return "English"
}

// String is the tag ("en", "de").
func (l Lang) String() string { return string(l) }

// Valid reports whether l is a supported language.
func (l Lang) Valid() bool { return l == English || l == German }

// Or is l if it is supported, else def.
func (l Lang) Or(def Lang) Lang {
	if l.Valid() {
		return l
	}
	return def
}

// ErrUnsupported is the error of Parse for a language without a catalogue.
var ErrUnsupported = fmt.Errorf("unsupported language (supported: en, de)")

// Parse takes a language the way a user or a client names it ("de",
// "DE", "de-AT", "en-GB"): its base language must be supported.
func Parse(s string) (Lang, error) {
	t, err := language.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("language %q: %w", s, ErrUnsupported)
	}
	base, _ := t.Base()
	l := Lang(base.String())
	if !l.Valid() {
		return "", fmt.Errorf("language %q: %w", s, ErrUnsupported)
	}
	return l, nil
}

// matcher picks among the supported languages, English first so that it
// is the fallback (RFC 9110 §12.5.4: the client's weighted preferences).
var matcher = language.NewMatcher([]language.Tag{language.English, language.German})

// FromAcceptLanguage is the supported language an Accept-Language header
// value prefers; English when it names none of them or is malformed.
func FromAcceptLanguage(header string) Lang {
	tags, _, err := language.ParseAcceptLanguage(header)
	if err != nil || len(tags) == 0 {
		return English
	}
	_, i, conf := matcher.Match(tags...)
	if conf == language.No {
		return English
	}
	return Supported[i]
}

// Cookie is the name of the cookie the language switch sets.
const Cookie = "lang"

// FromRequest is the language of a web request: ?lang= (the switch on the
// page), then the cookie the switch set, then Accept-Language.
func FromRequest(r *http.Request) Lang {
	if l, err := Parse(r.URL.Query().Get("lang")); err == nil {
		return l
	}
	if c, err := r.Cookie(Cookie); err == nil {
		if l, err := Parse(c.Value); err == nil {
			return l
		}
	}
	return FromAcceptLanguage(r.Header.Get("Accept-Language"))
}

// cat is the catalogue of every language; built once from the immutable
// maps, never changed after.
var cat = func() catalog.Catalog {
	b := catalog.NewBuilder(catalog.Fallback(language.English))
	for l, msgs := range catalogues {
		for k, v := range msgs {
			if err := b.SetString(l.Tag(), k, v); err != nil {
				panic(fmt.Sprintf("i18n: %s %q: %v", l, k, err))
			}
		}
	}
	return b
}()

// printers are one message.Printer per language (safe for concurrent use:
// a Printer's Sprintf allocates its own state).
var printers = map[Lang]*message.Printer{
	English: message.NewPrinter(language.English, message.Catalog(cat)),
	German:  message.NewPrinter(language.German, message.Catalog(cat)),
}

// T is the message key in language l, formatted with args. A key without
// a message (a programming error TestCatalogues catches) prints as itself.
func T(l Lang, key string, args ...any) string {
	return printers[l.Or(English)].Sprintf(key, args...)
}

// Has reports whether key has a message (in every language: the
// catalogues are complete, TestCatalogues).
func Has(key string) bool {
	_, ok := catalogues[English][key]
	return ok
}

// Text is a fixed English text of another package (a verdict's evidence, a
// note, an error the web shows) in language l: the catalogues hold such
// texts under "text." + the English text (texts.go). A text made at run
// time (a DKIM result, a duration) has no entry and stays as it is.
func Text(l Lang, english string) string {
	key := "text." + english
	if Has(key) {
		return T(l, key)
	}
	return english
}

// Sentence is a sentence kept as its English fmt format and arguments
// (the inbound check's Message) in language l: the format's translation
// ("text." + format) with every argument that is itself a fixed text
// translated too (i18n.Text). A format without a translation is filled in
// as it is, so that nothing is lost.
func Sentence(l Lang, format string, args []string) string {
	as := make([]any, len(args))
	for i, a := range args {
		as[i] = Text(l, a)
	}
	if key := "text." + format; Has(key) {
		return T(l, key, as...)
	}
	return fmt.Sprintf(format, as...)
}

// formats are the texts with arguments ("text." + an English fmt format
// with %s), each as a pattern that matches the English it formats, the
// longest first (the most specific wins). Built once, never changed after.
// Only the outbound texts: inbound sentences are translated from their
// stored message (Sentence), never read back from English.
var formats = compileFormats(texts)

type textFormat struct {
	key string
	re  *regexp.Regexp
}

// Formatted is a text another package formatted in English at run time
// and stored as it is (why a result mail was withheld, say) in language l:
// a fixed text as Text does, else the first catalogued format it matches,
// with its arguments translated the same way (three levels deep). A text
// that matches none stays as it is.
func Formatted(l Lang, english string) string {
	return formatted(l, english, 3)
}

func formatted(l Lang, english string, depth int) string {
	if Has("text."+english) || l.Or(English) == English || depth == 0 {
		return Text(l, english)
	}
	for _, f := range formats {
		m := f.re.FindStringSubmatch(english)
		if m == nil {
			continue
		}
		args := make([]any, len(m)-1)
		for i, a := range m[1:] {
			args[i] = formatted(l, a, depth-1)
		}
		return T(l, f.key, args...)
	}
	return english
}

// HTML is T for a message that holds HTML markup of its own (keys ending
// in ".html": the catalogue's, never input): its arguments are escaped,
// the message is not. The web's templates take it as template.HTML.
func HTML(l Lang, key string, args ...any) string {
	esc := make([]any, len(args))
	for i, a := range args {
		esc[i] = html.EscapeString(fmt.Sprint(a))
	}
	return T(l, key, esc...)
}
