package expr

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

// maxFuzzInput bounds fuzzed templates and JSON. An expression is at most
// maxLength characters (longer ones are refused before parsing); a
// template is a workflow value, and a plan is at most 16 KiB compressed.
const maxFuzzInput = 64 << 10

// exprSeeds are the oracle's expressions plus a few shapes it lacks.
func exprSeeds(f *testing.F) []string {
	seeds := []string{
		"github.event.commits.*.message",
		"contains(github.event.commits.*.message, 'bug') && !cancelled()",
		"format('{0} {1}{{}}', matrix.os, toJSON(github.event))",
		"join(nested[0], format('-{0}-', env.GREETING))",
		"case(matrix.node > 18, 'new', matrix.node == 18, 'lts', 'old')",
		"hashFiles('**/go.sum', '!vendor/**')",
		"fromJSON('{\"a\":[1,2,{\"b\":null}]}').a[2].b || 'default'",
		"((((1 == 1) != (2 < 3)) <= 0x1F) >= -1.5e3)",
		"startsWith('Hello', 'he') && endsWith(vars.count, 3)",
		"success() || failure() || always()",
		"toJSON(fromJSON('[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]'))",
		"format('{0}}', 1)",
		"fromJSON('[[1],{\"a\":2}]').*[0]",
		"!(1 < '2') || null",
		"0x1F == .5e1",
		"'unterminated",
		"a..b",
	}
	raw, err := os.ReadFile("testdata/oracle_cases.json")
	if err != nil {
		f.Fatal(err)
	}
	var cases struct {
		Cases []struct {
			Expr string `json:"expr"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &cases); err != nil {
		f.Fatal(err)
	}
	for _, c := range cases.Cases {
		seeds = append(seeds, c.Expr)
	}
	return seeds
}

// fuzzEnv is testEnv with the caller-provided functions the agent has,
// and a large context value, as github.event can be.
func fuzzEnv(f *testing.F) *Env {
	env := testEnv(f)
	env.Contexts["big"] = strings.Repeat("0123456789abcdef", 4096)
	env.HashFiles = func(patterns []string) (string, error) {
		if len(patterns) > 0 && patterns[0] == "fail" {
			return "", errors.New("no such files")
		}
		return "0123abcd", nil
	}
	return env
}

// checkResult checks what every evaluation must give: an *Error or a
// value that the agent can print and pass on.
func checkResult(t *testing.T, v Value, err error) {
	t.Helper()
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v is %T, want *expr.Error", err, err)
		}
		_ = err.Error()
		return
	}
	_ = ToString(v)
	_ = ToJSON(v)
}

// FuzzEvaluate evaluates a bare expression, and the same text as an if:
// condition under each job status.
func FuzzEvaluate(f *testing.F) {
	for _, s := range exprSeeds(f) {
		f.Add(s, uint8(0))
	}
	env := fuzzEnv(f)
	f.Fuzz(func(t *testing.T, src string, status uint8) {
		if len(src) > maxFuzzInput {
			return
		}
		e := *env
		v, err := Evaluate(src, &e)
		checkResult(t, v, err)
		e.Status = JobStatus(status % 3)
		if _, err := EvaluateCondition(src, &e); err != nil {
			checkResult(t, nil, err)
		}
	})
}

// FuzzTemplate expands a workflow value with ${{ }} parts, as the agent
// does for run, env, with and working-directory.
func FuzzTemplate(f *testing.F) {
	for _, s := range exprSeeds(f) {
		f.Add("${{ " + s + " }}")
	}
	for _, s := range []string{
		"echo ${{ matrix.os }} and ${{ github.event.inputs.zeta }}",
		"${{ '}}' }} }} ${{",
		"a ${{ toJSON(matrix) }} b ${{ nested }}",
		"${{ big }}${{ big }}",
		"${{ }}",
		"plain text",
		"${{ format('{0}', '${{ x }}') }}",
	} {
		f.Add(s)
	}
	env := fuzzEnv(f)
	f.Fuzz(func(t *testing.T, tmpl string) {
		if len(tmpl) > maxFuzzInput {
			return
		}
		e := *env
		s, err := Interpolate(tmpl, &e)
		checkResult(t, s, err)
		if err == nil && !strings.Contains(tmpl, openExpr) && s != tmpl {
			t.Fatalf("text without ${{ changed: %q -> %q", tmpl, s)
		}
		v, err := EvaluateTemplate(tmpl, &e)
		checkResult(t, v, err)
	})
}

// FuzzParseJSON decodes JSON as fromJSON() does (and as the agent loads
// contexts). What toJSON() prints of the result reads back the same,
// except for numbers beyond float64, which print as Infinity.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,2.5,-0,1e400,{"b":null,"c":true}],"A":"x\u2028y"}`,
		`[[],{},"",0]`,
		`"just a string"`,
		`{"dup":1,"dup":2}`,
		`[1] 2`,
		`{"a":`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		v, err := ParseJSON(data)
		if err != nil {
			return
		}
		out := ToJSON(v)
		back, err := ParseJSON([]byte(out))
		if err != nil {
			if !strings.Contains(out, "Infinity") {
				t.Fatalf("toJSON printed what fromJSON rejects: %v\n%s", err, out)
			}
			return
		}
		if again := ToJSON(back); again != out {
			t.Fatalf("toJSON(fromJSON(toJSON(v))) differs:\n%s\n%s", out, again)
		}
	})
}
