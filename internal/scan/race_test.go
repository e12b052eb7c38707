//go:build race

package scan

// raceEnabled: the race detector slows the SQLite store (transpiled C)
// about tenfold; the largest tests shrink under it.
const raceEnabled = true
