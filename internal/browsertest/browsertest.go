// Package browsertest starts headless Chromium for the web UI's browser
// tests (internal/web), through chromedp: one way to find the program,
// skip without it (or in -short), and launch it as CI can run it.
package browsertest

import (
	"context"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/mailsec/mailsec/internal/peertest"
)

// Require returns the path of Chromium; without it the test is skipped
// (a failure under MAILSEC_REQUIRE_PEERS=1, peertest.Require), and in
// -short too.
func Require(t *testing.T) string {
	t.Helper()
	chromium := peertest.Require(t, "chromium")
	if testing.Short() {
		t.Skip("browser test: not in -short")
	}
	return chromium
}

// Start launches chromium headless with a window of width × height and
// returns a chromedp context on its first tab; the browser ends with ctx
// or at the test's cleanup. The first action run on the context starts
// the browser and ties it to that context: run one on this context
// before using shorter-lived children.
func Start(t *testing.T, ctx context.Context, chromium string, width, height int) context.Context {
	t.Helper()
	alloc, acancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(width, height),
		// /dev/shm is small in containers.
		chromedp.Flag("disable-dev-shm-usage", true))...)
	bctx, bcancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { bcancel(); acancel() })
	return bctx
}
