package expr

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

// testEnv builds contexts as the guest will: JSON payloads through
// ParseJSON (keeping key order), env as a map of strings.
func testEnv(t testing.TB) *Env {
	t.Helper()
	mustJSON := func(s string) Value {
		v, err := ParseJSON([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return &Env{Contexts: map[string]Value{
		"github": mustJSON(`{
			"event_name": "push",
			"event": {
				"commits": [{"message": "Fix bug"}, {"message": "Add feature"}, {"id": "no message"}],
				"inputs": {"zeta": "z", "alpha": "a"},
				"flags": {"true": "yes", "null": "nil"}
			}
		}`),
		"matrix": mustJSON(`{"os": "ubuntu-latest", "node": 20, "flags": ["a", "B"], "empty": ""}`),
		"needs":  mustJSON(`{"build": {"result": "success"}, "lint": {"result": "failure"}}`),
		"nested": mustJSON(`[[1, 2], ["x"], {"k": "v"}, "s"]`),
		"env":    map[string]string{"GREETING": "Hello", "EMPTY": ""},
		"vars":   map[string]any{"count": 3, "ratio": float32(0.5)},
	}}
}

// TestEvaluate has one row per language rule.
func TestEvaluate(t *testing.T) {
	env := testEnv(t)
	tests := []struct {
		rule string
		expr string
		want Value
	}{
		// Literals.
		{"empty expression is null", "  ", nil},
		{"null literal", "null", nil},
		{"boolean literal", "true", true},
		{"integer literal", "42", 42.0},
		{"negative number literal", "-2.5", -2.5},
		{"leading-dot number literal", ".5", 0.5},
		{"hex literal", "0x1F", 31.0},
		{"octal literal", "0o17", 15.0},
		{"exponent literal", "1e3", 1000.0},
		{"Infinity literal", "-Infinity", math.Inf(-1)},
		{"string literal with '' escape", "'it''s'", "it's"},
		{"string literal may hold }}", "'}}'", "}}"},

		// Operators and precedence.
		{"! negates truthiness", "!0", true},
		{"&& returns the last operand when all are truthy", "1 && 'x'", "x"},
		{"&& returns the first falsy operand", "0 && 'x'", 0.0},
		{"|| returns the first truthy operand", "'' || 'y'", "y"},
		{"|| returns the last operand when all are falsy", "false || null", nil},
		{"&& binds tighter than ||", "true || false && false", true},
		{"== binds tighter than &&", "1 == 1 && 'ok'", "ok"},
		{"< binds tighter than ==", "2 <= 3 == true", true},
		{"! binds tighter than <", "!2 < 3", true},
		{"comparisons associate left", "3 > 2 > 1", false},
		{"parentheses group", "(true || false) && false", false},
		{"property access binds tighter than !", "!matrix.os", false},
		{"a group can be indexed", "(matrix).os", "ubuntu-latest"},
		{"a call result can be indexed", "fromJSON('[10, 20]')[1]", 20.0},

		// Equality and coercion.
		{"number == numeric string", "1=='1'", true},
		{"string equality ignores case", "'abc'=='ABC'", true},
		{"hex literal equals decimal", "0x10==16", true},
		{"null converts to 0", "null == 0", true},
		{"booleans convert to 1 and 0", "true == 1", true},
		{"empty string converts to 0", "'' == 0", true},
		{"white space around a numeric string is ignored", "' 1.5 ' == 1.5", true},
		{"non-numeric string converts to NaN", "'abc' != 0", true},
		{"string and boolean both convert to numbers", "'1' == true", true},
		{"null equals empty string (both 0)", "null == ''", true},
		{"null does not equal 'null'", "null == 'null'", false},
		{"NaN equals nothing, not even NaN", "NaN == NaN", false},
		{"0 equals -0", "0 == -0", true},
		{"an object equals itself", "matrix == matrix", true},
		{"distinct objects are unequal", "fromJSON('{}') == fromJSON('{}')", false},
		{"distinct arrays are unequal", "fromJSON('[]') == fromJSON('[]')", false},
		{"a collection never equals a primitive", "matrix == 'Object'", false},

		// Ordering.
		{"strings order ignoring case", "'a' < 'B'", true},
		{"numeric strings compare with numbers as numbers", "'10' > 9", true},
		{"two strings compare as strings", "'10' < '9'", true},
		{"dotless i is not folded to I", "'ı' == 'I'", false},
		{"null is not ordered against null", "null < null", false},
		{"<= is == or <", "null <= null", true},
		{"collections are never ordered", "matrix > 0", false},
		{"NaN is never ordered", "NaN >= NaN", false},

		// Contexts and properties.
		{"context and property names ignore case", "matrix.OS", "ubuntu-latest"},
		{"context names ignore case", "MATRIX.os", "ubuntu-latest"},
		{"index with a string", "matrix['os']", "ubuntu-latest"},
		{"index an array", "matrix.flags[1]", "B"},
		{"fractional index truncates", "matrix.flags[1.9]", "B"},
		{"index out of range is null", "matrix.flags[2]", nil},
		{"negative index is null", "matrix.flags[-1]", nil},
		{"missing property is null", "matrix.nope", nil},
		{"property of null is null", "matrix.nope.deeper", nil},
		{"property of a string is null", "matrix.os.length", nil},
		{"property names may look like literals", "github.event.flags.true", "yes"},
		{"number keys index objects by their text", "fromJSON('{\"15\": \"f\"}')[0xF]", "f"},
		{"map[string]string contexts work", "env.greeting", "Hello"},
		{"Go integers read as numbers", "vars.count == 3", true},

		// Object filters.
		{"filter maps a property over an array, skipping misses", "github.event.commits.*.message", []any{"Fix bug", "Add feature"}},
		{"filter over an object's values", "needs.*.result", []any{"success", "failure"}},
		{"filter keeps object key order", "github.event.inputs.*", []any{"z", "a"}},
		{"filter then index maps the index", "nested.*[0]", []any{1.0, "x"}},
		{"[*] is the same filter", "nested[*].k", []any{"v"}},
		{"filter of a filter flattens", "nested.*.*", []any{1.0, 2.0, "x", "v"}},
		{"filter of a non-collection is empty", "matrix.os.*", []any{}},
		{"grouping keeps a filter a filter", "(needs.*).result", []any{"success", "failure"}},

		// Functions.
		{"function names ignore case", "TOJSON(1)", "1"},
		{"contains: substring ignoring case", "contains('Hello World', 'WORLD')", true},
		{"contains: numbers search as text", "contains('1234', 23)", true},
		{"contains: array element loosely equal", "contains(fromJSON('[1, 2]'), '2')", true},
		{"contains: array of strings ignores case", "contains(matrix.flags, 'b')", true},
		{"contains: works on filters", "contains(needs.*.result, 'failure')", true},
		{"contains: an object contains nothing", "contains(matrix, 'os')", false},
		{"startsWith ignores case", "startsWith('refs/heads/main', 'REFS/')", true},
		{"startsWith: non-primitive is false", "startsWith(matrix.flags, 'a')", false},
		{"endsWith ignores case", "endsWith('release.TAR.GZ', '.tar.gz')", true},
		{"format fills placeholders", "format('{0} {1} {0}', 'a', 'b')", "a b a"},
		{"format {{ and }} are literal braces", "format('{{0}} {0}','x')", "{0} x"},
		{"format converts values to text", "format('{0}|{1}|{2}|{3}', null, true, 1.5, matrix)", "|true|1.5|Object"},
		{"join uses ',' by default", "join(matrix.flags)", "a,B"},
		{"join with separator", "join(github.event.commits.*.message, '; ')", "Fix bug; Add feature"},
		{"join of a string is the string", "join('abc', '-')", "abc"},
		{"join of null is empty", "join(null)", ""},
		{"join of an object is empty", "join(matrix)", ""},
		{"toJSON of a string quotes it", "toJSON('a\"b')", `"a\"b"`},
		{"toJSON pretty-prints with two spaces", "toJSON(fromJSON('{\"a\": [1, true], \"b\": {}}'))", "{\n  \"a\": [\n    1,\n    true\n  ],\n  \"b\": {}\n}"},
		{"toJSON keeps key order", "toJSON(github.event.inputs)", "{\n  \"zeta\": \"z\",\n  \"alpha\": \"a\"\n}"},
		{"fromJSON parses objects", "fromJSON('{\"a\": {\"b\": 2}}').a.b", 2.0},
		{"fromJSON parses scalars", "fromJSON('true')", true},
		{"fromJSON of a number coerces it to text first", "fromJSON(matrix.node)", 20.0},
		{"case returns the first match", "case(false, 'a', true, 'b', 'c')", "b"},
		{"case falls back to the default", "case(false, 'a', 'c')", "c"},
	}
	for _, tt := range tests {
		got, err := Evaluate(tt.expr, env)
		if err != nil {
			t.Errorf("%s: %s: %v", tt.rule, tt.expr, err)
			continue
		}
		if !sameValue(got, tt.want) {
			t.Errorf("%s: %s = %#v, want %#v", tt.rule, tt.expr, got, tt.want)
		}
	}
}

func sameValue(got, want Value) bool {
	if g, ok := got.(float64); ok {
		if w, ok := want.(float64); ok && math.IsNaN(g) && math.IsNaN(w) {
			return true
		}
	}
	return reflect.DeepEqual(plain(got), plain(want))
}

// TestTruthiness pins which values count as true.
func TestTruthiness(t *testing.T) {
	tests := []struct {
		expr string
		want bool
	}{
		{"false", false}, {"0", false}, {"-0", false}, {"''", false}, {"null", false}, {"NaN", false},
		{"true", true}, {"-1", true}, {"'false'", true}, {"'0'", true}, {"' '", true}, {"Infinity", true},
		{"fromJSON('[]')", true}, {"fromJSON('{}')", true},
	}
	for _, tt := range tests {
		got, err := Evaluate("!!("+tt.expr+")", nil)
		if err != nil || got != tt.want {
			t.Errorf("truthiness of %s = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
}

// TestToString pins how values print, numbers in the runner's .NET "G15"
// format.
func TestToString(t *testing.T) {
	tests := []struct {
		in   Value
		want string
	}{
		{nil, ""},
		{true, "true"},
		{false, "false"},
		{1.0, "1"},
		{math.Copysign(0, -1), "0"},
		{1.5, "1.5"},
		{100.0, "100"},
		{0.1, "0.1"},
		{-123456.789, "-123456.789"},
		{123456789012345.0, "123456789012345"},
		{1e15, "1E+15"},
		{9007199254740993, "9.00719925474099E+15"},
		{0.0001, "0.0001"},
		{0.00001, "1E-05"},
		{1.5e-7, "1.5E-07"},
		{1e123, "1E+123"},
		{0.84551240822557006, "0.84551240822557"},
		{math.NaN(), "NaN"},
		{math.Inf(1), "Infinity"},
		{math.Inf(-1), "-Infinity"},
		{7, "7"},
		{"text", "text"},
		{[]any{1.0}, "Array"},
		{map[string]any{}, "Object"},
		{NewObject(), "Object"},
	}
	for _, tt := range tests {
		if got := ToString(tt.in); got != tt.want {
			t.Errorf("ToString(%#v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	env := testEnv(t)
	env.Contexts["big"] = strings.Repeat("x", 600_000)
	tests := []struct {
		rule string
		expr string
		want string // substring of the message
	}{
		{"unexpected token names it and its column", "matrix.os == )", `expr: unexpected token ")" at column 14 in "matrix.os == )"`},
		{"there is no + operator", "'a' + 'b'", `unexpected symbol "+" at column 5`},
		{"unexpected end", "1 ==", "unexpected end of expression at column 5"},
		{"malformed operator is one symbol", "1 =2", `unexpected symbol "=2" at column 3`},
		{"unterminated string", "'abc", `unexpected symbol "'abc"`},
		{"malformed number", "0xZZ", `unexpected symbol "0xZZ"`},
		{"upper-case hex prefix is not a number", "0X10", `unexpected symbol "0X10"`},
		{"literals take no property access", "'abc'.length", `unexpected token "."`},
		{"literals take no index", "'abc'[0]", `unexpected token "["`},
		{"keywords are case-sensitive", "TRUE", `unknown context "TRUE"`},
		{"unknown context", "nosuch.value", `unknown context "nosuch" at column 1`},
		{"unknown function names it", "frobnicate(1)", `unknown function "frobnicate" at column 1`},
		{"functions are checked even where not evaluated", "false && nope()", `unknown function "nope" at column 10`},
		{"too few arguments", "contains('a')", "too few arguments to contains(): got 1, want at least 2"},
		{"too many arguments", "toJSON(1, 2)", "too many arguments to toJSON(): got 2, want at most 1"},
		{"case needs an odd count", "case(true, 1, false, 2)", "case() needs an odd number of arguments"},
		{"case predicates must be booleans", "case(1, 'a', 'b')", "predicate 1 is a number, not a boolean"},
		{"format: unbalanced {", "format('{0', 1)", `format: invalid format string "{0"`},
		{"format: unbalanced }", "format('a}b')", `invalid format string "a}b"`},
		{"format: missing argument", "format('{0} {1}', 'a')", "references argument {1}, but only 1 arguments were supplied"},
		{"format: specifiers are rejected", "format('{0:D2}', 1)", `format specifier "D2"`},
		{"fromJSON: invalid JSON", "fromJSON('{')", "fromJSON: unexpected end of JSON input"},
		{"fromJSON: trailing data", "fromJSON('1 2')", "unexpected data after the JSON value"},
		{"status functions need a Status", "success()", "function success() is not available here"},
		{"hashFiles needs a hook", "hashFiles('**/go.sum')", "function hashFiles() is not available here"},
		{"depth is limited to 50", strings.Repeat("!", 50) + "true", "nested more than 50 levels deep"},
		{"length is limited", strings.Repeat("1 || ", 4300) + "1", "more than the maximum of 21000"},
		{"memory is limited to 1 MB", "format('{0}', big)", "maximum allowed memory size (1 MB) was exceeded"},
	}
	for _, tt := range tests {
		_, err := Evaluate(tt.expr, env)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %s: got error %v, want %q", tt.rule, tt.expr, err, tt.want)
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Errorf("%s: error is %T, want *Error", tt.rule, err)
		}
	}
	if _, err := Evaluate(strings.Repeat("!", 49)+"true", env); err != nil {
		t.Errorf("49 levels of ! should be within the depth limit: %v", err)
	}
}

func TestStatusFunctions(t *testing.T) {
	tests := []struct {
		status Status
		expr   string
		want   bool
	}{
		{JobSucceeded, "success()", true},
		{JobSucceeded, "failure()", false},
		{JobSucceeded, "cancelled()", false},
		{JobSucceeded, "always()", true},
		{JobFailed, "success()", false},
		{JobFailed, "failure()", true},
		{JobCancelled, "cancelled()", true},
		{JobCancelled, "success()", false},
		{JobCancelled, "always()", true},
		{JobFailed, "SUCCESS() || Failure()", true},
	}
	for _, tt := range tests {
		got, err := Evaluate(tt.expr, &Env{Status: tt.status})
		if err != nil || got != tt.want {
			t.Errorf("%s with status %v = %v, %v; want %v", tt.expr, tt.status, got, err, tt.want)
		}
	}
}

func TestHashFiles(t *testing.T) {
	var gotPatterns []string
	env := &Env{
		Contexts: map[string]Value{"matrix": map[string]any{"lock": "go.sum"}},
		HashFiles: func(patterns []string) (string, error) {
			gotPatterns = patterns
			if patterns[0] == "fail" {
				return "", errors.New("no workspace")
			}
			return "abc123", nil
		},
	}
	got, err := Evaluate("format('deps-{0}', hashFiles('**/package-lock.json', matrix.lock))", env)
	if err != nil || got != "deps-abc123" {
		t.Errorf("hashFiles = %v, %v", got, err)
	}
	if want := []string{"**/package-lock.json", "go.sum"}; !reflect.DeepEqual(gotPatterns, want) {
		t.Errorf("hook got patterns %q, want %q", gotPatterns, want)
	}
	if _, err := Evaluate("hashFiles('fail')", env); err == nil || !strings.Contains(err.Error(), "hashFiles: no workspace") {
		t.Errorf("hook error not reported: %v", err)
	}
}
