package checkreport

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestRenderGolden pins the bytes of both renderings of every rule case:
// the JSON as `mailsec check --json` writes it (and the store keeps it,
// compact) and the text of `mailsec check`. Keys are only ever added to
// mailsec.check.v1; a change here must be deliberate (go test -update).
func TestRenderGolden(t *testing.T) {
	checked := time.Date(2026, 11, 29, 21, 24, 47, 0, time.UTC)
	for _, tc := range ruleCases() {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.CheckedAt, r.Seconds = checked, 0.0101
			r.Timings = Timings{MX: 3.1, Hosts: 5.2, MTASTS: 9.8, Records: 4, Total: 10.1}
			r.Errors = []string{}
			Evaluate(r)
			var b bytes.Buffer
			b.WriteString("== text ==\n")
			if err := r.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			b.WriteString("== json ==\n")
			enc := json.NewEncoder(&b)
			enc.SetIndent("", "  ")
			if err := enc.Encode(r); err != nil {
				t.Fatal(err)
			}
			compact, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString("== stored ==\n")
			b.Write(compact)
			b.WriteString("\n")
			path := filepath.Join("testdata", "golden", slug(tc.name)+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("%s differs from the rendering:\n%s", path, b.String())
			}
		})
	}
}

// slug turns a case name into a file name.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}
