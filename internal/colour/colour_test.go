package colour

import (
	"encoding/json"
	"testing"
)

func TestKnown(t *testing.T) {
	tests := []struct {
		c    Colour
		want bool
	}{
		{Red, true}, {Yellow, true}, {White, true}, {Green, true}, {Grey, true},
		{"", false}, {"gray", false}, {"Green", false}, {"<b>", false},
	}
	for _, tc := range tests {
		if got := tc.c.Known(); got != tc.want {
			t.Errorf("%q.Known() = %v, want %v", tc.c, got, tc.want)
		}
	}
}

// TestJSON pins the encoding stored documents and the API use.
func TestJSON(t *testing.T) {
	b, err := json.Marshal(struct {
		C Colour `json:"colour"`
	}{Green})
	if err != nil || string(b) != `{"colour":"green"}` {
		t.Fatalf("%s, %v", b, err)
	}
	var v struct {
		C Colour `json:"colour"`
	}
	if err := json.Unmarshal([]byte(`{"colour":"grey"}`), &v); err != nil || v.C != Grey {
		t.Fatalf("%q, %v", v.C, err)
	}
}
