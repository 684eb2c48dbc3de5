// Package expr evaluates GitHub Actions expressions — the language inside
// `${{ }}` and in `if:` conditions — so that the Solstice guest agent can
// expand `run`, `env`, `with` and `working-directory` values and decide
// step conditions exactly as GitHub's runner would.
//
// It has its own lexer, parser and evaluator and uses only the standard
// library, because it is linked into the small in-VM agent (which also
// builds for illumos).
//
// The semantics are GitHub's, as documented at docs.github.com ("Evaluate
// expressions in workflows and actions") and as implemented by the Actions
// runner and by the @actions/expressions package; testdata/oracle.json pins
// agreement with the latter. Where the two disagree this package follows
// the runner, since that is what runs jobs on GitHub; such points are listed
// in oracle_test.go. In short:
//
//   - literals: null, true, false, numbers (1, -2.5, .5, 1e3, 0x1F, 0o17,
//     NaN, Infinity) and 'strings' (a quote inside is doubled);
//   - operators by precedence: postfix (a.b, a['b'], a[0], a.*, calls), !,
//     < <= > >=, == !=, &&, ||; && and || return an operand, not a bool;
//   - == converts mismatched primitives to numbers, compares strings
//     ignoring case and arrays/objects by identity; NaN equals nothing;
//   - context, property and function names are case-insensitive; a missing
//     property is null, an unknown context or function is an error;
//   - functions: contains, startsWith, endsWith, format, join, toJSON,
//     fromJSON, case, and, when the caller provides them, success, failure,
//     always, cancelled and hashFiles.
package expr

import (
	"fmt"
	"strings"
)

// Env is what an expression can see.
type Env struct {
	// Contexts maps context names (github, env, vars, secrets, matrix,
	// needs, steps, job, runner, strategy, inputs, …) to their values.
	// Names are matched ignoring case. Only the contexts present may be
	// referenced; an absent one is an error, as in GitHub, so a context
	// that exists but is empty (inputs outside a dispatch) should be
	// present with a nil or empty value.
	Contexts map[string]Value

	// Status backs success(), failure() and cancelled() (always() is
	// always true). When nil those functions do not exist, as GitHub
	// allows them only in conditions; EvaluateCondition then assumes
	// JobSucceeded.
	Status Status

	// HashFiles backs hashFiles(patterns...). When nil the function does
	// not exist. The guest hashes the files matched under its workspace.
	HashFiles HashFilesFunc
}

// Status reports the state of the job for the status functions.
type Status interface {
	Success() bool
	Failure() bool
	Cancelled() bool
}

// HashFilesFunc computes hashFiles(): patterns are the arguments converted
// to strings (GitHub allows a leading "--follow-symbolic-links" option among
// them); it returns the hex digest, "" when nothing matches.
type HashFilesFunc func(patterns []string) (string, error)

// JobStatus is the usual Status: the outcome of the job so far.
type JobStatus int

// The states a job can be in while a condition is evaluated.
const (
	JobSucceeded JobStatus = iota // nothing has failed
	JobFailed                     // an earlier step (or a needed job) failed
	JobCancelled                  // the run has been cancelled
)

// Success implements Status.
func (s JobStatus) Success() bool { return s == JobSucceeded }

// Failure implements Status.
func (s JobStatus) Failure() bool { return s == JobFailed }

// Cancelled implements Status.
func (s JobStatus) Cancelled() bool { return s == JobCancelled }

// Error is a syntax or evaluation error in an expression or template.
type Error struct {
	Expr string // the expression (or template) text
	Col  int    // 1-based character position of the problem; 0 if none
	Msg  string
}

func (e *Error) Error() string {
	if e.Col > 0 {
		return fmt.Sprintf("expr: %s at column %d in %q", e.Msg, e.Col, e.Expr)
	}
	return fmt.Sprintf("expr: %s in %q", e.Msg, e.Expr)
}

// Evaluate evaluates a bare expression, without `${{ }}`. An empty
// expression is null. Object filters come back as []any.
func Evaluate(expr string, env *Env) (Value, error) {
	env = orEmpty(env)
	n, err := parse(expr, env)
	if err != nil || n == nil {
		return nil, err
	}
	v, err := n.eval(&evaluator{src: expr, env: env})
	return export(v), err
}

// EvaluateCondition evaluates an `if:` condition. As in GitHub:
//   - an empty condition means success();
//   - the condition may be a bare expression or contain `${{ }}`; text
//     around a `${{ }}` makes it a string template, which is true whenever
//     the resulting string is non-empty (`${{ false }} && x` is true);
//   - a condition that calls none of success(), failure(), always() and
//     cancelled() is evaluated as `success() && (condition)`, so it is
//     skipped once something has failed or the run is cancelled.
//
// The result is the truthiness of the value.
func EvaluateCondition(cond string, env *Env) (bool, error) {
	e := *orEmpty(env)
	if e.Status == nil {
		e.Status = JobSucceeded
	}
	var n node
	var err error
	if strings.Contains(cond, openExpr) {
		n, err = parseTemplate(cond, &e)
	} else {
		n, err = parse(cond, &e)
	}
	if err != nil {
		return false, err
	}
	success, _ := lookupFunction("success", &e)
	implicit := &callNode{fn: success}
	switch {
	case n == nil:
		n = implicit
	case !callsAny(n, statusFunctions...):
		n = &logicalNode{and: true, ops: []node{implicit, n}}
	}
	v, err := n.eval(&evaluator{src: cond, env: &e})
	return truthy(v), err
}

func orEmpty(env *Env) *Env {
	if env == nil {
		return &Env{}
	}
	return env
}
