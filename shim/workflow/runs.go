package workflow

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/solstice-ci/solstice/guest/expr"
)

// DefaultTimeoutMinutes is a job's timeout when it sets none.
const DefaultTimeoutMinutes = 360

// Run is one job run: a job with one matrix combination, as GitHub makes it.
// Steps, Outputs and Needs are shared with the Job and must not be changed.
type Run struct {
	JobID string
	Job   *Job
	// Name is the display name GitHub would show.
	Name string
	// Matrix is the combination, in GitHub's key order; nil without a matrix.
	Matrix Map
	// RunsOn is the job's labels with ${{ matrix.* }} interpolated.
	RunsOn []string
	Needs  []string
	If     string
	// Env is the workflow env then the job env (a job value replaces a
	// workflow value of the same name in place).
	Env []Pair
	// Defaults is the job's defaults.run if it has one, else the workflow's.
	Defaults        RunDefaults
	TimeoutMinutes  NumberOrExpr
	ContinueOnError BoolOrExpr
	Outputs         []Pair
	Steps           []*Step
	Strategy        StrategyContext
}

// StrategyContext is the strategy context of a run.
type StrategyContext struct {
	FailFast    bool `json:"fail-fast"`
	JobIndex    int  `json:"job-index"`
	JobTotal    int  `json:"job-total"`
	MaxParallel int  `json:"max-parallel"`
}

