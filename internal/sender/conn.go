package sender

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec/internal/smtpclient"
)

// quitTimeout bounds the wait for the reply to QUIT.
const quitTimeout = 5 * time.Second

// conn is the sender's side of one SMTP session: internal/smtpclient's
// Conn (4 KiB line and 64 KiB reply limits, its defaults), with its
// errors told in the sender's sentinels.
type conn struct {
	*smtpclient.Conn
	ctx context.Context
}

// reply reads one reply (RFC 5321 §4.2); the text comes back with lines
// joined by "\n".
func (c conn) reply(timeout time.Duration) (int, string, error) {
	return c.result(c.ReadReply(timeout))
}

// result turns a reply of the client into code and text, or a sender
// error.
func (c conn) result(r smtpclient.Reply, err error) (int, string, error) {
	if err != nil {
		return 0, "", c.err(err)
	}
	return r.Code, r.Text(), nil
}

// quit says goodbye, best effort (RFC 5321 §4.1.1.10).
func (c conn) quit() { c.Quit(quitTimeout) }

// err maps an error of the client to ErrProtocol (a broken reply),
// ErrMessage (a command that would break the line) or ErrConnect (the
// connection; the context's reason first).
func (c conn) err(err error) error {
	var ioe *smtpclient.IOError
	switch {
	case errors.Is(err, smtpclient.ErrMalformed), errors.Is(err, smtpclient.ErrTooLong),
		errors.Is(err, smtpclient.ErrCleartextAfterSTARTTLS):
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	case errors.Is(err, smtpclient.ErrLineBreak):
		return fmt.Errorf("%w: %v", ErrMessage, err)
	case errors.As(err, &ioe):
		err = ioe.Err
		if ce := c.ctx.Err(); ce != nil {
			return fmt.Errorf("%w: %s: %w", ErrConnect, ioe.Op, ce)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fmt.Errorf("%w: %s: timeout: %w", ErrConnect, ioe.Op, err)
		}
		return fmt.Errorf("%w: %s: %w", ErrConnect, ioe.Op, err)
	}
	return err
}

// oneLine joins a reply's lines for transcripts.
func oneLine(code int, text string) string {
	return strconv.Itoa(code) + " " + strings.ReplaceAll(text, "\n", " / ")
}
