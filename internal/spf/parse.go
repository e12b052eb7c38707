// Package spf parses Sender Policy Framework records (RFC 7208) and counts
// the DNS look-ups a record costs a receiver (RFC 7208 §4.6.4).
//
// It does not evaluate check_host() for a sender: the inbound check only
// needs the syntax of a domain's record and whether its include/redirect
// tree stays within the limits every receiver enforces.
//
// TXT records: a TXT RR may hold several character-strings; RFC 7208 §3.3
// says they are concatenated without spaces before parsing. Parse and
// Select take records whose strings the caller has already joined
// (internal/resolver's LookupTXT does this).
package spf

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec/internal/untrusted"
)

// Errors of parsing and selection. Syntax errors are what RFC 7208 §4.6
// calls permerror.
var (
	// ErrNotSPF: the TXT record does not start with the version section
	// "v=spf1" ended by a space or the end of the record (§4.5).
	ErrNotSPF = errors.New("spf: not an SPF record (no v=spf1)")
	// ErrSyntax: a term does not follow the grammar of §12 (permerror,
	// §4.6). The error text names the offending term.
	ErrSyntax = errors.New("spf: syntax error")
	// ErrNoRecord: no TXT record is an SPF record (§4.5: result "none").
	ErrNoRecord = errors.New("spf: no SPF record")
	// ErrMultipleRecords: more than one TXT record is an SPF record
	// (§4.5: permerror).
	ErrMultipleRecords = errors.New("spf: more than one SPF record")
)

// Qualifier is the result a matching mechanism yields (§4.6.2).
type Qualifier byte

// The qualifiers; a mechanism without one has Pass.
const (
	Pass     Qualifier = '+'
	Fail     Qualifier = '-'
	SoftFail Qualifier = '~'
	Neutral  Qualifier = '?'
)

// String returns the result name ("pass", "fail", "softfail", "neutral").
func (q Qualifier) String() string {
	switch q {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	case SoftFail:
		return "softfail"
	case Neutral:
		return "neutral"
	}
	return fmt.Sprintf("Qualifier(%q)", byte(q))
}

// Kind names a mechanism (§5), always lower case.
type Kind string

// The mechanisms of RFC 7208 §5.
const (
	All     Kind = "all"
	Include Kind = "include"
	A       Kind = "a"
	MX      Kind = "mx"
	PTR     Kind = "ptr"
	IP4     Kind = "ip4"
	IP6     Kind = "ip6"
	Exists  Kind = "exists"
)

// QueriesDNS reports whether the mechanism costs one of the 10 DNS
// look-ups of §4.6.4 (include, a, mx, ptr, exists; the redirect modifier
// is the sixth such term).
func (k Kind) QueriesDNS() bool {
	switch k {
	case Include, A, MX, PTR, Exists:
		return true
	}
	return false
}

// Mechanism is one directive: [qualifier] mechanism (§4.6.1).
type Mechanism struct {
	Qualifier Qualifier // Pass when none was written
	Kind      Kind
	// Domain is the domain-spec as written, macros unexpanded (§7); empty
	// for all, ip4, ip6 and for a, mx, ptr without ":domain".
	Domain string
	// Net is the network of ip4 and ip6. Host bits past the prefix are
	// kept as written (§5.6 ignores them).
	Net netip.Prefix
	// Prefix4 and Prefix6 are the dual-cidr-length of a and mx (§5.6):
	// 32 and 128 when not written.
	Prefix4, Prefix6 int
}

// HasMacro reports whether the domain-spec contains a macro (§7), so
// that the name to query depends on the sender.
func (m Mechanism) HasMacro() bool { return strings.Contains(m.Domain, "%") }

// String formats the mechanism; a Pass qualifier and default CIDR lengths
// are omitted.
func (m Mechanism) String() string {
	var b strings.Builder
	if m.Qualifier != Pass && m.Qualifier != 0 {
		b.WriteByte(byte(m.Qualifier))
	}
	b.WriteString(string(m.Kind))
	switch m.Kind {
	case IP4, IP6:
		b.WriteByte(':')
		b.WriteString(m.Net.Addr().String())
		if m.Net.Bits() != m.Net.Addr().BitLen() {
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(m.Net.Bits()))
		}
		return b.String()
	}
	if m.Domain != "" {
		b.WriteByte(':')
		b.WriteString(m.Domain)
	}
	if m.Kind == A || m.Kind == MX {
		if m.Prefix4 != 32 {
			b.WriteByte('/')
			b.WriteString(strconv.Itoa(m.Prefix4))
		}
		if m.Prefix6 != 128 {
			b.WriteString("//")
			b.WriteString(strconv.Itoa(m.Prefix6))
		}
	}
	return b.String()
}

