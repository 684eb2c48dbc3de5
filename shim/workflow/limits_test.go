package workflow

import (
	"fmt"
	"strings"
	"testing"
)

// Inputs the fuzzer (or a hostile payload) can build that must be refused
// quickly rather than crash the shim or keep it busy.
func TestParseLimits(t *testing.T) {
	var laughs strings.Builder
	laughs.WriteString("on:\n  a0: &a0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&laughs, "  a%d: &a%d [%s]\n", i, i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 9), ", "))
	}
	laughs.WriteString("jobs:\n  t:\n    runs-on: omnios\n    strategy:\n      matrix:\n        v: [*a8]\n    steps: [{run: make}]\n")

	var excludes strings.Builder
	for i := range 20 {
		fmt.Fprintf(&excludes, "v%d: [a, b]\n", i)
	}
	excludes.WriteString("exclude:\n")
	for i := range 200 {
		fmt.Fprintf(&excludes, "  - {v0: c%d}\n", i)
	}

	tests := []struct{ name, src, want string }{{
		name: "alias inside its own anchor",
		src:  "jobs:\n  t:\n    runs-on: omnios\n    strategy:\n      matrix: &m\n        v: [*m]\n    steps: [{run: make}]\n",
		want: "wf.yml:6:13: alias *m refers to a node that contains it (YAML)",
	}, {
		name: "billion laughs",
		src:  laughs.String(),
		want: "wf.yml:3:12: YAML aliases expand the document to more than 262144 values (YAML)",
	}, {
		name: "product checked against many excludes",
		src:  matrixWorkflow(excludes.String()),
		want: `wf.yml:7:9: the matrix of job "test" is too large to expand: its cross product of 1048576 combinations would each be compared with 400 include and exclude values; GitHub allows at most 256 combinations (jobs.<job_id>.strategy.matrix)`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equalLines(t, "errors", parseErrors(tt.src), []string{tt.want})
		})
	}
	// Aliases within the limit still work.
	mustRuns(t, "jobs:\n  a: {runs-on: omnios, steps: &s [{run: make}]}\n  b: {runs-on: omnios, steps: *s}\n")
}
