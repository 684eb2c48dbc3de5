package runner

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/solstice-ci/solstice/guest/expr"
)

// planContextNames are the contexts a plan carries. Each is present in
// every expression even when the plan omits it, as in GitHub (matrix of a
// job without a matrix is an empty object).
var planContextNames = []string{"matrix", "needs", "vars", "inputs", "strategy"}

// githubEnvAllowlist are the github context values exported as GITHUB_*
// variables (GitHubContext.cs).
var githubEnvAllowlist = map[string]bool{
	"action_path": true, "action_ref": true, "action_repository": true, "action": true,
	"actor": true, "actor_id": true, "api_url": true, "artifacts": true, "artifacts_list": true,
	"base_ref": true, "env": true, "event_name": true, "event_path": true, "graphql_url": true,
	"head_ref": true, "job": true, "output": true, "path": true, "ref_name": true,
	"ref_protected": true, "ref_type": true, "ref": true, "repository": true,
	"repository_id": true, "repository_owner": true, "repository_owner_id": true,
	"retention_days": true, "run_attempt": true, "run_id": true, "run_number": true,
	"server_url": true, "sha": true, "state": true, "step_summary": true,
	"triggering_actor": true, "workflow": true, "workflow_ref": true, "workflow_sha": true,
	"workspace": true,
}

// Secrets and variables that turn on debug output; the runner does not
// mask these secrets (Worker.SecretVariableMaskWhitelist).
const (
	stepDebugName   = "ACTIONS_STEP_DEBUG"
	runnerDebugName = "ACTIONS_RUNNER_DEBUG"
)

// loadContexts parses the plan's contexts, keeping key order (toJSON and
// `.*` filters show it).
func (j *Job) loadContexts() error {
	j.planCtx = map[string]expr.Value{}
	for _, name := range planContextNames {
		j.planCtx[name] = expr.NewObject()
	}
	j.github = expr.NewObject()
	for name, raw := range j.plan.Contexts {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		v, err := expr.ParseJSON(raw)
		if err != nil {
			return fmt.Errorf("plan: contexts.%s: %w", name, err)
		}
		obj, ok := v.(*expr.Object)
		if !ok {
			return fmt.Errorf("plan: contexts.%s: must be a JSON object", name)
		}
		if name == "github" {
			j.github = obj
			j.eventJSON = rawEvent(raw)
			continue
		}
		j.planCtx[name] = obj
	}
	return nil
}

// rawEvent extracts github.event as the plan spelled it, for event.json.
func rawEvent(github []byte) []byte {
	var fields map[string]json.RawMessage
	if json.Unmarshal(github, &fields) != nil {
		return nil
	}
	return fields["event"]
}

func (j *Job) loadSecrets(values map[string]string) {
	for _, name := range j.plan.Secrets {
		j.secrets[name] = "" // a listed secret the forge did not send is empty
	}
	for name, v := range values {
		j.secrets[name] = v
		if !strings.EqualFold(name, stepDebugName) && !strings.EqualFold(name, runnerDebugName) {
			j.masker.AddSecret(v)
		}
	}
	if tok := j.secrets["GITHUB_TOKEN"]; tok != "" {
		// What actions/checkout and git print in Authorization headers.
		j.masker.AddValue(base64.StdEncoding.EncodeToString([]byte("x-access-token:" + tok)))
	}
	j.stepDebug = j.flag(stepDebugName)
	j.runnerDebug = j.flag(runnerDebugName)
}

// flag reads a debug switch from the secrets or the variables.
func (j *Job) flag(name string) bool {
	v, ok := j.secrets[name]
	if !ok {
		if val, found := lookupFold(j.planCtx["vars"], name); found {
			v = expr.ToString(val)
		}
	}
	return strings.EqualFold(strings.TrimSpace(v), "true")
}

func lookupFold(v expr.Value, name string) (expr.Value, bool) {
	if obj, ok := v.(*expr.Object); ok {
		return obj.Get(name)
	}
	return nil, false
}

func (j *Job) initRunnerContext() {
	host, _ := os.Hostname()
	j.runnerCtx = map[string]string{
		"os": runnerOS(runtime.GOOS), "arch": runnerArch(runtime.GOARCH),
		"name": host, "temp": j.layout.Temp, "tool_cache": j.layout.Tools,
		"workspace": j.layout.Work, "environment": "self-hosted",
	}
	if j.runnerDebug {
		j.runnerCtx["debug"] = "1"
	}
}

