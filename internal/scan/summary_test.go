package scan

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mailsec/mailsec/internal/store"
)

// TestSummarizeStored reads checks as the store keeps them: written by
// the current check, and by an older version without the keys added
// since (mailsec.check.v1 only ever adds keys).
func TestSummarizeStored(t *testing.T) {
	tests := []struct {
		file string
		want store.ScanSummary
	}{
		{"check-v1.json", store.ScanSummary{Colour: "green", Qualified: true, DNSSEC: true, DANE: true, MTASTS: true, ValidCert: true, STARTTLS: true}},
		{"check-v1-red.json", store.ScanSummary{Colour: "red", DNSSEC: true, DANE: true, MTASTS: true}},
		{"check-v1-old.json", store.ScanSummary{Colour: "yellow", STARTTLS: true}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			js, err := os.ReadFile(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Summarize(js)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("summary %+v, want %+v", got, tc.want)
			}
		})
	}
	for _, bad := range []string{`{"schema":"mailsec.check.v2","colour":"green"}`, `{"schema":`, `[]`} {
		if _, err := Summarize([]byte(bad)); err == nil {
			t.Errorf("Summarize(%s): no error", bad)
		}
	}
}
