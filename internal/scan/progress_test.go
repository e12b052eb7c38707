package scan

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressPrinter(t *testing.T) {
	var tty bytes.Buffer
	pp := &ProgressPrinter{W: &tty, TTY: true, Width: 10}
	pp.Print(Progress{Total: 200, Finished: 50, Rate: 12.5, ETA: 12 * time.Second, Running: 3})
	pp.Print(Progress{Total: 200, Finished: 200, Rate: 20, Final: true})
	out := tty.String()
	for _, want := range []string{"\r\x1b[K[##--------] 50/200  25.0%  12.5/s  ETA 12s", "[##########] 200/200 100.0%", "ETA 0s"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Error("no newline after the final bar")
	}

	var plain bytes.Buffer
	pp = &ProgressPrinter{W: &plain, Every: time.Hour}
	pp.Print(Progress{Total: 10, Finished: 1, Rate: 1, ETA: 9 * time.Second})
	pp.Print(Progress{Total: 10, Finished: 2, Rate: 1}) // within Every: not printed
	pp.Print(Progress{Total: 10, Finished: 10, Final: true, Elapsed: 10 * time.Second})
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "scan progress: 1/10 (10.0%) rate 1.0/s eta 9s") ||
		!strings.Contains(lines[1], "scan finished: 10/10") || strings.Contains(plain.String(), "\r") {
		t.Errorf("plain output:\n%s", plain.String())
	}
}
