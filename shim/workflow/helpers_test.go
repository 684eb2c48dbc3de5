package workflow

import (
	"fmt"
	"strings"
	"testing"
)

// fmtValue renders a matrix value compactly: {k: v, k: [a, b]}.
func fmtValue(v any) string {
	switch x := v.(type) {
	case Map:
		parts := make([]string, len(x))
		for i, kv := range x {
			parts[i] = kv.Key + ": " + fmtValue(kv.Value)
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmtValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case nil:
		return "null"
	case string:
		return x
	}
	return fmt.Sprintf("%v(%T)", v, v)
}

// indent prefixes every line of s with n spaces.
func indent(s string, n int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n")
}

// matrixWorkflow wraps a matrix body into a one-job workflow.
func matrixWorkflow(matrix string) string {
	return "on: push\njobs:\n  test:\n    runs-on: omnios\n    strategy:\n      matrix:\n" +
		indent(matrix, 8) + "\n    steps:\n      - run: make\n"
}

func mustParse(t *testing.T, src string) *Workflow {
	t.Helper()
	w, err := Parse([]byte(src), "wf.yml")
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, src)
	}
	return w
}

func mustRuns(t *testing.T, src string) []Run {
	t.Helper()
	runs, err := mustParse(t, src).Runs()
	if err != nil {
		t.Fatalf("Runs: %v", err)
	}
	return runs
}

// parseErrors returns the error lines of Parse, or nil.
func parseErrors(src string) []string {
	_, err := Parse([]byte(src), "wf.yml")
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot:\n  %s\nwant:\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
