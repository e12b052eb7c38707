package mailauth

import "strings"

// TagWhiteSpace is the white space of a tag list: WSP and the line
// breaks of FWS (RFC 6376 §2.8, §3.2). It is ASCII only: a value made of
// invalid UTF-8 bytes must not turn into a Unicode space (U+0085) when
// the bytes around a space are joined, and so change on a second read.
const TagWhiteSpace = " \t\r\n"

// withoutTagWhiteSpace removes TagWhiteSpace bytes from v, and keeps
// every other byte as it is (strings.Map would turn invalid UTF-8 into
// U+FFFD).
func withoutTagWhiteSpace(v string) string {
	if !strings.ContainsAny(v, TagWhiteSpace) {
		return v
	}
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if strings.IndexByte(TagWhiteSpace, v[i]) < 0 {
			b = append(b, v[i])
		}
	}
	return string(b)
}

// TagList parses a DKIM/ARC tag list (RFC 6376 §3.2): "t=v; t=v".
// White space inside values (folding) is removed.
func TagList(s string) map[string]string {
	tags := map[string]string{}
	for part := range strings.SplitSeq(s, ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		k = strings.Trim(k, TagWhiteSpace)
		if _, dup := tags[k]; dup || k == "" {
			continue
		}
		tags[k] = withoutTagWhiteSpace(v)
	}
	return tags
}
