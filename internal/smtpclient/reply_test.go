package smtpclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strings"
	"testing"
)

func read(t *testing.T, in string, lim Limits) (Reply, error) {
	t.Helper()
	return ReadReply(bufio.NewReaderSize(strings.NewReader(in), 16), lim)
}

func TestReadReply(t *testing.T) {
	small := Limits{MaxLine: 20, MaxReply: 64}
	tests := []struct {
		name  string
		in    string
		lim   Limits
		code  int
		lines []string
		err   error  // sentinel the error must wrap
		text  string // the error's text, if checked
	}{
		{name: "one line", in: "220 mx.example ESMTP\r\n", code: 220, lines: []string{"mx.example ESMTP"}},
		{name: "multiline", in: "250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n", code: 250, lines: []string{"mx.example", "PIPELINING", "STARTTLS"}},
		{name: "bare LF", in: "250-a\n250 b\n", code: 250, lines: []string{"a", "b"}},
		{name: "code without text (RFC 5321 §4.2)", in: "250\r\n", code: 250, lines: []string{""}},
		{name: "empty text", in: "250 \r\n", code: 250, lines: []string{""}},
		{name: "empty continuation", in: "250-\r\n250 x\r\n", code: 250, lines: []string{"", "x"}},
		{name: "CR inside kept", in: "250 a\rb\r\n", code: 250, lines: []string{"a\rb"}},
		{name: "line at the limit", in: "250 " + strings.Repeat("x", 16) + "\r\n", lim: small, code: 250, lines: []string{strings.Repeat("x", 16)}},

		{name: "not SMTP", in: "HTTP/1.1 400 Bad Request\r\n", err: ErrMalformed, text: `short response: "HTTP/1.1 400 Bad Request"`},
		{name: "short line", in: "25\r\n", err: ErrMalformed, text: `short response: "25"`},
		{name: "empty line", in: "\r\n", err: ErrMalformed, text: `short response: ""`},
		{name: "letters in code", in: "2x0 hi\r\n", err: ErrMalformed, text: `invalid response code: "2x0 hi"`},
		{name: "sign in code", in: "+25 hi\r\n", err: ErrMalformed, text: `invalid response code: "+25 hi"`},
		{name: "code below 100", in: "099 hi\r\n", err: ErrMalformed, text: `invalid response code: "099 hi"`},
		{name: "code 1xx", in: "150 hi\r\n", err: ErrMalformed, text: "reply code 150"},
		{name: "code 6xx", in: "600 hi\r\n", err: ErrMalformed, text: "reply code 600"},
		{name: "tab after code", in: "250\thi\r\n", err: ErrMalformed},
		{name: "codes differ (RFC 5321 §4.2)", in: "250-a\r\n220 b\r\n", err: ErrMalformed, text: `reply code 220 in a reply that began with 250: "220 b"`},
		{name: "garbage continuation", in: "250-a\r\nfoo\r\n250 b\r\n", err: ErrMalformed},
		{name: "line too long", in: "250 " + strings.Repeat("x", 17) + "\r\n", lim: small, err: ErrTooLong},
		{name: "line too long, no end", in: "250 " + strings.Repeat("x", 500), lim: small, err: ErrTooLong},
		{name: "reply too long", in: strings.Repeat("250-xxxxxxxx\r\n", 5) + "250 x\r\n", lim: small, err: ErrTooLong},
		{name: "nothing", in: "", err: io.EOF},
		{name: "ends inside a line", in: "220 mx", err: io.ErrUnexpectedEOF},
		{name: "ends inside a reply", in: "250-a\r\n", err: io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := read(t, tc.in, tc.lim)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err %v, want %v (reply %+v)", err, tc.err, r)
				}
				if tc.text != "" && err.Error() != tc.text {
					t.Fatalf("error text %q, want %q", err.Error(), tc.text)
				}
				return
			}
			if err != nil {
				t.Fatalf("err %v", err)
			}
			if r.Code != tc.code || fmt.Sprint(r.Lines) != fmt.Sprint(tc.lines) {
				t.Fatalf("got %d %q, want %d %q", r.Code, r.Lines, tc.code, tc.lines)
			}
		})
	}
}

// TestReadReplyStream reads replies one after the other from one buffer:
// each read stops at the end of its reply.
func TestReadReplyStream(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("220 hi\r\n250-a\r\n250 b\r\n354 go\r\n"))
	var got []string
	for {
		r, err := ReadReply(br, Limits{})
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%d:%s", r.Code, r.Text()))
	}
	if want := "[220:hi 250:a\nb 354:go]"; fmt.Sprint(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// FuzzReadReply feeds arbitrary bytes to the parser: it must not panic,
// must keep to its limits, must give back only replies that encode to
// themselves, and must agree with net/textproto (what both the probe and
// the sender used before) on every reply textproto can read too.
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"220 mx ESMTP\r\n",
		"250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
		"250\r\n", "250-\r\n250 \r\n", "250-a\n250 b\n",
		"250-a\r\n220 b\r\n", "250-a\r\nfoo\r\n250 b\r\n",
		"HTTP/1.1 400 Bad Request\r\n\r\n", "2x0 hi\r\n", "150 x\r\n", "600 x\r\n",
		"250 " + strings.Repeat("x", 100) + "\r\n",
		strings.Repeat("250-x\r\n", 30) + "250 y\r\n",
		"220 mx", "", "\r\n", "\n\n\n", "250 a\rb\r\n",
	} {
		f.Add([]byte(s))
	}
	lim := Limits{MaxLine: 64, MaxReply: 512}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		for range 100 {
			r, err := ReadReply(br, lim)
			if err != nil {
				if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLong) &&
					!errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if r.Code < 200 || r.Code > 599 || len(r.Lines) == 0 {
				t.Fatalf("reply %+v", r)
			}
			// Encode the reply and read it back: the same reply.
			var enc strings.Builder
			n := 0
			for i, l := range r.Lines {
				if len(l) > lim.MaxLine || strings.ContainsAny(l, "\n") {
					t.Fatalf("line %q beyond the limits or with a line feed", l)
				}
				sep := "-"
				if i == len(r.Lines)-1 {
					sep = " "
				}
				line := fmt.Sprintf("%d%s%s\r\n", r.Code, sep, l)
				n += len(line)
				enc.WriteString(line)
			}
			if n > lim.MaxReply+2*len(r.Lines) {
				t.Fatalf("reply of %d octets beyond the limit", n)
			}
			again, err := ReadReply(bufio.NewReader(strings.NewReader(enc.String())), lim)
			if err != nil || again.Code != r.Code || fmt.Sprintf("%q", again.Lines) != fmt.Sprintf("%q", r.Lines) {
				t.Fatalf("round trip of %+v: %+v, %v", r, again, err)
			}
			// net/textproto reads the encoded reply the same way.
			code, text, err := textproto.NewReader(bufio.NewReader(strings.NewReader(enc.String()))).ReadResponse(0)
			if err != nil || code != r.Code || text != r.Text() {
				t.Fatalf("textproto reads %q as %d %q (%v); we read %d %q", enc.String(), code, text, err, r.Code, r.Text())
			}
		}
	})
}
