// Package translate turns one job run of a workflow (workflow.Run) into the
// job plan the guest agent executes. Expressions stay as written: the agent
// evaluates them inside the VM, with the contexts given here. It is shared by
// `solstice run` and the runner shims, which differ only in where the
// contexts come from.
package translate

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/workflow"
)

// Need is what a job learns about a job it needs.
type Need struct {
	Result  string            `json:"result"` // success, failure, cancelled, skipped
	Outputs map[string]string `json:"outputs"`
}

// Input is everything a plan is made from.
type Input struct {
	Workflow *workflow.Workflow
	Run      workflow.Run
	GitHub   map[string]any // the github context, without token
	Vars     map[string]string
	Inputs   map[string]any
	Needs    map[string]Need
	Secrets  []string // names of the secrets the job gets
	Checkout *contract.Checkout
}

// Plan builds and validates the plan.
func Plan(in Input) (*contract.Plan, error) {
	r := in.Run
	p := &contract.Plan{
		Version:        contract.PlanVersion,
		Job:            contract.Job{ID: r.JobID, Name: r.Name, Workflow: in.Workflow.Name},
		TimeoutMinutes: r.TimeoutMinutes.Value,
		Defaults:       contract.Defaults{Run: contract.RunDefaults{Shell: r.Defaults.Shell, WorkingDirectory: r.Defaults.WorkingDirectory}},
		Secrets:        sortedUnique(in.Secrets),
		Checkout:       in.Checkout,
	}
	if r.TimeoutMinutes.Expr != "" {
		return nil, fmt.Errorf("job %q: timeout-minutes %q: an expression here is not supported; use a number", r.JobID, r.TimeoutMinutes.Expr)
	}
	for _, e := range r.Env {
		p.Env = append(p.Env, contract.EnvVar{Name: e.Name, Value: e.Value})
	}
	if len(r.Outputs) > 0 {
		p.Outputs = map[string]string{}
		for _, o := range r.Outputs {
			p.Outputs[o.Name] = o.Value
		}
	}
	ctxs, err := contexts(in)
	if err != nil {
		return nil, fmt.Errorf("job %q: %w", r.JobID, err)
	}
	p.Contexts = ctxs
	for _, s := range r.Steps {
		p.Steps = append(p.Steps, step(s))
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("job %q: %w", r.JobID, err)
	}
	return p, nil
}

func step(s *workflow.Step) contract.Step {
	if s.IsKDL() {
		with := pairs(s.With)
		return contract.Step{ID: s.ID, Name: s.Name, If: s.If, Env: pairs(s.Env),
			ContinueOnError: boolScalar(s.ContinueOnError),
			KDL:             &contract.KDL{Path: with["path"], Job: with["job"]}}
	}
	ps := contract.Step{
		ID: s.ID, Name: s.Name, If: s.If,
		Run: s.Run, Shell: s.Shell, WorkingDirectory: s.WorkingDirectory,
		Uses: s.Uses,
		Env:  pairs(s.Env), With: pairs(s.With),
	}
	ps.ContinueOnError = boolScalar(s.ContinueOnError)
	if s.TimeoutMinutes != nil {
		ps.TimeoutMinutes = numberScalar(*s.TimeoutMinutes)
	}
	return ps
}

func pairs(ps []workflow.Pair) contract.Strings {
	if len(ps) == 0 {
		return nil
	}
	m := contract.Strings{}
	for _, p := range ps {
		m[p.Name] = p.Value
	}
	return m
}

func boolScalar(b workflow.BoolOrExpr) contract.Scalar {
	if b.Expr != "" {
		return contract.Scalar(b.Expr)
	}
	if b.Value {
		return "true"
	}
	return ""
}

func numberScalar(n workflow.NumberOrExpr) contract.Scalar {
	if n.Expr != "" {
		return contract.Scalar(n.Expr)
	}
	return contract.Scalar(strconv.FormatFloat(n.Value, 'f', -1, 64))
}

// contexts encodes the contexts the agent cannot know itself.
func contexts(in Input) (map[string]json.RawMessage, error) {
	all := map[string]any{
		"github":   in.GitHub,
		"matrix":   in.Run.Matrix,
		"strategy": in.Run.Strategy,
		"vars":     in.Vars,
		"inputs":   in.Inputs,
		"needs":    in.Needs,
	}
	out := map[string]json.RawMessage{}
	for name, v := range all {
		if isEmpty(v) {
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("encode the %s context: %w", name, err)
		}
		out[name] = b
	}
	return out, nil
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return x == nil
	case map[string]string:
		return x == nil
	case map[string]Need:
		return x == nil
	case workflow.Map:
		return x == nil
	}
	return false
}

func sortedUnique(names []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
