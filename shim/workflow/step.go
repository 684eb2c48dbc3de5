package workflow

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

type stepField func(p *parser, s *Step, f field)

var stepFields = map[string]stepField{
	"id":   func(p *parser, s *Step, f field) { s.ID = p.str(f.val, featStepID, "id") },
	"name": func(p *parser, s *Step, f field) { s.Name = p.str(f.val, featStep, "name") },
	"if":   func(p *parser, s *Step, f field) { s.If = p.str(f.val, featStep, "if") },
	"run":  func(p *parser, s *Step, f field) { s.Run = p.str(f.val, featStep, "run") },
	"uses": func(p *parser, s *Step, f field) { s.Uses = p.str(f.val, featUses, "uses") },
	"with": func(p *parser, s *Step, f field) { s.With = p.pairs(f.val, featStep, "with") },
	"shell": func(p *parser, s *Step, f field) {
		s.Shell = p.str(f.val, featShell, "shell")
		p.checkShell(f.val, featShell)
	},
	"working-directory": func(p *parser, s *Step, f field) { s.WorkingDirectory = p.str(f.val, featStep, "working-directory") },
	"env":               func(p *parser, s *Step, f field) { s.Env = p.pairs(f.val, featEnv, "env") },
	"continue-on-error": func(p *parser, s *Step, f field) {
		s.ContinueOnError = p.boolean(f.val, featStep, "continue-on-error")
	},
	"timeout-minutes": func(p *parser, s *Step, f field) {
		s.TimeoutMinutes = p.minutes(f.val, featStepTimeout, "timeout-minutes")
	},
}

var stepKeys = slices.Sorted(maps.Keys(stepFields))

// Keys valid only on run steps, and only on uses steps.
var (
	runOnly  = []string{"shell", "working-directory"}
	usesOnly = []string{"with"}
)

// steps reads a job's steps and checks step ids.
func (p *parser) steps(jobID string, n *yaml.Node) []*Step {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, featSteps, "steps of job %q must be a list", jobID)
		return nil
	}
	if len(n.Content) == 0 {
		p.errorf(n, featSteps, "job %q has no steps", jobID)
	}
	var steps []*Step
	ids := map[string]*Step{}
	for i, c := range n.Content {
		s := p.step(jobID, i, c)
		if s == nil {
			continue
		}
		steps = append(steps, s)
		p.checkStepID(jobID, s, ids)
	}
	return steps
}

func (p *parser) step(jobID string, i int, n *yaml.Node) *Step {
	n = deref(n)
	s := &Step{Index: i, Pos: posOf(n), Keys: map[string]Pos{}}
	fs, ok := p.fields(n, fmt.Sprintf("step %d of job %q", i+1, jobID), featStep)
	if !ok {
		return nil
	}
	for _, f := range fs {
		s.Keys[f.name] = posOf(f.key)
		if h, ok := stepFields[f.name]; ok {
			h(p, s, f)
		}
	}
	where := fmt.Sprintf("job %q %s", jobID, stepLabel(s))
	for _, f := range fs {
		if _, ok := stepFields[f.name]; !ok {
			p.unknownKey(f.key, where, featStep, stepKeys)
		}
	}
	p.checkStep(where, s, fs)
	return s
}

// stepLabel names a step in messages: its name, else its 1-based number.
func stepLabel(s *Step) string {
	if s.Name != "" {
		return fmt.Sprintf("step %q", s.Name)
	}
	return fmt.Sprintf("step %d", s.Index+1)
}

func (p *parser) checkStep(where string, s *Step, fs []field) {
	_, hasRun := s.Keys["run"]
	_, hasUses := s.Keys["uses"]
	switch {
	case hasRun && hasUses:
		p.errorAt(s.Pos, featStep, "%s has both run and uses; a step has exactly one", where)
	case !hasRun && !hasUses:
		p.errorAt(s.Pos, featStep, "%s has neither run nor uses", where)
	case hasUses:
		p.checkUses(where, s, fs)
		p.onlyWith(where, fs, runOnly, "run")
	default:
		p.onlyWith(where, fs, usesOnly, "uses")
	}
}

func (p *parser) checkUses(where string, s *Step, fs []field) {
	if s.IsCheckout() {
		return
	}
	if s.IsKDL() {
		p.checkKDL(where, s, fs)
		return
	}
	if s.IsArtifactOrCache() {
		return // inputs are checked with the plan (contract.Plan.Validate)
	}
	p.errorf(fieldVal(fs, "uses"), featUses, "%s uses %s: only run steps, actions/checkout, actions/upload-artifact@v4, actions/download-artifact@v4, actions/cache and %s are supported", where, s.Uses, KDLAction)
}

// checkKDL requires the KDL action's two inputs.
func (p *parser) checkKDL(where string, s *Step, fs []field) {
	have := map[string]bool{}
	for _, w := range s.With {
		have[w.Name] = true
	}
	for _, need := range []string{"path", "job"} {
		if !have[need] {
			p.errorf(fieldVal(fs, "uses"), featUses, "%s uses %s without with.%s", where, s.Uses, need)
		}
	}
}

// onlyWith reports keys of fs, among keys, that need a `need` step.
func (p *parser) onlyWith(where string, fs []field, keys []string, need string) {
	for _, f := range fs {
		for _, k := range keys {
			if f.name == k {
				p.errorf(f.key, featStep, "%s sets %s, which is only valid on a %s step", where, k, need)
			}
		}
	}
}

func (p *parser) checkStepID(jobID string, s *Step, ids map[string]*Step) {
	if s.ID == "" {
		return
	}
	pos := s.Keys["id"]
	if hasExpr(s.ID) || !idPattern.MatchString(s.ID) {
		p.errorAt(pos, featStepID, "job %q %s has id %q, which must start with a letter or _ and contain only letters, digits, - and _", jobID, stepLabel(s), s.ID)
		return
	}
	key := strings.ToLower(s.ID)
	if prev, dup := ids[key]; dup {
		first := prev.Keys["id"]
		p.errorAt(pos, featStepID, "job %q has two steps with id %q (first at %d:%d)", jobID, s.ID, first.Line, first.Col)
		return
	}
	ids[key] = s
}
