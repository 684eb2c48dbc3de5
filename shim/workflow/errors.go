package workflow

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Error is one problem in a workflow file.
type Error struct {
	File string
	Pos  Pos
	Msg  string // what is wrong
	// Feature names the workflow syntax concerned, such as
	// "jobs.<job_id>.needs", or holds a hint such as `did you mean "runs-on"?`.
	Feature string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s (%s)", e.File, e.Pos.Line, e.Pos.Col, e.Msg, e.Feature)
}

// Errors is every problem found, in source order. Parse, ParseSingleJob and
// Workflow.Runs return it as their error.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// err returns nil or the errors sorted by position.
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	return es
}

// Features named in errors: the workflow syntax paths of GitHub's docs.
const (
	featWorkflow    = "workflow"
	featEnv         = "env"
	featDefaults    = "defaults.run"
	featJobs        = "jobs"
	featJob         = "jobs.<job_id>"
	featRunsOn      = "jobs.<job_id>.runs-on"
	featNeeds       = "jobs.<job_id>.needs"
	featTimeout     = "jobs.<job_id>.timeout-minutes"
	featContinue    = "jobs.<job_id>.continue-on-error"
	featStrategy    = "jobs.<job_id>.strategy"
	featMatrix      = "jobs.<job_id>.strategy.matrix"
	featInclude     = "jobs.<job_id>.strategy.matrix.include"
	featExclude     = "jobs.<job_id>.strategy.matrix.exclude"
	featReusable    = "jobs.<job_id>.uses"
	featContainer   = "jobs.<job_id>.container"
	featServices    = "jobs.<job_id>.services"
	featSteps       = "jobs.<job_id>.steps"
	featStep        = "jobs.<job_id>.steps[*]"
	featUses        = "jobs.<job_id>.steps[*].uses"
	featStepID      = "jobs.<job_id>.steps[*].id"
	featStepTimeout = "jobs.<job_id>.steps[*].timeout-minutes"
	featYAML        = "YAML"
	featPayload     = "single-job payload"
)

// suggest returns the known word closest to word (by edit distance, else
// the one word starts), or "".
func suggest(word string, known []string) string {
	w := strings.ToLower(word)
	best, bestDist := "", len(w)/3+1
	for _, k := range known {
		if d := editDistance(w, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	if best != "" || len(w) < 3 {
		return best
	}
	for _, k := range known {
		if strings.HasPrefix(k, w) {
			return k
		}
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of adjacent letters each cost one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
