package expr

import (
	"math"
	"strings"
	"testing"
)

func TestParseJSON(t *testing.T) {
	v, err := ParseJSON([]byte(`{"b": 1, "A": [true, null, "s", 1e400], "a": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	obj := v.(*Object)
	var keys []string
	for k := range obj.All() {
		keys = append(keys, k)
	}
	// A later key equal ignoring case replaces the value in place.
	if got := strings.Join(keys, ","); got != "b,A" || obj.Len() != 2 {
		t.Errorf("keys = %s, want b,A", got)
	}
	if got, _ := obj.Get("A"); got != 2.0 {
		t.Errorf(`Get("A") = %v, want 2 (last duplicate wins)`, got)
	}
	if _, ok := obj.Get("missing"); ok {
		t.Error("Get of a missing key reported ok")
	}

	var zero Object // usable without NewObject
	zero.Set("k", 1.0)
	if got, ok := zero.Get("K"); !ok || got != 1.0 {
		t.Errorf("zero Object Get = %v, %v", got, ok)
	}

	arr, _ := ParseJSON([]byte(`[1e400]`))
	if f := arr.([]any)[0].(float64); !math.IsInf(f, 1) {
		t.Errorf("1e400 = %v, want +Inf as .NET reads it", f)
	}

	for _, bad := range []string{``, `{`, `{a: 1}`, `[1,]`, `1 2`, `'x'`, `NaN`} {
		if _, err := ParseJSON([]byte(bad)); err == nil {
			t.Errorf("ParseJSON(%q) succeeded, want an error", bad)
		}
	}
}

func TestToJSON(t *testing.T) {
	tests := []struct {
		rule string
		in   Value
		want string
	}{
		{"scalars", []any{nil, true, 1.5, 1e21}, "[\n  null,\n  true,\n  1.5,\n  1E+21\n]"},
		{"empty collections", map[string]any{"a": []any{}, "o": map[string]any{}}, "{\n  \"a\": [],\n  \"o\": {}\n}"},
		{"Go maps print in sorted key order", map[string]string{"b": "2", "a": "1"}, "{\n  \"a\": \"1\",\n  \"b\": \"2\"\n}"},
		{"escapes like the runner's JSON writer", "q\" b\\ \n\t\x01 <&> é \u2028", `"q\" b\\ \n\t\u0001 <&> é \u2028"`},
		{"nested indentation", []any{[]any{1}}, "[\n  [\n    1\n  ]\n]"},
	}
	for _, tt := range tests {
		if got := ToJSON(tt.in); got != tt.want {
			t.Errorf("%s: ToJSON = %q, want %q", tt.rule, got, tt.want)
		}
	}
}
