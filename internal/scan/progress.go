package scan

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// IsTerminal reports whether f is a terminal (TCGETS succeeds).
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// ProgressPrinter draws Progress snapshots: a bar redrawn in place on a
// terminal, or a plain line every Every otherwise (logs, pipes, CI).
type ProgressPrinter struct {
	W     io.Writer
	TTY   bool
	Every time.Duration // plain lines: at most one per Every; 0 means 5s
	Width int           // bar width on a terminal; 0 means 30

	mu   sync.Mutex
	last time.Time
	drew bool
}

// Print draws p.
func (pp *ProgressPrinter) Print(p Progress) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	every := pp.Every
	if every <= 0 {
		every = 5 * time.Second
	}
	if pp.TTY {
		fmt.Fprintf(pp.W, "\r\x1b[K%s", pp.bar(p))
		pp.drew = true
		if p.Final {
			fmt.Fprintln(pp.W)
			pp.drew = false
		}
		return
	}
	if !p.Final && time.Since(pp.last) < every {
		return
	}
	pp.last = time.Now()
	fmt.Fprintln(pp.W, plainLine(p))
}

func (pp *ProgressPrinter) bar(p Progress) string {
	w := pp.Width
	if w <= 0 {
		w = 30
	}
	frac := 0.0
	if p.Total > 0 {
		frac = float64(p.Finished) / float64(p.Total)
	}
	full := min(w, int(frac*float64(w)))
	return fmt.Sprintf("[%s%s] %d/%d %5.1f%%  %.1f/s  ETA %s  errors %d  running %d",
		strings.Repeat("#", full), strings.Repeat("-", w-full), p.Finished, p.Total, 100*frac, p.Rate, eta(p), p.Errors, p.Running)
}

func plainLine(p Progress) string {
	pct := 0.0
	if p.Total > 0 {
		pct = 100 * float64(p.Finished) / float64(p.Total)
	}
	state := "progress"
	if p.Final {
		state = "finished"
	}
	return fmt.Sprintf("scan %s: %d/%d (%.1f%%) rate %.1f/s eta %s errors %d elapsed %s",
		state, p.Finished, p.Total, pct, p.Rate, eta(p), p.Errors, p.Elapsed.Round(time.Second))
}

func eta(p Progress) string {
	if p.Final || p.Finished >= p.Total {
		return "0s"
	}
	if p.ETA <= 0 {
		return "?"
	}
	return p.ETA.Round(time.Second).String()
}
