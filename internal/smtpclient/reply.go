package smtpclient

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Default limits on what a server may send.
const (
	// DefaultMaxLine bounds one reply line, without its CRLF (RFC 5321
	// §4.5.3.1.5 allows 512 octets with it; generous for servers that
	// exceed it).
	DefaultMaxLine = 4096
	// DefaultMaxReply bounds one reply, all lines with their line ends.
	DefaultMaxReply = 64 << 10
)

// Errors of the reply parser; errors.Is tells them apart.
var (
	// ErrMalformed: the server sent something that is not an SMTP reply
	// (RFC 5321 §4.2). The error's text says what, in net/textproto's
	// words: short response: "HTTP/1.1 400 Bad Request".
	ErrMalformed = errors.New("malformed reply")
	// ErrTooLong: a reply line or the whole reply exceeds the limits.
	ErrTooLong = errors.New("reply line or reply too long")
)

// malformed is an ErrMalformed whose text is only the detail, so that
// callers' texts read as before ("not an SMTP server: short response: …").
type malformed string

func (m malformed) Error() string        { return string(m) }
func (m malformed) Is(target error) bool { return target == ErrMalformed }

// Reply is one SMTP reply (RFC 5321 §4.2).
type Reply struct {
	Code int
	// Lines holds the text of each line after the code and its "-" or
	// " " (possibly empty).
	Lines []string
}

// Text joins the lines with "\n" (as net/textproto's ReadResponse).
func (r Reply) Text() string { return strings.Join(r.Lines, "\n") }

// Limits bound one reply; zero fields take the defaults.
type Limits struct {
	MaxLine  int // octets of one line, without CRLF; 0: DefaultMaxLine
	MaxReply int // octets of one reply with line ends; 0: DefaultMaxReply
}

func (l Limits) withDefaults() Limits {
	if l.MaxLine <= 0 {
		l.MaxLine = DefaultMaxLine
	}
	if l.MaxReply <= 0 {
		l.MaxReply = DefaultMaxReply
	}
	return l
}

// ReadReply reads one reply from r (RFC 5321 §4.2):
//
//	Reply-line = *( Reply-code "-" [ textstring ] CRLF )
//	             Reply-code [ SP textstring ] CRLF
//
// The code must be three digits from 200 to 599 and the same on every line
// ("In a multiline reply, the reply code on each of the lines MUST be the
// same", §4.2); a bare LF ends a line too (as in net/textproto). A line
// longer than lim.MaxLine or a reply longer than lim.MaxReply is
// ErrTooLong, without reading more than one buffer beyond the limit; a
// reply that is not one is ErrMalformed; a connection that ends inside a
// line is io.ErrUnexpectedEOF and before any octet io.EOF. After an error
// the reader's position is unspecified: the session cannot go on.
func ReadReply(r *bufio.Reader, lim Limits) (Reply, error) {
	lim = lim.withDefaults()
	var rep Reply
	total := 0
	for {
		line, n, err := readLine(r, lim.MaxLine)
		total += n
		if err == nil && total > lim.MaxReply {
			err = ErrTooLong
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(rep.Lines) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return Reply{}, err
		}
		code, more, text, err := parseLine(line)
		if err != nil {
			return Reply{}, err
		}
		if rep.Lines != nil && code != rep.Code {
			return Reply{}, malformed(fmt.Sprintf("reply code %d in a reply that began with %d: %q", code, rep.Code, line))
		}
		rep.Code = code
		rep.Lines = append(rep.Lines, text)
		if !more {
			return rep, nil
		}
	}
}

// readLine reads one line up to max octets (line end excluded) and returns
// it without its line end, and the octets consumed.
func readLine(r *bufio.Reader, max int) (string, int, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		// Two more octets for the CRLF; a longer line is refused before
		// it is buffered whole.
		if len(line)+len(frag) > max+2 {
			return "", len(line) + len(frag), ErrTooLong
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			n := len(line)
			line = line[:len(line)-1]
			if len(line) > 0 && line[len(line)-1] == '\r' {
				line = line[:len(line)-1]
			}
			if len(line) > max {
				return "", n, ErrTooLong
			}
			return string(line), n, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(line) > 0:
			return "", len(line), io.ErrUnexpectedEOF
		default:
			return "", len(line), err
		}
	}
}

// parseLine splits one reply line into code, continuation and text. The
// error texts are net/textproto's, so that messages about broken servers
// read as they did before this package.
func parseLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 || len(line) > 3 && line[3] != ' ' && line[3] != '-' {
		return 0, false, "", malformed(fmt.Sprintf("short response: %q", line))
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", malformed(fmt.Sprintf("invalid response code: %q", line))
		}
	}
	code, _ = strconv.Atoi(line[:3])
	switch {
	case code < 100:
		return 0, false, "", malformed(fmt.Sprintf("invalid response code: %q", line))
	case code < 200 || code > 599:
		// RFC 5321 §4.2: the first digit is 2 to 5.
		return 0, false, "", malformed(fmt.Sprintf("reply code %d", code))
	}
	if len(line) == 3 {
		// "Reply-code [ SP textstring ] CRLF": the text is optional.
		return code, false, "", nil
	}
	return code, line[3] == '-', line[4:], nil
}