// Modifier is a name=value term that is neither redirect nor exp (§6:
// unknown modifiers are ignored by receivers but must be well-formed).
type Modifier struct {
	Name  string // as written
	Value string // macro-string, unexpanded
}

// Record is a parsed SPF record. Mechanisms keep their order (it is the
// order of evaluation, §4.6.2); modifiers may appear anywhere (§6) and
// are kept apart.
type Record struct {
	Mechanisms []Mechanism
	// Redirect and Exp are the domain-specs of the redirect= and exp=
	// modifiers (§6.1, §6.2), empty when absent.
	Redirect, Exp string
	// Modifiers are the unknown modifiers, in order.
	Modifiers []Modifier
}

// String formats the record: "v=spf1", the mechanisms in order, then
// redirect, exp and the unknown modifiers.
func (r *Record) String() string {
	var b strings.Builder
	b.WriteString("v=spf1")
	for _, m := range r.Mechanisms {
		b.WriteByte(' ')
		b.WriteString(m.String())
	}
	if r.Redirect != "" {
		b.WriteString(" redirect=")
		b.WriteString(r.Redirect)
	}
	if r.Exp != "" {
		b.WriteString(" exp=")
		b.WriteString(r.Exp)
	}
	for _, m := range r.Modifiers {
		b.WriteByte(' ')
		b.WriteString(m.Name)
		b.WriteByte('=')
		b.WriteString(m.Value)
	}
	return b.String()
}

// IsSPF reports whether a TXT record is an SPF record: it begins with the
// version section "v=spf1" ended by a space or the end of the record
// (§4.5). The comparison ignores case, as the ABNF of §12 does.
func IsSPF(txt string) bool {
	return len(txt) >= 6 && strings.EqualFold(txt[:6], "v=spf1") && (len(txt) == 6 || txt[6] == ' ')
}

// Parse parses one SPF record (a TXT record with its strings joined,
// §3.3) by the grammar of RFC 7208 §12:
//
//	record    = version terms *SP
//	terms     = *( 1*SP ( directive / modifier ) )
//	directive = [ qualifier ] mechanism
//
// A record that is not SPF gives ErrNotSPF; any bad term gives an error
// wrapping ErrSyntax that quotes the term. Unknown mechanisms are errors
// (§4.6.1), unknown modifiers are kept (§6); redirect and exp may occur
// once each (§6). Macros are validated (§7.1) but not expanded.
func Parse(txt string) (*Record, error) {
	if !IsSPF(txt) {
		return nil, fmt.Errorf("%w: %q", ErrNotSPF, untrusted.Truncate(txt, 40))
	}
	r := &Record{}
	for _, term := range strings.Split(txt[6:], " ") {
		if term == "" {
			continue // 1*SP between terms, *SP at the end
		}
		if err := r.addTerm(term); err != nil {
			return nil, fmt.Errorf("%w in term %q: %s", ErrSyntax, untrusted.Truncate(term, 80), err)
		}
	}
	return r, nil
}

// Select chooses the SPF record among the TXT records of a domain
// (§4.5): records that are not SPF (IsSPF) are discarded; none left gives
// ErrNoRecord, more than one ErrMultipleRecords (permerror); the one left
// must parse. Each element is one TXT RR with its strings already
// concatenated by the caller (§3.3).
func Select(txts []string) (*Record, error) {
	txt, err := selectText(txts)
	if err != nil {
		return nil, err
	}
	return Parse(txt)
}

