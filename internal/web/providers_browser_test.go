package web

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailsec/mailsec/internal/browsertest"
)

// TestProvidersBrowser drives headless Chromium through the provider
// table: filtering by text and by colour and sorting by a header happen
// in place (the page is never reloaded: a mark set on the window stays),
// and the address follows, so the server answers a copied link with the
// same table (TestProvidersPage). A screenshot goes to $MAILSEC_ARTIFACTS
// when set.
func TestProvidersBrowser(t *testing.T) {
	chromium := browsertest.Require(t)
	e := providerEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	bctx := browsertest.Start(t, ctx, chromium, 1200, 900)

	if err := chromedp.Do(bctx, chromedp.Navigate(e.ts.URL+"/providers"), chromedp.WaitVisible("#providers")); err != nil {
		t.Fatalf("opening the provider table: %v", err)
	}
	wait := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
			shown, _ := chromedp.Run(bctx, chromedp.Evaluate[string](visibleRows))
			t.Fatalf("%s: %v (rows shown: %s)", what, err, shown)
		}
	}
	wait("the page's script", `document.documentElement.dataset.providersScript === "ready"`)
	// eval runs a script that yields a boolean (as a user's change of a
	// field: SetValue fires no event).
	eval := func(expr string) {
		t.Helper()
		if _, err := chromedp.Run(bctx, chromedp.Evaluate[bool](expr)); err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
	}
	eval(`(window.notReloaded = 1) === 1`)

	// Filter by text: typing is enough.
	if err := chromedp.Do(bctx, chromedp.SendKeys("#filter-q", "backup")); err != nil {
		t.Fatal(err)
	}
	wait("filter by text", visibleRows+` === "red.example" && location.search === "?q=backup" &&
		document.getElementById("providers-count").textContent === "1 of 3 providers shown." &&
		document.getElementById("providers-csv").getAttribute("href") === "/providers.csv?q=backup"`)

	// Clear it, then sort by the last test, newest first (two clicks).
	eval(`(document.getElementById("filter-q").value = "") === "" && document.getElementById("filter-q").dispatchEvent(new Event("input", {bubbles: true}))`)
	if err := chromedp.Do(bctx, chromedp.Click(`th a[data-sort="tested"]`), chromedp.Click(`th a[data-sort="tested"]`)); err != nil {
		t.Fatal(err)
	}
	wait("sort by last test, newest first", visibleRows+` === "red.example,green.example,inbound.example" &&
		location.search === "?sort=tested&order=desc" &&
		document.querySelector('th a[data-sort="tested"]').parentNode.getAttribute("aria-sort") === "descending"`)

	// Filter by inbound colour.
	if err := chromedp.Do(bctx, chromedp.SetValue("#filter-inbound", "green")); err != nil {
		t.Fatal(err)
	}
	eval(`document.getElementById("filter-inbound").dispatchEvent(new Event("change", {bubbles: true}))`)
	wait("filter by inbound colour", visibleRows+` === "inbound.example" && location.search === "?inbound=green&sort=tested&order=desc"`)
	wait("no reload", `window.notReloaded === 1`)

	if dir := os.Getenv("MAILSEC_ARTIFACTS"); dir != "" {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(90))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "providers.png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// visibleRows is a script: the domains of the rows shown, in order.
const visibleRows = `Array.from(document.querySelectorAll("#providers tbody tr[data-domain]")).filter(r => !r.hidden).map(r => r.dataset.domain).join(",")`
