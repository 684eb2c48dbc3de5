package expr

import (
	"encoding/json"
	"math"
	"os"
	"reflect"
	"testing"
)

// oracleFile holds what @actions/expressions, GitHub's official evaluator,
// returns for each case of testdata/oracle_cases.json. It was produced by
// testdata/gen_oracle.mjs:
//
//	cd /tmp && npm install @actions/expressions@0.3.61
//	node <repo>/guest/expr/testdata/gen_oracle.mjs
//
// Rerun that after editing oracle_cases.json.
type oracleFile struct {
	Contexts map[string]json.RawMessage `json:"contexts"`
	Cases    []struct {
		Expr string `json:"expr"`
		Ctx  string `json:"ctx"`
		Want struct {
			Kind  string `json:"kind"`
			Value any    `json:"value"`
			Error string `json:"error"`
		} `json:"want"`
	} `json:"cases"`
}

// divergence is a case where this package deliberately follows the Actions
// runner, which is what evaluates expressions in jobs on GitHub, instead of
// the TypeScript package. want is our result; errors are written as errWant.
type divergence struct {
	want any
	why  string
}

const errWant = "<error>"

var divergences = map[string]divergence{
	// Number syntax: the runner parses with .NET rules. Prefixes are
	// lower-case only (0X10 is also rejected on github.com), 0x and 0o
	// values are 32-bit two's-complement integers, JavaScript-only forms
	// such as 0b11 are not numbers, and "Infinity" matches ignoring case.
	"0X10":                     {errWant, "runner accepts only lower-case 0x"},
	"0x100000000":              {errWant, "runner: 0x values are 32-bit"},
	"'0xFFFFFFFF' == -1":       {true, "runner: 0x values are two's-complement int32"},
	"' 0b11 ' == 3":            {false, "runner: no binary literals in strings"},
	"' infinity ' == Infinity": {true, ".NET parses Infinity ignoring case"},

	// Number to string: .NET's "G15" format, as measured on github.com
	// (1e-5 renders as 1E-05); the TypeScript package prints JavaScript
	// style with 15 decimals.
	"format('{0}', 1e15)":                 {"1E+15", "G15 switches to exponent at 1e15"},
	"format('{0}', 0.00001)":              {"1E-05", "G15 switches to exponent below 1e-4"},
	"format('{0}', 9007199254740993)":     {"9.00719925474099E+15", "G15 keeps 15 significant digits"},
	"format('{0}', 1e-7)":                 {"1E-07", "G15 exponent has at least two digits"},
	"format('{0}', 1234567890.123456789)": {"1234567890.12346", "G15 keeps 15 significant digits"},
	"toJSON(1e21)":                        {"1E+21", "runner's toJSON prints numbers like format()"},
	"toJSON(NaN)":                         {"NaN", "runner's toJSON prints numbers like format()"},
	"toJSON('\u2028')":                    {"\"\\u2028\"", "runner's JSON writer (Newtonsoft) escapes U+2028"},
	"format('{0:x}', 1)":                  {errWant, "runner rejects format specifiers"},

	// Laziness: the runner evaluates a format() argument only when it is
	// referenced, an index key only when the target is a collection, and
	// join()'s separator only when there are two elements to separate.
	"format('x', fromJSON('bad'))":           {"x", "runner: unreferenced format arguments are not evaluated"},
	"nested[5][fromJSON('bad')]":             {nil, "runner: no key is evaluated for a non-collection"},
	"join(fromJSON('[1]'), fromJSON('bad'))": {"1", "runner: no separator is needed for one element"},
}

func loadOracle(t *testing.T) oracleFile {
	t.Helper()
	raw, err := os.ReadFile("testdata/oracle.json")
	if err != nil {
		t.Fatal(err)
	}
	var f oracleFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

// oracleEnv loads a context set through ParseJSON so that key order and
// array identity behave as they do for real contexts.
func oracleEnv(t *testing.T, raw json.RawMessage) *Env {
	t.Helper()
	v, err := ParseJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Contexts: map[string]Value{}}
	for k, c := range v.(*Object).All() {
		env.Contexts[k] = c
	}
	return env
}

func TestOracle(t *testing.T) {
	f := loadOracle(t)
	envs := map[string]*Env{}
	for name, raw := range f.Contexts {
		envs[name] = oracleEnv(t, raw)
	}
	seen := map[string]bool{}
	for _, c := range f.Cases {
		ctx := c.Ctx
		if ctx == "" {
			ctx = "none"
		}
		got, err := Evaluate(c.Expr, envs[ctx])
		want, wantErr := c.Want.Value, c.Want.Error != ""
		d, diverges := divergences[c.Expr]
		name := c.Expr + " [" + ctx + "]"
		if diverges {
			name += " (diverging: " + d.why + ")"
			seen[c.Expr] = true
			if (c.Want.Error != "") == (d.want == errWant) && (d.want == errWant || samePlain(d.want, c.Want.Value)) {
				t.Errorf("%s: the oracle now agrees with us; drop the divergence", c.Expr)
			}
			want, wantErr = d.want, d.want == errWant
		}
		switch {
		case wantErr && err == nil:
			t.Errorf("%s: got %#v, want an error (oracle: %s)", name, got, c.Want.Error)
		case wantErr:
		case err != nil:
			t.Errorf("%s: unexpected error: %v", name, err)
		case !diverges && !sameKind(got, c.Want.Kind):
			t.Errorf("%s: got %s, oracle kind %s", name, kindOf(normalize(got)), c.Want.Kind)
		case !samePlain(plain(got), want):
			t.Errorf("%s:\n got  %#v\n want %#v", name, plain(got), want)
		}
	}
	for expr := range divergences {
		if !seen[expr] {
			t.Errorf("divergence %q has no case in oracle.json", expr)
		}
	}
}

func sameKind(v Value, oracleKind string) bool {
	names := map[kind]string{
		kindNull: "Null", kindBool: "Boolean", kindNumber: "Number",
		kindString: "String", kindArray: "Array", kindObject: "Dictionary",
	}
	return names[kindOf(normalize(v))] == oracleKind
}

// plain converts a result to what encoding/json would decode from the
// oracle file: objects as maps, numbers as float64 (non-finite ones as the
// strings the generator writes).
func plain(v Value) any {
	v = normalize(v)
	switch kindOf(v) {
	case kindNumber:
		f := v.(float64)
		switch {
		case math.IsNaN(f):
			return "NaN"
		case math.IsInf(f, 1):
			return "Infinity"
		case math.IsInf(f, -1):
			return "-Infinity"
		}
		return f
	case kindArray:
		items, _ := elements(v)
		out := []any{}
		for _, it := range items {
			out = append(out, plain(it))
		}
		return out
	case kindObject:
		out := map[string]any{}
		for k, it := range entries(v) {
			out[k] = plain(it)
		}
		return out
	}
	return v
}

func samePlain(got, want any) bool {
	if w, ok := want.(int); ok {
		want = float64(w)
	}
	return reflect.DeepEqual(got, want)
}