func selectText(txts []string) (string, error) {
	var found []string
	for _, t := range txts {
		if IsSPF(t) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return "", ErrNoRecord
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w (%d records start with v=spf1; RFC 7208 §4.5: permerror)", ErrMultipleRecords, len(found))
}

// addTerm parses one term and adds it to r. The error text is the reason
// only; Parse wraps it with ErrSyntax and the term.
func (r *Record) addTerm(term string) error {
	for i := 0; i < len(term); i++ {
		if c := term[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("character %q not allowed (only visible ASCII, RFC 7208 §12)", c)
		}
	}
	// A modifier is name "=" macro-string; a name never contains ':' or
	// '/', so "a:x=y" is the mechanism a with the domain "x=y".
	if eq := strings.IndexByte(term, '='); eq >= 0 && validName(term[:eq]) {
		return r.addModifier(term[:eq], term[eq+1:])
	}
	m := Mechanism{Qualifier: Pass}
	switch term[0] {
	case '+', '-', '~', '?':
		m.Qualifier = Qualifier(term[0])
		term = term[1:]
	}
	name, arg := term, ""
	if i := strings.IndexAny(term, ":/"); i >= 0 {
		name, arg = term[:i], term[i:]
	}
	m.Kind = Kind(strings.ToLower(name))
	switch m.Kind {
	case All:
		if arg != "" {
			return errors.New("all takes no argument")
		}
	case Include, Exists:
		d, err := domainArg(arg, true, string(m.Kind)+" needs ':' and a domain")
		if err != nil {
			return err
		}
		m.Domain = d
	case PTR:
		d, err := domainArg(arg, false, "ptr takes no CIDR length")
		if err != nil {
			return err
		}
		m.Domain = d
	case A, MX:
		rest, p4, p6, err := cutDualCIDR(arg)
		if err != nil {
			return err
		}
		m.Prefix4, m.Prefix6 = p4, p6
		if m.Domain, err = domainArg(rest, false, "bad CIDR length"); err != nil {
			return err
		}
	case IP4, IP6:
		p, err := parseNet(m.Kind, arg)
		if err != nil {
			return err
		}
		m.Net = p
	default:
		if name == "" {
			return errors.New("qualifier without a mechanism")
		}
		return fmt.Errorf("unknown mechanism %q (RFC 7208 §4.6.1: permerror)", untrusted.Truncate(name, 30))
	}
	r.Mechanisms = append(r.Mechanisms, m)
	return nil
}

// domainArg reads a mechanism's ":" domain-spec argument, required for
// include and exists (RFC 7208 §5.2, §5.7), optional for a, mx and ptr
// (§5.3, §5.4, §5.5: "" then gives ""). noColon is the error text for an
// argument that does not start with ':'.
func domainArg(arg string, required bool, noColon string) (string, error) {
	if arg == "" && !required {
		return "", nil
	}
	d, ok := strings.CutPrefix(arg, ":")
	if !ok {
		return "", errors.New(noColon)
	}
	if err := checkDomainSpec(d); err != nil {
		return "", err
	}
	return d, nil
}

func (r *Record) addModifier(name, value string) error {
	switch strings.ToLower(name) {
	case "redirect", "exp":
		target := &r.Redirect
		if strings.EqualFold(name, "exp") {
			target = &r.Exp
		}
		if *target != "" {
			return fmt.Errorf("%s given twice (RFC 7208 §6: at most once)", strings.ToLower(name))
		}
		if err := checkDomainSpec(value); err != nil {
			return err
		}
		*target = value
	default:
		// Unknown modifiers: name "=" macro-string (§6, §12); every macro
		// letter is allowed since the value is never expanded here.
		if _, _, err := scanMacroString(value, macroLettersExp); err != nil {
			return err
		}
		r.Modifiers = append(r.Modifiers, Modifier{Name: name, Value: value})
	}
	return nil
}

// validName: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ) (§12).
func validName(s string) bool {
	if s == "" || !isAlpha(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlpha(c) && !isDigit(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// cutDualCIDR splits the argument of a or mx into [":" domain-spec] and
// dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ] (§5.6).
// A domain-spec may itself contain '/', so the lengths are taken from the
// right.
func cutDualCIDR(arg string) (rest string, p4, p6 int, err error) {
	p4, p6 = 32, 128
	if i := strings.LastIndex(arg, "//"); i >= 0 && allDigits(arg[i+2:]) {
		if p6, err = parseCIDR(arg[i+2:], 128); err != nil {
			return "", 0, 0, err
		}
		arg = arg[:i]
	}
	if i := strings.LastIndexByte(arg, '/'); i >= 0 && allDigits(arg[i+1:]) {
		if p4, err = parseCIDR(arg[i+1:], 32); err != nil {
			return "", 0, 0, err
		}
		arg = arg[:i]
	}
	if strings.HasPrefix(arg, "/") {
		return "", 0, 0, errors.New("bad CIDR length")
	}
	return arg, p4, p6, nil
}

// parseCIDR: ip4-cidr-length = "/" ("0" / %x31-39 0*1DIGIT), ip6 likewise
// with up to three digits (§12): no leading zeros, at most max.
func parseCIDR(s string, max int) (int, error) {
	if s == "" || len(s) > 3 || !allDigits(s) || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("bad CIDR length %q", s)
	}
	n, _ := strconv.Atoi(s)
	if n > max {
		return 0, fmt.Errorf("CIDR length %d longer than %d", n, max)
	}
	return n, nil
}

// parseNet parses ":" address [ "/" length ] of ip4 or ip6 (§5.6).
func parseNet(kind Kind, arg string) (netip.Prefix, error) {
	s, ok := strings.CutPrefix(arg, ":")
	if !ok {
		return netip.Prefix{}, fmt.Errorf("%s needs ':' and an address", kind)
	}
	bits := 32
	if kind == IP6 {
		bits = 128
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		n, err := parseCIDR(s[i+1:], bits)
		if err != nil {
			return netip.Prefix{}, err
		}
		s, bits = s[:i], n
	}
	addr, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("bad %s address %q", kind, untrusted.Truncate(s, 50))
	case kind == IP4 && !addr.Is4():
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 address", untrusted.Truncate(s, 50))
	case kind == IP6 && (!addr.Is6() || addr.Zone() != ""):
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv6 address", untrusted.Truncate(s, 50))
	}
	return netip.PrefixFrom(addr, bits), nil
}

// Macro letters (§7.2): c, r and t are only allowed in explanation text.
const (
	macroLettersDomain = "slodiphv"
	macroLettersExp    = "slodiphvcrt"
)

// checkDomainSpec validates domain-spec = macro-string domain-end, with
// domain-end = ( "." toplabel [ "." ] ) / macro-expand (§7.1).
func checkDomainSpec(s string) error {
	if s == "" {
		return errors.New("empty domain-spec")
	}
	lastMacroEnd, endsInMacro, err := scanMacroString(s, macroLettersDomain)
	if err != nil || endsInMacro {
		return err
	}
	// The top label is literal text after the last macro.
	tail := strings.TrimSuffix(s[lastMacroEnd:], ".")
	dot := strings.LastIndexByte(tail, '.')
	if dot < 0 {
		return fmt.Errorf("domain-spec %q does not end in '.' and a top-level label (RFC 7208 §7.1)", untrusted.Truncate(s, 60))
	}
	if !validTopLabel(tail[dot+1:]) {
		return fmt.Errorf("bad top-level label %q in %q (RFC 7208 §7.1)", untrusted.Truncate(tail[dot+1:], 30), untrusted.Truncate(s, 60))
	}
	return nil
}

// validTopLabel: toplabel = ( *alphanum ALPHA *alphanum ) /
// ( 1*alphanum "-" *( alphanum / "-" ) alphanum ) (§7.1): letters, digits
// and inner hyphens, and not all digits unless it has a hyphen.
func validTopLabel(s string) bool {
	if s == "" || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	alpha, hyphen := false, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isAlpha(c):
			alpha = true
		case c == '-':
			hyphen = true
		case !isDigit(c):
			return false
		}
	}
	return alpha || hyphen
}

