package listen

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
)

// closeAll closes ls at the end of the test.
func closeAll(t *testing.T, ls []net.Listener) {
	t.Helper()
	t.Cleanup(func() {
		for _, l := range ls {
			l.Close()
		}
	})
}

func TestTCP(t *testing.T) {
	ctx := t.Context()
	ls, err := TCP(ctx, "test", []string{"127.0.0.1:0", "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	closeAll(t, ls)
	if len(ls) != 2 || ls[0].Addr().String() == ls[1].Addr().String() {
		t.Fatalf("listeners %v, want two on different ports", ls)
	}
	// The listeners accept.
	c, err := net.Dial("tcp", ls[1].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestTCPBusy: the second address is taken. The error names it and wraps
// the cause, and the first listener is closed again (its port can be bound
// once more).
func TestTCPBusy(t *testing.T) {
	ctx := t.Context()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()

	ls, err := TCP(ctx, "test", []string{freeAddr, busy.Addr().String()})
	if err == nil {
		closeAll(t, ls)
		t.Fatal("no error for a busy port")
	}
	if want := "test: listen " + busy.Addr().String() + ": "; !errors.Is(err, syscall.EADDRINUSE) || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q: want EADDRINUSE starting %q", err, want)
	}
	again, err := net.Listen("tcp", freeAddr)
	if err != nil {
		t.Fatalf("first listener was not closed: %v", err)
	}
	again.Close()
}

// TestTCPDualStack: an empty host listens on both families where the host
// has IPv6 (the lab and CI do; a host without ::1 skips).
func TestTCPDualStack(t *testing.T) {
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		l.Close()
	}
	ls, err := TCP(t.Context(), "test", []string{":0"})
	if err != nil {
		t.Fatal(err)
	}
	closeAll(t, ls)
	_, port, _ := net.SplitHostPort(ls[0].Addr().String())
	for _, host := range []string{"127.0.0.1", "::1"} {
		c, err := net.Dial("tcp", net.JoinHostPort(host, port))
		if err != nil {
			t.Errorf("dial %s: %v", host, err)
			continue
		}
		c.Close()
	}
}

// closer records that it was closed.
type closer struct{ closed *int }

func (c closer) Close() error { *c.closed++; return nil }

func TestAllClosesOnError(t *testing.T) {
	closed := 0
	errOpen := errors.New("open failed")
	_, err := All(context.Background(), []string{"a", "b", "c"}, func(_ context.Context, addr string) (closer, error) {
		if addr == "c" {
			return closer{}, errOpen
		}
		return closer{&closed}, nil
	})
	if !errors.Is(err, errOpen) {
		t.Errorf("err = %v, want %v", err, errOpen)
	}
	if closed != 2 {
		t.Errorf("%d listeners closed, want 2", closed)
	}
}