// runnerOS is runner.os: GitHub's spellings, and "illumos" for illumos
// (GitHub has no illumos runner; the name is the one `uname -o` prints).
func runnerOS(goos string) string {
	switch goos {
	case "linux":
		return "Linux"
	case "illumos":
		return "illumos"
	case "solaris":
		return "Solaris"
	case "darwin":
		return "macOS"
	case "windows":
		return "Windows"
	case "freebsd":
		return "FreeBSD"
	case "openbsd":
		return "OpenBSD"
	case "netbsd":
		return "NetBSD"
	}
	return goos
}

func runnerArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "X64"
	case "386":
		return "X86"
	case "arm64":
		return "ARM64"
	case "arm":
		return "ARM"
	}
	return strings.ToUpper(goarch)
}

// initGitHubContext adds what the runner adds to the github context.
func (j *Job) initGitHubContext() {
	gh := expr.NewObject()
	for k, v := range j.github.All() {
		gh.Set(k, v)
	}
	gh.Set("workspace", j.workspace)
	gh.Set("event_path", j.eventPath())
	if _, ok := gh.Get("job"); !ok {
		gh.Set("job", j.plan.Job.ID)
	}
	if _, ok := gh.Get("event"); !ok {
		gh.Set("event", expr.NewObject())
	}
	if tok, ok := j.secrets["GITHUB_TOKEN"]; ok {
		gh.Set("token", tok)
	}
	j.github = gh
}

func (j *Job) eventPath() string {
	return filepath.Join(j.layout.Temp, "_github_workflow", "event.json")
}

// writeEventFile writes github.event for GITHUB_EVENT_PATH.
func (j *Job) writeEventFile() error {
	data := j.eventJSON
	if len(data) == 0 || string(data) == "null" {
		data = []byte("{}")
	}
	if err := os.MkdirAll(filepath.Dir(j.eventPath()), 0o755); err != nil {
		return fmt.Errorf("write event file: %w", err)
	}
	if err := os.WriteFile(j.eventPath(), data, 0o644); err != nil {
		return fmt.Errorf("write event file: %w", err)
	}
	return nil
}

// githubFor is the github context as one step sees it.
func (j *Job) githubFor(s *stepRun) *expr.Object {
	gh := expr.NewObject()
	for k, v := range j.github.All() {
		gh.Set(k, v)
	}
	gh.Set("action", s.actionName)
	if f := s.files; f != nil {
		gh.Set("env", f.path(fileEnv))
		gh.Set("path", f.path(filePath))
		gh.Set("output", f.path(fileOutput))
		gh.Set("state", f.path(fileState))
		gh.Set("step_summary", f.path(fileSummary))
	}
	return gh
}

// exprEnv is what the step's expressions see, with env as the env context.
func (j *Job) exprEnv(s *stepRun, env map[string]string) *expr.Env {
	ctx := map[string]expr.Value{
		"github":  j.githubFor(s),
		"env":     env,
		"secrets": j.secrets,
		"runner":  j.runnerCtx,
		"job":     map[string]any{"status": statusName(j.status())},
		"steps":   j.stepsContext(),
	}
	for k, v := range j.planCtx {
		ctx[k] = v
	}
	return &expr.Env{Contexts: ctx, Status: j.status(), HashFiles: j.hashFiles}
}

func statusName(s expr.JobStatus) string {
	switch s {
	case expr.JobFailed:
		return "failure"
	case expr.JobCancelled:
		return "cancelled"
	}
	return "success"
}

// stepsContext is a snapshot of steps.<id>.
func (j *Job) stepsContext() map[string]any {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make(map[string]any, len(j.stepsCtx))
	for k, v := range j.stepsCtx {
		out[k] = v
	}
	return out
}

// runtimeEnv is the GITHUB_* and RUNNER_* variables of a step.
func (j *Job) runtimeEnv(gh *expr.Object) map[string]string {
	out := map[string]string{}
	for k, v := range gh.All() {
		if !githubEnvAllowlist[strings.ToLower(k)] {
			continue
		}
		switch x := v.(type) {
		case string:
			out["GITHUB_"+strings.ToUpper(k)] = x
		case bool:
			out["GITHUB_"+strings.ToUpper(k)] = expr.ToString(x)
		}
	}
	for k, v := range j.runnerCtx {
		out["RUNNER_"+strings.ToUpper(k)] = v
	}
	return out
}

func stringProp(o *expr.Object, key string) string {
	v, _ := o.Get(key)
	s, _ := v.(string)
	return s
}
