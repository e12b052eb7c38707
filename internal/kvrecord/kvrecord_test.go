package kvrecord

import "testing"

func TestCutDelim(t *testing.T) {
	for _, tc := range []struct {
		in, rest string
		ok       bool
	}{
		{"; id=1", "id=1", true},
		{" \t;\t id=1", "id=1", true},
		{"id=1", "id=1", false},
		{"  ", "", false},
		{";", "", true},
	} {
		rest, ok := CutDelim(tc.in)
		if rest != tc.rest || ok != tc.ok {
			t.Errorf("CutDelim(%q) = %q, %v; want %q, %v", tc.in, rest, ok, tc.rest, tc.ok)
		}
	}
}

func TestValidExtName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"a", true}, {"x-y_z.1", true}, {"9abc", true},
		{"", false}, {"-a", false}, {"_a", false}, {"a b", false}, {"a=b", false},
		{"abcdefghijklmnopqrstuvwxyz012345", true},   // 32
		{"abcdefghijklmnopqrstuvwxyz0123456", false}, // 33
	} {
		if got := ValidExtName(tc.name); got != tc.ok {
			t.Errorf("ValidExtName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestValueChar(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := c >= 0x21 && c <= 0x7e && c != '=' && c != ';'
		if got := ValueChar(byte(c)); got != want {
			t.Errorf("ValueChar(%#x) = %v", c, got)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		fields []Field
		want   string
	}{
		{nil, ""},
		{[]Field{{"v", "STSv1"}}, "v=STSv1"},
		{[]Field{{"v", "STSv1"}, {"id", "20240101"}, {"x-ext", "a:b"}}, "v=STSv1; id=20240101; x-ext=a:b"},
	} {
		if got := Format(tc.fields...); got != tc.want {
			t.Errorf("Format(%v) = %q, want %q", tc.fields, got, tc.want)
		}
	}
}

func TestCutValue(t *testing.T) {
	for _, tc := range []struct{ in, value, rest string }{
		{"abc; id=1", "abc", "; id=1"},
		{"a:b/c", "a:b/c", ""},
		{"x=y", "x", "=y"},
		{" x", "", " x"},
		{"", "", ""},
		{"é", "", "é"},
	} {
		value, rest := CutValue(tc.in)
		if value != tc.value || rest != tc.rest {
			t.Errorf("CutValue(%q) = %q, %q; want %q, %q", tc.in, value, rest, tc.value, tc.rest)
		}
	}
}