// Runs expands every job into its runs, jobs in file order and each job's
// combinations in GitHub's order. It fails for what only GitHub's server
// could evaluate: a matrix or strategy built from an expression.
func (w *Workflow) Runs() ([]Run, error) {
	var runs []Run
	var errs Errors
	for _, j := range w.Jobs {
		jr, err := w.jobRuns(j)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		runs = append(runs, jr...)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return runs, nil
}

func (w *Workflow) jobRuns(j *Job) ([]Run, *Error) {
	combos, err := w.combinations(j)
	if err != nil {
		return nil, err
	}
	sc, err := w.strategyContext(j, len(combos))
	if err != nil {
		return nil, err
	}
	runs := make([]Run, len(combos))
	for i, c := range combos {
		if !w.SingleJob {
			sc.JobIndex = i
		}
		runs[i] = w.run(j, c, sc)
	}
	return runs, nil
}

func (w *Workflow) errorAt(pos Pos, feature, format string, args ...any) *Error {
	return &Error{File: w.File, Pos: pos, Msg: fmt.Sprintf(format, args...), Feature: feature}
}

func (w *Workflow) combinations(j *Job) ([]combo, *Error) {
	s := j.Strategy
	if s != nil && s.Expr != "" {
		return nil, w.errorAt(s.Pos, featStrategy, "job %q: strategy from an expression is not supported by solstice run: %s", j.ID, s.Expr)
	}
	if s == nil || s.Matrix == nil {
		return []combo{{}}, nil
	}
	m := s.Matrix
	if m.Expr != "" {
		return nil, w.errorAt(m.ExprPos, featMatrix, "job %q: matrix from an expression is not supported by solstice run: %s", j.ID, m.Expr)
	}
	combos, msg := m.expand()
	if msg != "" {
		return nil, w.errorAt(m.Pos, featMatrix, "the matrix of job %q %s", j.ID, msg)
	}
	return combos, nil
}

func (w *Workflow) strategyContext(j *Job, total int) (StrategyContext, *Error) {
	sc := StrategyContext{FailFast: true, JobTotal: total, MaxParallel: total}
	s := j.Strategy
	if s == nil {
		return sc, nil
	}
	if s.FailFast.Expr != "" {
		return sc, w.errorAt(s.Keys["fail-fast"], featStrategy, "job %q: strategy.fail-fast from an expression is not supported by solstice run", j.ID)
	}
	sc.FailFast = s.FailFast.Value
	if w.SingleJob {
		sc.JobIndex, sc.JobTotal = deref0(s.JobIndex, 0), deref0(s.JobTotal, 1)
		sc.MaxParallel = sc.JobTotal
	}
	if s.MaxParallel == nil || (s.Matrix == nil && !w.SingleJob) {
		return sc, nil
	}
	if s.MaxParallel.Expr != "" {
		return sc, w.errorAt(s.Keys["max-parallel"], featStrategy, "job %q: strategy.max-parallel from an expression is not supported by solstice run", j.ID)
	}
	if v := int(s.MaxParallel.Value); v > 0 {
		sc.MaxParallel = v
	}
	return sc, nil
}

func deref0(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

func (w *Workflow) run(j *Job, c combo, sc StrategyContext) Run {
	return Run{
		JobID:           j.ID,
		Job:             j,
		Name:            w.displayName(j, c),
		Matrix:          c.values,
		RunsOn:          runsOnLabels(j.RunsOn.Labels, c.values),
		Needs:           j.Needs,
		If:              j.If,
		Env:             mergeEnv(w.Env, j.Env),
		Defaults:        w.effectiveDefaults(j),
		TimeoutMinutes:  timeoutMinutes(j.TimeoutMinutes, c.values),
		ContinueOnError: continueOnError(j.ContinueOnError, c.values),
		Outputs:         j.Outputs,
		Steps:           j.Steps,
		Strategy:        sc,
	}
}

// displayName follows GitHub: a name with expressions is evaluated (here:
// only ${{ matrix.* }}) and used as is; otherwise the name, or the job id,
// gets the combination's scalar values appended: "build (linux, 18)". For
// product combinations only the vector values are shown, for combinations
// added by include all values. Names are cut to 100 characters.
func (w *Workflow) displayName(j *Job, c combo) string {
	switch {
	case w.SingleJob && j.Name != "":
		return j.Name
	case w.SingleJob:
		return j.ID
	case hasExpr(j.Name):
		return interpolate(j.Name, c.values)
	}
	base := j.Name
	if base == "" {
		base = j.ID
	}
	name := base
	if segs := nameSegments(c.values[:c.named]); len(segs) > 0 {
		name = fmt.Sprintf("%s (%s)", base, strings.Join(segs, ", "))
	}
	if utf8.RuneCountInString(name) > 100 {
		name = string([]rune(name)[:97]) + "..."
	}
	return name
}

// nameSegments lists the scalar values of m depth first, skipping nulls and
// empty strings.
func nameSegments(m Map) []string {
	var segs []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case Map:
			for _, kv := range x {
				walk(kv.Value)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		default:
			if s := stringify(x); s != "" {
				segs = append(segs, s)
			}
		}
	}
	walk(m)
	return segs
}

// stringify converts a value to text as Actions expressions do.
func stringify(v any) string {
	switch v.(type) {
	case Map:
		return "Object"
	case []any:
		return "Array"
	}
	return expr.ToString(v)
}

var (
	exprPattern   = regexp.MustCompile(`(?s)\$\{\{(.*?)\}\}`)
	matrixPattern = regexp.MustCompile(`^(?i:matrix)((?:\.[A-Za-z_][A-Za-z0-9_-]*)+)$`)
)

// matrixRef resolves an expression that is just matrix.a.b; ok is false for
// any other expression.
func matrixRef(expr string, m Map) (v any, ok bool) {
	sub := matrixPattern.FindStringSubmatch(strings.TrimSpace(expr))
	if sub == nil {
		return nil, false
	}
	v = m
	for _, key := range strings.Split(sub[1][1:], ".") {
		mm, _ := v.(Map)
		v, _ = mm.Get(key)
	}
	return v, true
}

// interpolate replaces each ${{ matrix.* }} in s; other expressions stay.
func interpolate(s string, m Map) string {
	return exprPattern.ReplaceAllStringFunc(s, func(e string) string {
		if v, ok := matrixRef(e[3:len(e)-2], m); ok {
			return stringify(v)
		}
		return e
	})
}

// wholeRef resolves s when it is exactly one ${{ matrix.* }} expression.
func wholeRef(s string, m Map) (any, bool) {
	s = strings.TrimSpace(s)
	loc := exprPattern.FindStringIndex(s)
	if loc == nil || loc[0] != 0 || loc[1] != len(s) {
		return nil, false
	}
	return matrixRef(s[3:len(s)-2], m)
}

// runsOnLabels interpolates labels; `${{ matrix.x }}` naming a list of
// labels becomes those labels.
func runsOnLabels(labels []string, m Map) []string {
	var out []string
	for _, l := range labels {
		if v, ok := wholeRef(l, m); ok {
			if list, isList := v.([]any); isList {
				for _, e := range list {
					out = append(out, stringify(e))
				}
				continue
			}
		}
		out = append(out, interpolate(l, m))
	}
	return out
}

func timeoutMinutes(t *NumberOrExpr, m Map) NumberOrExpr {
	if t == nil {
		return NumberOrExpr{Value: DefaultTimeoutMinutes}
	}
	if v, ok := wholeRef(t.Expr, m); ok {
		if f := expr.ToNumber(canonical(v)); f > 0 {
			return NumberOrExpr{Value: f}
		}
	}
	return *t
}

func continueOnError(b BoolOrExpr, m Map) BoolOrExpr {
	if v, ok := wholeRef(b.Expr, m); ok {
		if x, isBool := v.(bool); isBool {
			return BoolOrExpr{Value: x}
		}
	}
	return b
}

// canonical turns int64 into float64 for toNumber.
func canonical(v any) any {
	if i, ok := v.(int64); ok {
		return float64(i)
	}
	return v
}

func mergeEnv(wf, job []Pair) []Pair {
	out := append([]Pair(nil), wf...)
outer:
	for _, p := range job {
		for i := range out {
			if out[i].Name == p.Name {
				out[i] = p
				continue outer
			}
		}
		out = append(out, p)
	}
	return out
}

// effectiveDefaults follows the runner (JobExtension.cs): each defaults
// that has run replaces the whole defaults.run, workflow then job.
func (w *Workflow) effectiveDefaults(j *Job) RunDefaults {
	switch {
	case j.Defaults != nil:
		return *j.Defaults
	case w.Defaults != nil:
		return *w.Defaults
	}
	return RunDefaults{}
}
