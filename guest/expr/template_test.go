package expr

import (
	"strings"
	"testing"
)

func TestEvaluateCondition(t *testing.T) {
	env := testEnv(t)
	tests := []struct {
		rule   string
		cond   string
		status Status
		want   bool
	}{
		{"empty means success(): true while all is well", "", JobSucceeded, true},
		{"empty means success(): false after a failure", "", JobFailed, false},
		{"white space is empty", "  \n", JobCancelled, false},
		{"plain condition", "github.event_name == 'push'", JobSucceeded, true},
		{"implicit success() && skips after a failure", "github.event_name == 'push'", JobFailed, false},
		{"implicit success() && skips after cancellation", "true", JobCancelled, false},
		{"failure() runs after a failure", "failure()", JobFailed, true},
		{"failure() is false when all is well", "failure()", JobSucceeded, false},
		{"always() runs even when cancelled", "always()", JobCancelled, true},
		{"cancelled() runs when cancelled", "cancelled()", JobCancelled, true},
		{"a status function anywhere disables the implicit success()", "!cancelled() && matrix.os == 'ubuntu-latest'", JobFailed, true},
		{"status function names ignore case", "Always()", JobFailed, true},
		{"${{ }} around the whole condition is allowed", "${{ matrix.node > 18 }}", JobSucceeded, true},
		{"${{ }} condition keeps its type", "${{ false }}", JobSucceeded, false},
		{"${{ }} condition gets the implicit success()", "${{ true }}", JobFailed, false},
		{"${{ }} may contain a status function", "${{ failure() }}", JobFailed, true},
		{"an empty string result is false", "${{ matrix.empty }}", JobSucceeded, false},
		{"text around ${{ }} makes a string, which is true", "${{ false }} && false", JobSucceeded, true},
		{"template string still gets the implicit success()", "${{ false }} x", JobFailed, false},
		{"truthiness, not booleans, decides", "matrix.os", JobSucceeded, true},
		{"null is false", "matrix.nope", JobSucceeded, false},
	}
	for _, tt := range tests {
		env.Status = tt.status
		got, err := EvaluateCondition(tt.cond, env)
		if err != nil || got != tt.want {
			t.Errorf("%s: if %q (%v) = %v, %v; want %v", tt.rule, tt.cond, tt.status, got, err, tt.want)
		}
	}

	// Without a Status a condition sees a job where nothing has failed.
	if got, err := EvaluateCondition("success() && !failure()", nil); err != nil || !got {
		t.Errorf("nil env = %v, %v; want true", got, err)
	}
	if _, err := EvaluateCondition("nosuch == 1", env); err == nil {
		t.Error("unknown context in a condition should be an error")
	}
}

func TestInterpolate(t *testing.T) {
	env := testEnv(t)
	tests := []struct {
		rule string
		tmpl string
		want string
	}{
		{"text without ${{ is unchanged", "echo }} ${ {{ $HOME", "echo }} ${ {{ $HOME"},
		{"one expression", "${{ matrix.os }}", "ubuntu-latest"},
		{"no spaces needed", "${{matrix.os}}", "ubuntu-latest"},
		{"text around expressions", "node-${{ matrix.node }}-${{ matrix.os }}.tgz", "node-20-ubuntu-latest.tgz"},
		{"adjacent expressions", "${{ 'a' }}${{ 'b' }}", "ab"},
		{"}} inside a string literal does not close", "${{ format('}}{0}', 'x') }}", "}x"},
		{"'' escapes inside a string literal", "${{ 'it''s }}' }}", "it's }}"},
		{"${{ inside a string literal is text", "${{ '${{ not an expression }}' }}", "${{ not an expression }}"},
		{"null prints empty", "[${{ matrix.nope }}]", "[]"},
		{"booleans print lower-case", "${{ matrix.node == 20 }}", "true"},
		{"integers print without a fraction", "${{ matrix.node }}", "20"},
		{"fractions print minimally", "${{ 1.50 }}", "1.5"},
		{"an object inside text prints Object", "m=${{ matrix }}", "m=Object"},
		{"an array inside text prints Array", "f=${{ matrix.flags }}", "f=Array"},
		{"multi-line scripts", "echo ${{ env.GREETING }}\necho ${{ github.event_name }}\n", "echo Hello\necho push\n"},
		{"toJSON output is inserted verbatim", "${{ toJSON(matrix.flags) }}", "[\n  \"a\",\n  \"B\"\n]"},
		{"extra closing braces are text", "${{ 'x' }}}", "x}"},
	}
	for _, tt := range tests {
		got, err := Interpolate(tt.tmpl, env)
		if err != nil || got != tt.want {
			t.Errorf("%s: Interpolate(%q) = %q, %v; want %q", tt.rule, tt.tmpl, got, err, tt.want)
		}
	}
}

func TestInterpolateErrors(t *testing.T) {
	env := testEnv(t)
	tests := []struct {
		rule string
		tmpl string
		want string
	}{
		{"a lone object is not a string", "${{ matrix }}", "expected a string, but the expression evaluates to Object"},
		{"a lone array is not a string", "${{ matrix.flags }}", "expected a string, but the expression evaluates to Array"},
		{"unclosed ${{", "echo ${{ matrix.os", `unclosed ${{: no matching }} at column 6`},
		{"quote hides the closing braces", "${{ 'abc }}", "unclosed ${{"},
		{"empty ${{ }}", "a ${{ }}", "expected an expression inside ${{ }} at column 3"},
		{"syntax error inside", "${{ matrix.os == }}", "unexpected end of expression"},
		{"all parts are checked before evaluating", "${{ 'ok' }} ${{ nosuch }}", `unknown context "nosuch"`},
		{"evaluation error inside", "x ${{ fromJSON('{') }}", "fromJSON:"},
	}
	for _, tt := range tests {
		_, err := Interpolate(tt.tmpl, env)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Interpolate(%q) error = %v, want %q", tt.rule, tt.tmpl, err, tt.want)
		}
	}
}

func TestEvaluateTemplate(t *testing.T) {
	env := testEnv(t)
	tests := []struct {
		rule string
		tmpl string
		want Value
	}{
		{"a lone expression keeps its type", "${{ matrix.node }}", 20.0},
		{"a lone expression may be an object", "${{ fromJSON('{\"a\": 1}') }}", map[string]any{"a": 1.0}},
		{"a lone filter is an array", "${{ needs.*.result }}", []any{"success", "failure"}},
		{"text makes a string", "v${{ matrix.node }}", "v20"},
		{"plain text stays text", "plain", "plain"},
		{"empty stays empty", "", ""},
	}
	for _, tt := range tests {
		got, err := EvaluateTemplate(tt.tmpl, env)
		if err != nil || !sameValue(got, tt.want) {
			t.Errorf("%s: EvaluateTemplate(%q) = %#v, %v; want %#v", tt.rule, tt.tmpl, got, err, tt.want)
		}
	}
}
