//go:build race

package report

// raceEnabled: the race detector slows verdict.Judge about tenfold;
// TestGermanWhy walks a quarter of its histories under it.
const raceEnabled = true