// scanMacroString validates macro-string = *( macro-expand / macro-literal )
// (§7.1):
//
//	macro-expand  = ( "%{" macro-letter transformers *delimiter "}" ) / "%%" / "%_" / "%-"
//	macro-literal = %x21-24 / %x26-7E
//	transformers  = *DIGIT [ "r" ]
//	delimiter     = "." / "-" / "+" / "," / "/" / "_" / "="
//
// letters are the allowed macro letters (either case: upper case asks for
// URL escaping, §7.3). It returns where the last macro-expand ended and
// whether the string ends with one.
func scanMacroString(s, letters string) (lastMacroEnd int, endsInMacro bool, err error) {
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			if c < 0x21 || c > 0x7e {
				return 0, false, fmt.Errorf("character %q not allowed", c)
			}
			i++
			continue
		}
		if i+1 >= len(s) {
			return 0, false, errors.New("'%' at the end (write %% for a percent sign, RFC 7208 §7.1)")
		}
		switch s[i+1] {
		case '%', '_', '-':
			i += 2
		case '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return 0, false, errors.New("macro '%{' without '}'")
			}
			if err := checkMacroBody(s[i+2:i+end], letters); err != nil {
				return 0, false, err
			}
			i += end + 1
		default:
			return 0, false, fmt.Errorf("bad macro %q (RFC 7208 §7.1: %%{x}, %%%%, %%_ or %%-)", s[i:i+2])
		}
		lastMacroEnd = i
	}
	return lastMacroEnd, lastMacroEnd == len(s) && len(s) > 0, nil
}

// checkMacroBody validates macro-letter transformers *delimiter.
func checkMacroBody(body, letters string) error {
	if body == "" {
		return errors.New("empty macro %{}")
	}
	l := body[0]
	if !strings.ContainsRune(letters, rune(l|0x20)) || !isAlpha(l) {
		if strings.ContainsRune(macroLettersExp, rune(l|0x20)) && isAlpha(l) {
			return fmt.Errorf("macro letter %q only allowed in explanation text (RFC 7208 §7.2)", l)
		}
		return fmt.Errorf("unknown macro letter %q (RFC 7208 §7.2)", l)
	}
	rest := body[1:]
	n := 0
	for n < len(rest) && isDigit(rest[n]) {
		n++
	}
	if n > 0 && strings.Trim(rest[:n], "0") == "" {
		return errors.New("macro digit transformer must be nonzero (RFC 7208 §7.3)")
	}
	rest = rest[n:]
	if rest != "" && (rest[0] == 'r' || rest[0] == 'R') {
		rest = rest[1:]
	}
	for i := 0; i < len(rest); i++ {
		if !strings.ContainsRune(".-+,/_=", rune(rest[i])) {
			return fmt.Errorf("bad macro delimiter %q (RFC 7208 §7.1)", rest[i])
		}
	}
	return nil
}

func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}
