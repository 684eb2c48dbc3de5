package runner

import (
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/internal/contract"
)

// envVars is an environment that remembers the order names were first
// set in, so that what the agent prints is stable.
type envVars struct {
	keys []string
	vals map[string]string
}

func (e *envVars) set(k, v string) {
	if e.vals == nil {
		e.vals = map[string]string{}
	}
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

// setAll sets the variables of m in name order.
func (e *envVars) setAll(m map[string]string) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e.set(k, m[k])
	}
}

// list is the environment as NAME=value strings.
func (e *envVars) list() []string {
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	return out
}

func (e *envVars) snapshot() map[string]string {
	out := make(map[string]string, len(e.keys))
	for _, k := range e.keys {
		out[k] = e.vals[k]
	}
	return out
}

// evaluateJobEnv evaluates the workflow and job env of the plan, in order,
// once at the start of the job. A failure fails the job before any step.
func (j *Job) evaluateJobEnv() bool {
	env := map[string]string{}
	ee := j.exprEnv(&stepRun{index: contract.JobLevel}, env)
	for _, v := range j.plan.Env {
		val, err := expr.Interpolate(v.Value, ee)
		if err != nil {
			j.errorLine(contract.JobLevel, "Failed to evaluate the env of the job: "+v.Name+": "+err.Error())
			j.mu.Lock()
			j.failed = true
			j.mu.Unlock()
			return false
		}
		env[v.Name] = val
		j.env.set(v.Name, val)
	}
	return true
}

// setEnv records a GITHUB_ENV (or set-env) write for later steps.
func (j *Job) setEnv(name, value string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.env.set(name, value)
}

// addPath records a GITHUB_PATH (or add-path) entry: moved to the front if
// present already.
func (j *Job) addPath(p string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.prependPath = slices.DeleteFunc(j.prependPath, func(x string) bool { return x == p })
	j.prependPath = append(j.prependPath, p)
}

// prepend is the GITHUB_PATH part of PATH: newest entry first.
func (j *Job) prepend() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := slices.Clone(j.prependPath)
	slices.Reverse(out)
	return out
}

// globalEnv is the job env with GITHUB_ENV writes (the env context before
// a step's own env).
func (j *Job) globalEnv() map[string]string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.env.snapshot()
}

// baseValue looks a variable up in the agent's own environment.
func (j *Job) baseValue(name string) (string, bool) {
	for i := len(j.baseEnv) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(j.baseEnv[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// processEnv builds a step process's environment, lowest priority first:
// the agent's environment, the env context (job env, GITHUB_ENV, step
// env), PATH with GITHUB_PATH in front, GITHUB_* and RUNNER_*, the
// caller's extra variables, then GITHUB_ACTIONS and CI.
func (j *Job) processEnv(s *stepRun, extra map[string]string) []string {
	env := &envVars{}
	for _, kv := range j.baseEnv {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env.set(k, v)
		}
	}
	env.setAll(s.env)
	if pre := j.prepend(); len(pre) > 0 {
		orig, ok := s.env["PATH"]
		if !ok {
			orig, _ = j.baseValue("PATH")
		}
		env.set("PATH", joinPath(append(pre, orig)))
	}
	env.setAll(j.runtimeEnv(j.githubFor(s)))
	env.setAll(extra)
	env.set("GITHUB_ACTIONS", "true")
	if _, ok := env.vals["CI"]; !ok {
		env.set("CI", "true")
	}
	return env.list()
}

func joinPath(parts []string) string {
	var keep []string
	for _, p := range parts {
		if p != "" {
			keep = append(keep, p)
		}
	}
	return strings.Join(keep, string(os.PathListSeparator))
}

// searchPath is where commands are looked up: GITHUB_PATH entries, then
// the agent's PATH (WhichUtil uses the runner's own PATH).
func (j *Job) searchPath() []string {
	p, _ := j.baseValue("PATH")
	return append(j.prepend(), strings.Split(p, string(os.PathListSeparator))...)
}
